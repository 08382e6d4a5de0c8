//! What the command-line tests share: running the binary and reading what it printed.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use socratic_core::repository::RunFilter;
use tokio::process::Command;

/// Runs `socratic ARGS` to completion, with logging down to errors.
pub async fn socratic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap()
}

/// What it printed to standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What it printed to standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Both, one after the other.
pub fn text(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A number from the text of a request, the same for the same request.
pub fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A value that satisfies `schema`, its integers drawn from `seed`.
pub fn satisfy(schema: &Value, seed: u64) -> Value {
    match schema["type"].as_str() {
        Some("object") => {
            let mut object = serde_json::Map::new();
            for (i, name) in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = name.as_str().unwrap();
                object.insert(
                    name.to_owned(),
                    satisfy(
                        &schema["properties"][name],
                        seed.rotate_left(7 * i as u32 + 3),
                    ),
                );
            }
            Value::Object(object)
        }
        Some("integer") => {
            let low = schema["minimum"].as_u64().unwrap_or(1);
            let high = schema["maximum"].as_u64().unwrap_or(5).max(low);
            json!(low + seed % (high - low + 1))
        }
        Some("boolean") => json!(seed.is_multiple_of(2)),
        Some("array") => json!([]),
        _ => json!(format!("Observation {}.", seed % 1000)),
    }
}

/// The AWS emulator's endpoint. Without one the test fails, unless
/// `SOCRATIC_ALLOW_EMULATOR_SKIP=1` lets it print a `SKIPPED` line (which `.ci/run` rejects).
pub fn emulator() -> Option<String> {
    use std::io::Write;
    if let Ok(url) = std::env::var("SOCRATIC_MOTO_ENDPOINT")
        && !url.is_empty()
    {
        return Some(url);
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("an emulator test")
        .to_owned();
    if std::env::var("SOCRATIC_ALLOW_EMULATOR_SKIP").is_ok_and(|v| v == "1") {
        let _ = writeln!(std::io::stdout(), "SKIPPED: {test}: no emulator");
        return None;
    }
    panic!(
        "{test} needs the AWS emulator: run the tests with scripts/test or set SOCRATIC_MOTO_ENDPOINT"
    )
}

/// Every run of the results directory's benchmark, by tutor, scenario and repetition: its
/// turns' texts and its judgments' outcomes.
pub async fn outcomes(out: &Path) -> BTreeMap<String, Value> {
    let history = socratic_local::history::History::open(out).unwrap();
    let repository = history.repository();
    let manifest = repository.all_manifests().await.unwrap().remove(0);
    let runs = repository
        .list_runs(&RunFilter::Manifest(manifest.id), 1000, None)
        .await
        .unwrap()
        .items;
    let mut found = BTreeMap::new();
    for run in runs {
        let record = repository.run_record(&run.id).await.unwrap().unwrap();
        let key = format!("{}/{}/{}", run.tutor.model, run.scenario, run.repetition);
        let turns: Vec<Value> = record
            .turns
            .iter()
            .map(|t| json!([t.tutor_text, t.student_text, t.tutor_call.usage]))
            .collect();
        let judgments: Vec<Value> = record
            .judgments
            .iter()
            .map(|j| json!([j.turn, j.judge, j.outcome]))
            .collect();
        found.insert(
            key,
            json!({"status": run.status, "turns": turns, "judgments": judgments}),
        );
    }
    found
}

/// A two-turn manifest in `dir` over the first `scenarios` default scenarios, `repetitions`
/// each, with the tutor, student and judge `models` (catalog ids).
pub fn manifest(
    dir: &Path,
    scenarios: usize,
    repetitions: u32,
    [tutor, student, judge]: [&str; 3],
    label: &str,
) -> PathBuf {
    let defaults = socratic_core::defaults::Defaults::load().unwrap();
    let ids: Vec<String> = defaults
        .scenarios
        .iter()
        .take(scenarios)
        .map(|s| s.id.to_string())
        .collect();
    let path = dir.join("manifest.json");
    let request = json!({
        "tutor_prompt": defaults.tutor_prompt.id, "judge_prompt": defaults.judge_prompt.id,
        "rubric": defaults.rubric.id, "scenarios": ids,
        "tutors": [{"model": tutor}],
        "student": {"model": student, "prompt": defaults.student_prompt.id},
        "judges": [{"model": judge, "temperature": 0.0}],
        "turns": 2, "repetitions": repetitions, "max_tokens": 200, "label": label
    });
    std::fs::write(&path, request.to_string()).unwrap();
    path
}
