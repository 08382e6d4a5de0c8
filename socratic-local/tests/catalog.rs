//! Your own benchmark from files: the starter `init` writes, `check`, and a run of it that
//! records the exact version of every entity it used.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use socratic_local::catalog::{self, InitError};
use socratic_local::{Error, check};

mod support;

/// The manifest blob a run wrote, for its catalog hashes.
fn manifest_of(out: &Path) -> Value {
    let entry = std::fs::read_dir(out.join("manifests"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap()
}

async fn run_catalog(bench: &Path, out: &Path) -> Value {
    let mut options = support::options(out);
    options.catalog = Some(bench.to_owned());
    serde_json::to_value(&support::run(options).await.summary).unwrap()
}

fn first_scenario(bench: &Path) -> std::path::PathBuf {
    std::fs::read_dir(bench.join("scenarios"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starter_benchmark_checks_runs_and_versions_its_edits() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench");
    let written = catalog::init(&bench).unwrap();
    for file in [
        "manifest.json",
        "models.toml",
        "README.md",
        "rubrics/my-rubric-v1.json",
        "prompts/my-tutor-v1.md",
        "prompts/my-student-v1.md",
        "prompts/my-judge-v1.md",
    ] {
        assert!(written.contains(&bench.join(file)), "{file}");
        assert!(bench.join(file).is_file(), "{file}");
    }
    // init never overwrites.
    assert!(matches!(catalog::init(&bench), Err(InitError::NotEmpty(_))));

    let report = check(&bench).await.unwrap();
    assert_eq!(
        (
            report.rubrics,
            report.prompts,
            report.scenarios,
            report.runs
        ),
        (1, 3, 3, 6)
    );

    let first = dir.path().join("first");
    let summary = run_catalog(&bench, &first).await;
    assert_eq!(summary["rubric"], "my-rubric-v1");
    assert_eq!(summary["runs"], 6);
    assert_eq!(summary["failed_runs"], 0);

    // Edit a scenario and run again: the manifest records the new content's hash.
    let scenario = first_scenario(&bench);
    let mut value: Value = serde_json::from_slice(&std::fs::read(&scenario).unwrap()).unwrap();
    let id = value["id"].as_str().unwrap().to_owned();
    value["persona"] = Value::from("A skeptical adult learner who wants proof.");
    std::fs::write(&scenario, value.to_string()).unwrap();
    let second = dir.path().join("second");
    run_catalog(&bench, &second).await;
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
    catalog::init(&bench).unwrap();
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
    let mut value: Value =
        serde_json::from_slice(&std::fs::read(first_scenario(&bench)).unwrap()).unwrap();
    value["id"] = Value::from(value["id"].as_str().unwrap().trim_start_matches("MY-"));
    value["title"] = Value::from("Changed");
    std::fs::write(bench.join("scenarios/builtin.json"), value.to_string()).unwrap();
    std::fs::write(bench.join("scenarios/twice.json"), value.to_string()).unwrap();

    let Err(Error::Catalog(error)) = check(&bench).await else {
        panic!("the problems were not reported");
    };
    let all = error.problems.join("\n");
    for expected in [
        "rubrics/my-rubric-v1.json: missing field `dimensions`",
        "prompts/my-judge-v1.md: kind: \"referee\" is not socratic_tutor, student or judge",
        "the id is used twice",
        "a built-in scenario has this id with other content",
    ] {
        assert!(all.contains(expected), "{expected}:\n{all}");
    }

    // Fix the files; a manifest naming what does not exist is reported by field.
    let fresh = dir.path().join("fresh");
    catalog::init(&fresh).unwrap();
    let manifest = fresh.join("manifest.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    value["scenarios"][0] = Value::from("NO-SUCH-SCENARIO");
    value["judges"][0]["model"] = Value::from("no-such-judge");
    std::fs::write(&manifest, value.to_string()).unwrap();
    let Err(Error::Catalog(error)) = check(&fresh).await else {
        panic!("the manifest's problems were not reported");
    };
    let all = error.problems.join("\n");
    assert!(all.contains("manifest.json: scenarios"), "{all}");
    assert!(all.contains("NO-SUCH-SCENARIO"), "{all}");
    assert!(all.contains("manifest.json: judges[0].model"), "{all}");
}
