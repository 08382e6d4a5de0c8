//! The `socratic` binary end to end, as a child process, against a local stub
//! OpenAI-compatible server that plays tutor, student and judge over real HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use socratic_core::blob::{BlobStore, BlobStoreExt};
use tokio::process::Command;

const KEY_VARIABLE: &str = "STUB_API_KEY";
const GOOD_KEY: &str = "sk-stub-good";

#[derive(Default)]
struct Stub {
    calls: AtomicU64,
    by_model: Mutex<BTreeMap<String, u64>>,
}

/// A value that satisfies `schema`: the minimum of each integer, `false`, empty arrays, and
/// a short string, recursing into every required property.
fn satisfy(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("object") => {
            let mut object = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                object.insert(name.to_owned(), satisfy(&schema["properties"][name]));
            }
            Value::Object(object)
        }
        Some("integer") => json!(schema["maximum"].as_i64().unwrap_or(3)),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => json!("The tutor asked a question."),
    }
}

async fn chat(State(stub): State<Arc<Stub>>, headers: HeaderMap, body: String) -> Response {
    stub.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {GOOD_KEY}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"message":"Incorrect API key provided: sk-stub-****. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        )
            .into_response();
    }
    let request: Value = serde_json::from_str(&body).unwrap();
    *stub
        .by_model
        .lock()
        .unwrap()
        .entry(request["model"].as_str().unwrap().to_owned())
        .or_default() += 1;
    let message = match request["tools"][0]["function"]["parameters"].as_object() {
        Some(_) => {
            let arguments = satisfy(&request["tools"][0]["function"]["parameters"]);
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": request["tools"][0]["function"]["name"], "arguments": arguments.to_string()}
            }], "refusal": null})
        }
        None => {
            json!({"role": "assistant", "content": "What makes you think so?", "refusal": null})
        }
    };
    let response = json!({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 1763044754,
        "model": request["model"], "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_stub"
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        response.to_string(),
    )
        .into_response()
}

/// Bedrock's `POST /model/{id}/converse`, as the AWS SDK calls it.
async fn converse(
    State(stub): State<Arc<Stub>>,
    axum::extract::Path(model): axum::extract::Path<String>,
    body: String,
) -> Response {
    stub.calls.fetch_add(1, Ordering::SeqCst);
    *stub.by_model.lock().unwrap().entry(model).or_default() += 1;
    let request: Value = serde_json::from_str(&body).unwrap();
    let tool = &request["toolConfig"]["tools"][0]["toolSpec"];
    let response = if tool.is_object() {
        json!({
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "t1", "name": tool["name"], "input": satisfy(&tool["inputSchema"]["json"])}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 900, "outputTokens": 80, "totalTokens": 980},
            "metrics": {"latencyMs": 5}
        })
    } else {
        json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "What would change your mind?"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 700, "outputTokens": 12, "totalTokens": 712, "cacheReadInputTokens": 600},
            "metrics": {"latencyMs": 5}
        })
    };
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        response.to_string(),
    )
        .into_response()
}

async fn serve() -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/model/{model}/converse", post(converse))
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), stub)
}

fn models_file(dir: &Path, base_url: &str) -> PathBuf {
    let path = dir.join("models.toml");
    let mut text = String::new();
    for id in ["stub-tutor", "stub-student", "stub-judge", "stub-judge-2"] {
        text.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nprovider = \"openai\"\nmodel = \"{id}-v1\"\nbase_url = \"{base_url}\"\napi_key_env = \"{KEY_VARIABLE}\"\nprices = {{ input = 1.0, output = 4.0 }}\n\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn manifest(dir: &Path, scenarios: usize, repetitions: u32) -> PathBuf {
    support::manifest(
        dir,
        scenarios,
        repetitions,
        ["stub-tutor", "stub-student", "stub-judge"],
        "stub benchmark",
    )
}

async fn socratic(args: &[&str], key: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socratic"));
    command.args(args);
    if !matches!(
        args[0],
        "report" | "models" | "export" | "import" | "replay" | "list"
    ) {
        command.arg("--quiet");
    }
    command
        .env(KEY_VARIABLE, key)
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `COMMAND --models MODELS --manifest MANIFEST --out OUT`.
fn bench_args<'a>(
    command: &'a str,
    models: &'a Path,
    manifest: &'a Path,
    out: &'a Path,
) -> Vec<&'a str> {
    vec![
        command,
        "--models",
        path(models),
        "--manifest",
        path(manifest),
        "--out",
        path(out),
    ]
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn a_benchmark_of_served_models_runs_is_cached_and_replays() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = models_file(dir.path(), &url);
    let manifest = manifest(dir.path(), 2, 1);
    let out = dir.path().join("results");
    let args = bench_args("run", &models, &manifest, &out);

    let output = socratic(&args, GOOD_KEY).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("plan: 2 run(s)"), "{stdout}");
    assert!(stdout.contains("stub-tutor"), "{stdout}");
    // 2 runs × (2 tutor + 1 student + 2 judge calls), and one preflight call per model used.
    assert_eq!(stub.calls.load(Ordering::SeqCst), 10 + 3);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"], 2);
    assert_eq!(summary["failed_runs"], 0);
    assert_eq!(summary["leaderboard"][0]["model"], "stub-tutor");
    assert!(
        summary["leaderboard"][0]["overall"]["mean"]
            .as_f64()
            .is_some()
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("stub-tutor") && report.contains("Leaderboard"));
    let csv = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains("stub-tutor"));
    // The key never reaches the results: no file, and no blob of the database.
    for entry in walk(&out) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(GOOD_KEY),
            "{}",
            entry.display()
        );
    }
    let blobs = socratic_sqlite::ResultsBlobs::read(&out).unwrap();
    for meta in blobs.list_all("").await.unwrap() {
        let bytes = blobs.get(&meta.key).await.unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(GOOD_KEY),
            "{}",
            meta.key
        );
    }

    // The same benchmark again: every answer, the preflight's too, comes from the cache.
    let before = stub.calls.load(Ordering::SeqCst);
    let output = socratic(&args, GOOD_KEY).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), before, "no HTTP call");
    let again: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(scores(&again), scores(&summary));

    // A replay answers only from the cache and gives the same leaderboard.
    let mut replay = args.to_vec();
    replay.push("--replay");
    let output = socratic(&replay, GOOD_KEY).await;
    assert!(output.status.success(), "{:?}", text(&output));
    assert_eq!(stub.calls.load(Ordering::SeqCst), before);
    let replayed: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(scores(&replayed), scores(&summary));

    // A replay with an empty cache fails the first call, clearly, and calls nothing.
    let empty = dir.path().join("empty");
    let mut replay_empty = args.to_vec();
    replay_empty[6] = path(&empty);
    replay_empty.push("--replay");
    let output = socratic(&replay_empty, GOOD_KEY).await;
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("no cached answer"), "{stderr}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn a_bundle_of_served_models_replays_elsewhere_without_a_key_or_a_call() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = models_file(dir.path(), &url);
    let manifest = manifest(dir.path(), 2, 2);
    let out = dir.path().join("results");
    let output = socratic(&bench_args("run", &models, &manifest, &out), GOOD_KEY).await;
    assert!(output.status.success(), "{:?}", text(&output));
    let bundle = dir.path().join("shared.tar.gz");
    let output = socratic(&["export", path(&bundle), "--out", path(&out)], GOOD_KEY).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("exported manifest"), "{stdout}");

    // Elsewhere, with no key at all: the models file in the bundle names only the variable.
    let calls = stub.calls.load(Ordering::SeqCst);
    let elsewhere = tempfile::tempdir().unwrap();
    let replayed = elsewhere.path().join("replayed");
    let output = socratic(&["replay", path(&bundle), "--out", path(&replayed)], "").await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("4 runs, 0 model calls"), "{stdout}");
    assert_eq!(stdout.matches(": identical").count(), 3, "{stdout}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), calls, "no HTTP call");
    for name in ["summary.json", "leaderboard.csv", "report.html"] {
        assert!(
            std::fs::read(out.join(name)).unwrap() == std::fs::read(replayed.join(name)).unwrap(),
            "{name}"
        );
    }

    let imported = elsewhere.path().join("imported");
    for _ in 0..2 {
        let output = socratic(&["import", path(&bundle), "--out", path(&imported)], "").await;
        assert!(output.status.success(), "{:?}", text(&output));
    }
    let output = socratic(&["list", "--out", path(&imported)], "").await;
    let (stdout, _) = text(&output);
    assert!(stdout.contains("stub benchmark"), "{stdout}");
    // A results directory from before models were recorded replays given its models file.
    std::fs::remove_dir_all(out.join("models")).unwrap();
    let again = elsewhere.path().join("again");
    let output = socratic(&["replay", path(&out), "--out", path(&again)], "").await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--models FILE"), "{stderr}");
    let output = socratic(
        &[
            "replay",
            path(&out),
            "--out",
            path(&again),
            "--models",
            path(&models),
        ],
        "",
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches(": identical").count(), 3, "{stdout}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), calls, "no HTTP call");

    // A tampered bundle is refused, naming the problem, with status 2.
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes.truncate(bytes.len() / 2);
    let broken = dir.path().join("broken.tar.gz");
    std::fs::write(&broken, bytes).unwrap();
    let output = socratic(&["import", path(&broken), "--out", path(&imported)], "").await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a readable bundle"), "{stderr}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), calls);
}

/// A summary without what names this process's manifest (its id and when it was computed):
/// a fresh in-memory store plans a new manifest each time.
fn scores(summary: &Value) -> Value {
    match summary {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| *k != "manifest" && *k != "computed_at")
                .map(|(k, v)| (k.clone(), scores(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(scores).collect()),
        other => other.clone(),
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_cap_below_the_estimate_skips_runs_exits_non_zero_and_is_never_passed() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = models_file(dir.path(), &url);
    // 6 scenarios × 6 repetitions = 36 runs, at 64 calls at once.
    let manifest = manifest(dir.path(), 6, 6);
    let out = dir.path().join("results");
    let cap = "0.05";
    let output = socratic(
        &[
            bench_args("run", &models, &manifest, &out),
            vec!["--concurrency", "64", "--max-cost", cap, "--no-cache"],
        ]
        .concat(),
        GOOD_KEY,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("below the worst case"), "{stdout}");
    assert!(stdout.contains("STOPPED BY BUDGET"), "{stdout}");
    assert!(stdout.contains("skipped: budget"), "{stdout}");
    assert!(stderr.contains("spending cap"), "{stderr}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["stopped_by_budget"], true);
    assert!(summary["skipped_runs"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["failed_runs"], 0);
    // Every call the stub answered cost 1000 input and 100 output tokens at $1 and $4 per
    // million: $0.0014. What was spent stays under the cap.
    let calls = stub.calls.load(Ordering::SeqCst) as f64;
    assert!(calls * 0.0014 <= 0.05 + 1e-9, "{calls} calls");
    assert!(summary["cost_usd"].as_f64().unwrap() <= 0.05);
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("STOPPED BY BUDGET"));
}

#[tokio::test]
async fn a_bad_models_file_lists_every_problem_before_any_call() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.json");
    let file = json!({"models": [
        {"id": "a", "provider": "azure", "model": "x", "prices": {"input": 1.0, "output": 1.0}},
        {"id": "b", "provider": "openai", "base_url": url, "prices": {"input": 1.0, "output": 1.0}},
        {"id": "c", "provider": "openai", "model": "x", "base_url": url, "api_key_env": "SOCRATIC_TEST_UNSET_KEY", "prices": {"input": 1.0, "output": 1.0}},
        {"id": "c", "provider": "simulated", "model": "sim-socratic", "prices": {"input": 1.0, "output": 1.0}}
    ]});
    std::fs::write(&models, file.to_string()).unwrap();
    let output = socratic(
        &[
            "run",
            "--models",
            path(&models),
            "--out",
            path(&dir.path().join("r")),
        ],
        GOOD_KEY,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("models[0] (a): unknown provider \"azure\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("models[1] (b): missing field `model`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("models[2] (c): the environment variable SOCRATIC_TEST_UNSET_KEY"),
        "{stderr}"
    );
    assert!(
        stderr.contains("models[3] (c): the id c is used twice"),
        "{stderr}"
    );
    assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_wrong_key_fails_the_preflight_naming_the_model_and_the_variable() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = models_file(dir.path(), &url);
    let manifest = manifest(dir.path(), 2, 1);
    let output = socratic(
        &bench_args("run", &models, &manifest, &dir.path().join("r")),
        "sk-wrong",
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("preflight failed"), "{stderr}");
    assert!(stderr.contains("model stub-tutor"), "{stderr}");
    assert!(stderr.contains(&format!("${KEY_VARIABLE}")), "{stderr}");
    // One request per model, and nothing planned after it.
    assert_eq!(stub.calls.load(Ordering::SeqCst), 3);
    assert!(!dir.path().join("r").join("summary.json").exists());
}

#[tokio::test]
async fn estimate_prints_the_plan_and_calls_nothing() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = models_file(dir.path(), &url);
    let manifest = manifest(dir.path(), 2, 1);
    let output = socratic(
        &bench_args("estimate", &models, &manifest, &dir.path().join("r")),
        GOOD_KEY,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("plan: 2 run(s)"), "{stdout}");
    for role in ["tutor", "student", "judge"] {
        assert!(stdout.contains(role), "{stdout}");
    }
    // One tutor: power has no pair to compare, and says so.
    assert!(stdout.contains("power: one tutor"), "{stdout}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn estimate_of_the_default_benchmark_states_what_it_can_detect() {
    let dir = tempfile::tempdir().unwrap();
    let output = socratic(
        &["estimate", "--out", path(&dir.path().join("r"))],
        GOOD_KEY,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Holm-adjusted over 3 pair(s)"), "{stdout}");
    assert!(stdout.contains("detect a difference of"), "{stdout}");
    assert!(
        stdout.contains("the default: no finished benchmark"),
        "{stdout}"
    );
    // Eight scenarios cannot detect half a point, and the estimate says what would.
    assert!(stdout.contains("CANNOT DETECT 0.5"), "{stdout}");
    assert!(stdout.contains("--scenario-set full"), "{stdout}");
}

#[tokio::test]
async fn estimate_batch_on_the_openai_example_prints_both_prices_and_the_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/openai.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args(["estimate", "--batch", "--models", models])
        .args([
            "--tutor",
            "gpt-4o-mini",
            "--tutor",
            "gpt-4o",
            "--judge",
            "gpt-4o",
        ])
        .args(["--out", path(&dir.path().join("r"))])
        .env("OPENAI_API_KEY", "not-called")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("batch: estimated cost $"), "{stdout}");
    assert!(stdout.contains("(live: $"), "{stdout}");
    // Three tutor rounds, two student rounds, one judge round; a day's window each.
    assert!(
        stdout.contains("6 round(s) × about 1 h = about 6 h")
            && stdout.contains("the 24 h window, so at most 144 h"),
        "{stdout}"
    );
    // Per model: live expected, live worst, batch expected, batch worst. OpenAI's batch
    // prices are half the live ones; the simulated student has none and stays at live.
    let row = |model: &str| -> Vec<f64> {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{model} ")))
            .unwrap_or_else(|| panic!("no row for {model}: {stdout}"));
        line.split_whitespace()
            .skip(1)
            .take(4)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    for model in ["gpt-4o", "gpt-4o-mini"] {
        let costs = row(model);
        assert!(costs[0] > 0.0, "{stdout}");
        assert!(
            (costs[2] - costs[0] / 2.0).abs() <= 0.0001,
            "{model}: {costs:?}"
        );
        assert!(
            (costs[3] - costs[1] / 2.0).abs() <= 0.0001,
            "{model}: {costs:?}"
        );
    }
    let student = row("sim-student");
    assert_eq!((student[2], student[3]), (student[0], student[1]));
    assert!(
        stdout.contains("(live prices: no batch prices or no batch interface)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn estimate_batch_counts_bedrock_models_without_batch_inference_at_live_prices() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("bedrock.toml");
    std::fs::write(
        &models,
        r#"
[[models]]
id = "haiku"
provider = "bedrock"
model = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
region = "us-east-1"
prices = { input = 0.80, output = 4.00, batch_input = 0.40, batch_output = 2.00 }
batch_role_arn = "arn:aws:iam::123456789012:role/socratic-batch"
batch_s3_uri = "s3://socratic-batches/benchmarks"

[[models]]
id = "nova"
provider = "bedrock"
model = "us.amazon.nova-pro-v1:0"
region = "us-east-1"
prices = { input = 0.80, output = 3.20, batch_input = 0.40, batch_output = 1.60 }
"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args(["estimate", "--batch", "--models", path(&models)])
        .args(["--tutor", "nova", "--tutor", "haiku", "--judge", "haiku"])
        .args(["--out", path(&dir.path().join("r"))])
        .env("AWS_ACCESS_KEY_ID", "not-called")
        .env("AWS_SECRET_ACCESS_KEY", "not-called")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let row = |model: &str| -> (Vec<f64>, String) {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{model} ")))
            .unwrap_or_else(|| panic!("no row for {model}: {stdout}"));
        let costs = line
            .split_whitespace()
            .skip(1)
            .take(4)
            .map(|v| v.parse().unwrap())
            .collect();
        (costs, line.to_owned())
    };
    // Claude with batch settings: half price. Nova has batch prices, but socratic writes no
    // batch records for it: live prices, and said so.
    let (haiku, _) = row("haiku");
    assert!(
        haiku[0] > 0.0 && (haiku[2] - haiku[0] / 2.0).abs() <= 0.0001,
        "{haiku:?}"
    );
    let (nova, line) = row("nova");
    assert!(
        nova[0] > 0.0 && (nova[2], nova[3]) == (nova[0], nova[1]),
        "{nova:?}"
    );
    assert!(line.contains("no batch interface"), "{line}");
}

#[tokio::test]
async fn rejudge_calls_only_the_new_judge_and_report_renders_it_again() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = models_file(dir.path(), &url);
    let manifest = manifest(dir.path(), 2, 1);
    let out = dir.path().join("results");
    let output = socratic(&bench_args("run", &models, &manifest, &out), GOOD_KEY).await;
    assert!(output.status.success(), "{:?}", text(&output));
    let source: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let before = stub.by_model.lock().unwrap().clone();

    let output = socratic(
        &[
            "rejudge",
            "--models",
            path(&models),
            "--judge",
            "stub-judge-2",
            "--out",
            path(&out),
        ],
        GOOD_KEY,
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("RE-JUDGED"), "{stdout}");
    let after = stub.by_model.lock().unwrap().clone();
    for model in ["stub-tutor-v1", "stub-student-v1", "stub-judge-v1"] {
        assert_eq!(
            after.get(model),
            before.get(model),
            "{model} was called again"
        );
    }
    // 2 runs × 2 turns, and the preflight.
    assert_eq!(after["stub-judge-2-v1"], 4 + 1);
    let rejudged: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(rejudged["rejudge_of"], source["manifest"]);
    assert_eq!(rejudged["runs"], 2);
    assert_eq!(rejudged["failed_runs"], 0);

    // The report of the newest manifest, rendered again from its summary alone.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let output = socratic(&["report", "--out", path(&out)], GOOD_KEY).await;
    assert!(output.status.success(), "{:?}", text(&output));
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("RE-JUDGED"),
        "the report names the reused dialogues"
    );
    assert!(report.contains(source["manifest"].as_str().unwrap()));
}

#[tokio::test]
async fn bedrock_models_run_through_the_aws_sdk_and_its_credential_chain() {
    let (url, stub) = serve().await;
    let root = url.trim_end_matches("/v1");
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.toml");
    let mut file = String::new();
    for (id, model) in [
        ("stub-tutor", "anthropic.claude-tutor"),
        ("stub-student", "meta.llama-student"),
        ("stub-judge", "amazon.nova-judge"),
    ] {
        file.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nprovider = \"bedrock\"\nmodel = \"{model}\"\nregion = \"us-east-1\"\nbase_url = \"{root}\"\nprices = {{ input = 3.0, output = 15.0, cache_read = 0.3 }}\n\n"
        ));
    }
    std::fs::write(&models, file).unwrap();
    let manifest = manifest(dir.path(), 2, 1);
    let out = dir.path().join("results");
    let output = Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args([
            "run",
            "--models",
            path(&models),
            "--manifest",
            path(&manifest),
            "--out",
            path(&out),
            "--quiet",
        ])
        // The standard chain: static keys from the environment, no profile files, no
        // instance metadata.
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("no-credentials"),
        )
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let calls = stub.by_model.lock().unwrap().clone();
    // Preflight, then 2 runs × 2 turns for the tutor and the judge, and 2 student replies.
    assert_eq!(calls["anthropic.claude-tutor"], 1 + 4);
    assert_eq!(calls["meta.llama-student"], 1 + 2);
    assert_eq!(calls["amazon.nova-judge"], 1 + 4);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["failed_runs"], 0);
    assert_eq!(summary["unscored_judgments"], 0);
    let tutor = &summary["leaderboard"][0]["usage"]["tutor"]["usage"];
    assert_eq!(tutor["cache_read_tokens"], 4 * 600);
}

#[tokio::test]
async fn ctrl_c_stops_cleanly_and_writes_what_finished() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let child = Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args([
            "run",
            "--out",
            path(&out),
            "--latency-ms",
            "100",
            "--repetitions",
            "20",
            "--quiet",
        ])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let it plan and start, then interrupt it as a terminal would.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().await.unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let note: Value =
        serde_json::from_slice(&std::fs::read(out.join("interrupted.json")).unwrap()).unwrap();
    assert_eq!(note["interrupted"], true);
    assert_eq!(note["runs"], 480);
    assert!(note["finished_runs"].as_u64().unwrap() < 480);
    assert!(!out.join("summary.json").exists());
    // Whatever was written is whole: every blob parses.
    for file in walk(&out) {
        if file.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                serde_json::from_slice::<Value>(&bytes).is_ok(),
                "{} is half-written",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn models_lists_the_file_and_checks_every_model() {
    let (url, stub) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let models = models_file(dir.path(), &url);
    let output = socratic(&["models", "--models", path(&models)], GOOD_KEY).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for id in ["stub-tutor", "stub-student", "stub-judge", "stub-judge-2"] {
        assert!(stdout.contains(id), "{stdout}");
    }
    assert!(stdout.contains("every model answered"), "{stdout}");
    assert_eq!(stub.calls.load(Ordering::SeqCst), 4);

    let output = socratic(&["models", "--models", path(&models)], "sk-wrong").await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("model stub-judge-2"), "{stderr}");
    assert!(stderr.contains("access denied"), "{stderr}");
}
