//! Your own benchmark from files: `socratic init`, `socratic check` and `--catalog`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;

mod support;

use support::{path, socratic, text};

/// The manifest blob a run wrote, for its catalog hashes.
fn manifest_of(out: &Path) -> Value {
    let dir = out.join("manifests");
    let entry = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap();
    serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap()
}

#[tokio::test]
async fn a_starter_benchmark_checks_runs_and_versions_its_edits() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench");
    let output = socratic(&["init", path(&bench)]).await;
    assert!(output.status.success(), "{}", text(&output));
    for file in [
        "manifest.json",
        "models.toml",
        "README.md",
        "rubrics/my-rubric-v1.json",
        "prompts/my-tutor-v1.md",
        "prompts/my-student-v1.md",
        "prompts/my-judge-v1.md",
    ] {
        assert!(bench.join(file).is_file(), "{file}");
    }
    // init never overwrites.
    let again = socratic(&["init", path(&bench)]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    let output = socratic(&["check", path(&bench)]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("plans 6 run(s)"),
        "{}",
        text(&output)
    );

    let first = dir.path().join("first");
    let output = socratic(&[
        "run",
        "--catalog",
        path(&bench),
        "--out",
        path(&first),
        "--quiet",
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let summary: Value =
        serde_json::from_slice(&std::fs::read(first.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rubric"], "my-rubric-v1");
    assert_eq!(summary["runs"], 6);
    assert_eq!(summary["failed_runs"], 0);

    // Edit a scenario and run again: the manifest records the new content's hash.
    let scenario = std::fs::read_dir(bench.join("scenarios"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut value: Value = serde_json::from_slice(&std::fs::read(&scenario).unwrap()).unwrap();
    let id = value["id"].as_str().unwrap().to_owned();
    value["persona"] = Value::from("A skeptical adult learner who wants proof.");
    std::fs::write(&scenario, value.to_string()).unwrap();
    let second = dir.path().join("second");
    let output = socratic(&[
        "run",
        "--catalog",
        path(&bench),
        "--out",
        path(&second),
        "--quiet",
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let key = format!("SEED#{id}");
    let (before, after) = (manifest_of(&first), manifest_of(&second));
    assert!(before["catalog_hashes"][&key].is_string(), "{before}");
    assert_ne!(
        before["catalog_hashes"][&key],
        after["catalog_hashes"][&key]
    );
    assert_eq!(
        before["catalog_hashes"]["RUBRIC#my-rubric-v1"],
        after["catalog_hashes"]["RUBRIC#my-rubric-v1"]
    );
}

#[tokio::test]
async fn check_lists_every_problem_with_its_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench");
    assert!(socratic(&["init", path(&bench)]).await.status.success());
    // A rubric without dimensions, a prompt of an unknown kind, a scenario whose id is a
    // built-in one with other content, and the same scenario id twice.
    let rubric = bench.join("rubrics/my-rubric-v1.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&rubric).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("dimensions");
    std::fs::write(&rubric, value.to_string()).unwrap();
    let prompt = bench.join("prompts/my-judge-v1.md");
    let body = std::fs::read_to_string(&prompt)
        .unwrap()
        .replace("kind: judge", "kind: referee");
    std::fs::write(&prompt, body).unwrap();
    let scenario = std::fs::read_dir(bench.join("scenarios"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut value: Value = serde_json::from_slice(&std::fs::read(&scenario).unwrap()).unwrap();
    value["id"] = Value::from(value["id"].as_str().unwrap().trim_start_matches("MY-"));
    value["title"] = Value::from("Changed");
    std::fs::write(bench.join("scenarios/builtin.json"), value.to_string()).unwrap();
    std::fs::write(bench.join("scenarios/twice.json"), value.to_string()).unwrap();

    let output = socratic(&["check", path(&bench)]).await;
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("rubrics/my-rubric-v1.json: missing field `dimensions`"),
        "{all}"
    );
    assert!(
        all.contains(
            "prompts/my-judge-v1.md: kind: \"referee\" is not socratic_tutor, student or judge"
        ),
        "{all}"
    );
    assert!(all.contains("the id is used twice"), "{all}");
    assert!(
        all.contains("a built-in scenario has this id with other content"),
        "{all}"
    );

    // Fix the files; a manifest naming what does not exist is reported by field.
    let fresh = dir.path().join("fresh");
    assert!(socratic(&["init", path(&fresh)]).await.status.success());
    let manifest = fresh.join("manifest.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    value["scenarios"][0] = Value::from("NO-SUCH-SCENARIO");
    value["judges"][0]["model"] = Value::from("no-such-judge");
    std::fs::write(&manifest, value.to_string()).unwrap();
    let output = socratic(&["check", path(&fresh)]).await;
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("manifest.json: scenarios"), "{all}");
    assert!(all.contains("NO-SUCH-SCENARIO"), "{all}");
    assert!(all.contains("manifest.json: judges[0].model"), "{all}");
}
