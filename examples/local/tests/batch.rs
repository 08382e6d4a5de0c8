//! `socratic run --batch` end to end, as a child process, against a local stub of OpenAI's
//! Files and Batch APIs over real HTTP. The stub's bodies follow the API reference: the file
//! object of `POST /files`, the batch object of `POST /batches` and `GET /batches/{id}`, and
//! the request output objects of the output and error files. Its chat completions are
//! deterministic in the request, so the same benchmark run live and batched must agree run
//! for run.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::process::Command;

mod support;

use support::{digest, outcomes, satisfy};

const KEY_VARIABLE: &str = "STUB_BATCH_KEY";
const KEY: &str = "sk-stub-batch";

/// How the stub's batches end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    #[default]
    Complete,
    /// The first batch completes with one request failed (a 500 in the error file).
    FailFirst,
    /// The first batch expires with half its requests answered.
    ExpireFirst,
    /// The first batch's output file has a line that is not JSON.
    Malformed,
    /// The first batch's output file has a line for a custom id nobody sent.
    UnknownId,
    /// The first batch's output file is far larger than its requests can be.
    Oversize,
}

struct StubBatch {
    id: String,
    input_file_id: String,
    local_id: String,
    lines: Vec<Value>,
    held: bool,
    cancelled: bool,
}

#[derive(Default)]
struct Provider {
    chat_calls: AtomicU64,
    files: Mutex<HashMap<String, String>>,
    batches: Mutex<Vec<StubBatch>>,
    /// New batches stay `in_progress` until released.
    hold: std::sync::atomic::AtomicBool,
    mode: Mutex<Mode>,
}

impl Provider {
    fn created(&self) -> usize {
        self.batches.lock().unwrap().len()
    }

    /// The custom ids of every batch, in creation order.
    fn custom_ids(&self) -> Vec<Vec<String>> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                b.lines
                    .iter()
                    .map(|l| l["custom_id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    }

    fn release_all(&self) {
        for batch in self.batches.lock().unwrap().iter_mut() {
            batch.held = false;
        }
    }
}

/// The chat completion the stub answers `request` with, live or in a batch.
fn completion(request: &Value) -> Value {
    let seed = digest(&request["messages"].to_string());
    let message = match request["tools"][0]["function"]["parameters"].as_object() {
        Some(_) => {
            let arguments = satisfy(&request["tools"][0]["function"]["parameters"], seed);
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": request["tools"][0]["function"]["name"], "arguments": arguments.to_string()}
            }], "refusal": null})
        }
        None => json!({
            "role": "assistant",
            "content": format!("What do you notice about case {}?", seed % 997),
            "refusal": null
        }),
    };
    json!({
        "id": format!("chatcmpl-{}", seed % 100_000), "object": "chat.completion", "created": 1711475054,
        "model": request["model"], "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000 + seed % 50, "completion_tokens": 100 + seed % 20, "total_tokens": 1100 + seed % 70,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
        "system_fingerprint": null
    })
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn chat(State(p): State<Arc<Provider>>, headers: HeaderMap, body: String) -> Response {
    assert!(authorized(&headers));
    p.chat_calls.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_str(&body).unwrap();
    json_response(StatusCode::OK, &completion(&request))
}

/// `POST /files`: the `file` part of a multipart body.
async fn upload(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    assert!(authorized(&headers));
    let content_type = headers["content-type"].to_str().unwrap();
    let boundary = content_type.split("boundary=").nth(1).unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let file_part = text
        .split(&format!("--{boundary}"))
        .find(|part| part.contains("name=\"file\""))
        .unwrap();
    let purpose_ok = text.contains("name=\"purpose\"\r\n\r\nbatch\r\n");
    assert!(purpose_ok, "purpose=batch");
    let content = file_part
        .split_once("\r\n\r\n")
        .unwrap()
        .1
        .trim_end_matches("\r\n")
        .to_owned();
    let mut files = p.files.lock().unwrap();
    let id = format!("file-in{}", files.len());
    let bytes = content.len();
    files.insert(id.clone(), content);
    json_response(
        StatusCode::OK,
        &json!({"id": id, "object": "file", "bytes": bytes, "created_at": 1711471533,
                "filename": "batchinput.jsonl", "purpose": "batch"}),
    )
}

fn batch_object(
    batch: &StubBatch,
    status: &str,
    output: Option<&str>,
    error: Option<&str>,
) -> Value {
    let total = batch.lines.len();
    json!({
        "id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": null,
        "input_file_id": batch.input_file_id, "completion_window": "24h", "status": status,
        "output_file_id": output, "error_file_id": error,
        "created_at": 1711471533, "in_progress_at": 1711471538, "expires_at": 1711557933,
        "finalizing_at": null, "completed_at": null, "failed_at": null, "expired_at": null,
        "cancelling_at": null, "cancelled_at": null,
        "request_counts": {"total": total, "completed": 0, "failed": 0},
        "metadata": {"socratic_batch": batch.local_id}
    })
}

async fn create_batch(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    assert!(authorized(&headers));
    let request: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(request["endpoint"], "/v1/chat/completions");
    assert_eq!(request["completion_window"], "24h");
    let input = request["input_file_id"].as_str().unwrap().to_owned();
    let lines: Vec<Value> = p.files.lock().unwrap()[&input]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut batches = p.batches.lock().unwrap();
    let batch = StubBatch {
        id: format!("batch_{}", batches.len()),
        input_file_id: input,
        local_id: request["metadata"]["socratic_batch"]
            .as_str()
            .unwrap()
            .to_owned(),
        lines,
        held: p.hold.load(Ordering::SeqCst),
        cancelled: false,
    };
    let object = batch_object(&batch, "validating", None, None);
    batches.push(batch);
    json_response(StatusCode::OK, &object)
}

fn output_line(index: usize, line: &Value) -> String {
    json!({"id": format!("batch_req_{index}"), "custom_id": line["custom_id"],
           "response": {"status_code": 200, "request_id": format!("req_{index}"), "body": completion(&line["body"])},
           "error": null})
    .to_string()
}

async fn retrieve(State(p): State<Arc<Provider>>, UrlPath(id): UrlPath<String>) -> Response {
    let mode = *p.mode.lock().unwrap();
    let batches = p.batches.lock().unwrap();
    let index = batches.iter().position(|b| b.id == id).unwrap();
    let batch = &batches[index];
    if batch.held && !batch.cancelled {
        return json_response(
            StatusCode::OK,
            &batch_object(batch, "in_progress", None, None),
        );
    }
    let first = index == 0;
    let mut output = Vec::new();
    let mut errors = Vec::new();
    let mut status = "completed";
    for (i, line) in batch.lines.iter().enumerate() {
        let cut = batch.cancelled || (first && mode == Mode::ExpireFirst);
        if cut && i % 2 == 1 {
            let (code, message) = if batch.cancelled {
                (
                    "batch_cancelled",
                    "This request was not executed because the batch was cancelled.",
                )
            } else {
                (
                    "batch_expired",
                    "This request could not be executed before the completion window expired.",
                )
            };
            errors.push(json!({"id": format!("batch_req_{i}"), "custom_id": line["custom_id"], "response": null,
                               "error": {"code": code, "message": message}}).to_string());
        } else if first && mode == Mode::FailFirst && i == 0 {
            errors.push(json!({"id": format!("batch_req_{i}"), "custom_id": line["custom_id"],
                               "response": {"status_code": 500, "request_id": format!("req_{i}"),
                                            "body": {"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}},
                               "error": null}).to_string());
        } else {
            output.push(output_line(i, line));
        }
    }
    if first {
        match mode {
            Mode::ExpireFirst => status = "expired",
            Mode::Malformed => output.insert(0, "{\"id\": \"batch_req_x\", \"custom_id\":".to_owned()),
            Mode::UnknownId => output.push(
                json!({"id": "batch_req_y", "custom_id": "request-2", "response": {"status_code": 200,
                       "request_id": "req_y", "body": completion(&batch.lines[0]["body"])}, "error": null}).to_string(),
            ),
            Mode::Oversize => output.push(" ".repeat(batch.lines.len() * 200_000)),
            _ => {}
        }
    }
    if batch.cancelled {
        status = "cancelled";
    }
    let mut files = p.files.lock().unwrap();
    let out_id = format!("file-out{index}");
    files.insert(out_id.clone(), output.join("\n") + "\n");
    let err_id = (!errors.is_empty()).then(|| {
        let id = format!("file-err{index}");
        files.insert(id.clone(), errors.join("\n") + "\n");
        id
    });
    json_response(
        StatusCode::OK,
        &batch_object(batch, status, Some(&out_id), err_id.as_deref()),
    )
}

async fn list(State(p): State<Arc<Provider>>) -> Response {
    let batches = p.batches.lock().unwrap();
    let data: Vec<Value> = batches
        .iter()
        .rev()
        .map(|b| batch_object(b, "in_progress", None, None))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "first_id": data.first().map(|b| b["id"].clone()),
                "last_id": data.last().map(|b| b["id"].clone()), "has_more": false}),
    )
}

async fn content(State(p): State<Arc<Provider>>, UrlPath(id): UrlPath<String>) -> Response {
    match p.files.lock().unwrap().get(&id) {
        Some(text) => (StatusCode::OK, text.clone()).into_response(),
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": {"message": "No such File object", "type": "invalid_request_error"}}),
        ),
    }
}

async fn cancel(State(p): State<Arc<Provider>>, UrlPath(id): UrlPath<String>) -> Response {
    let mut batches = p.batches.lock().unwrap();
    let batch = batches.iter_mut().find(|b| b.id == id).unwrap();
    batch.cancelled = true;
    json_response(
        StatusCode::OK,
        &batch_object(batch, "cancelling", None, None),
    )
}

async fn serve(mode: Mode) -> (String, Arc<Provider>) {
    let provider = Arc::new(Provider::default());
    *provider.mode.lock().unwrap() = mode;
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/files", post(upload))
        .route("/v1/files/{id}/content", get(content))
        .route("/v1/batches", post(create_batch).get(list))
        .route("/v1/batches/{id}", get(retrieve))
        .route("/v1/batches/{id}/cancel", post(cancel))
        .with_state(Arc::clone(&provider));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), provider)
}

/// Three models on the stub, with batch prices half the live ones.
fn models_file(dir: &Path, base_url: &str) -> PathBuf {
    let path = dir.join("models.toml");
    let mut text = String::new();
    for id in ["stub-tutor", "stub-student", "stub-judge"] {
        text.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nprovider = \"openai\"\nmodel = \"{id}-v1\"\nbase_url = \"{base_url}\"\napi_key_env = \"{KEY_VARIABLE}\"\nprices = {{ input = 1.0, output = 4.0, batch_input = 0.5, batch_output = 2.0 }}\n\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Four scenarios × two repetitions, two turns: rounds of 8 tutor, 8 student, 8 tutor and
/// 16 judge requests.
fn manifest(dir: &Path) -> PathBuf {
    support::manifest(
        dir,
        4,
        2,
        ["stub-tutor", "stub-student", "stub-judge"],
        "batch benchmark",
    )
}

struct Bench {
    _dir: tempfile::TempDir,
    models: PathBuf,
    manifest: PathBuf,
    root: PathBuf,
}

impl Bench {
    fn new(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        Self {
            models: models_file(&root, url),
            manifest: manifest(&root),
            root,
            _dir: dir,
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn command(&self, out: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_socratic"));
        command
            .args(["run", "--quiet", "--no-preflight"])
            .arg("--models")
            .arg(&self.models)
            .arg("--manifest")
            .arg(&self.manifest)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env(KEY_VARIABLE, KEY)
            .env("RUST_LOG", "error")
            .kill_on_drop(true);
        command
    }

    async fn run(&self, out: &Path, extra: &[&str]) -> Output {
        self.command(out, extra).output().await.unwrap()
    }

    async fn batched(&self, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "--batch",
            "--batch-poll-seconds",
            "0.05",
            "--batch-gather-seconds",
            "2",
        ];
        args.extend_from_slice(extra);
        self.run(out, &args).await
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What `socratic batches` prints for `out`.
async fn batches_listing(out: &Path) -> String {
    let listed = Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args(["batches", "--out"])
        .arg(out)
        .output()
        .await
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    String::from_utf8_lossy(&listed.stdout).into_owned()
}

fn summary(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

/// The leaderboard without what differs between two benchmarks of the same answers: the
/// manifest id, and the cost and usage (batched calls are cheaper, cached ones free).
fn leaderboard(summary: &Value) -> Value {
    let mut rows = summary["leaderboard"].clone();
    for row in rows.as_array_mut().unwrap() {
        let row = row.as_object_mut().unwrap();
        for key in [
            "manifest",
            "cost_usd",
            "usage",
            "latency_p50_ms",
            "latency_p95_ms",
        ] {
            row.remove(key);
        }
    }
    rows
}

/// The benchmark run live against the same stub: the reference the batched runs must equal.
async fn live_reference(bench: &Bench) -> (BTreeMap<String, Value>, Value) {
    let out = bench.out("live");
    let output = bench.run(&out, &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    (outcomes(&out).await, summary(&out))
}

/// Rounds of 8 tutor, 8 student and 8 tutor requests, then the 16 judge calls: in one batch,
/// or two when a run's judge calls came after the gather window (a straggler waits for the
/// next round; it costs wall time, not money).
fn assert_judge_rounds(sizes: &[usize]) {
    assert_eq!(sizes[..3], [8, 8, 8], "{sizes:?}");
    assert!(matches!(sizes.len(), 4 | 5), "{sizes:?}");
    assert_eq!(sizes[3..].iter().sum::<usize>(), 16, "{sizes:?}");
}

fn assert_no_request_sent_twice(provider: &Provider) {
    assert_sent_twice_only(provider, &BTreeSet::new());
}

/// Every request went into one batch, except those in `again` (left unanswered by the
/// provider), which went into exactly two.
fn assert_sent_twice_only(provider: &Provider, again: &BTreeSet<&String>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in provider.custom_ids().into_iter().flatten() {
        *seen.entry(id).or_default() += 1;
    }
    for (id, times) in seen {
        let expected = if again.contains(&id) { 2 } else { 1 };
        assert_eq!(
            times, expected,
            "custom id {id} was submitted {times} time(s)"
        );
    }
}

#[tokio::test]
async fn a_batch_benchmark_equals_the_live_one_run_for_run_at_half_the_price() {
    let (url, provider) = serve(Mode::Complete).await;
    let bench = Bench::new(&url);
    let (live, live_summary) = live_reference(&bench).await;
    let live_calls = provider.chat_calls.load(Ordering::SeqCst);
    // 8 runs: 16 tutor, 8 student and 16 judge calls.
    assert_eq!(live_calls, 40);

    let out = bench.out("batched");
    let output = bench.batched(&out, &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("batch mode: stub-tutor, stub-student, stub-judge"),
        "{}",
        text(&output)
    );
    assert_eq!(
        provider.chat_calls.load(Ordering::SeqCst),
        live_calls,
        "no live call"
    );
    // Turn-synchronous: tutor, student, tutor, then the judge calls.
    let sizes: Vec<usize> = provider.custom_ids().iter().map(Vec::len).collect();
    assert_judge_rounds(&sizes);
    assert_no_request_sent_twice(&provider);
    assert_eq!(outcomes(&out).await, live);
    let batched_summary = summary(&out);
    assert_eq!(leaderboard(&batched_summary), leaderboard(&live_summary));
    // Latency is a live call's: the batched tutor has none, not a latency of 0.
    let tutor = |summary: &Value| summary["leaderboard"][0].clone();
    assert!(tutor(&live_summary)["latency_p50_ms"].is_number());
    assert!(
        tutor(&batched_summary)["latency_p50_ms"].is_null(),
        "{}",
        tutor(&batched_summary)
    );
    let (live_cost, batch_cost) = (
        live_summary["cost_usd"].as_f64().unwrap(),
        batched_summary["cost_usd"].as_f64().unwrap(),
    );
    assert!(
        (batch_cost - live_cost / 2.0).abs() < 1e-9,
        "batch ${batch_cost} vs live ${live_cost}"
    );

    // Every batch is on record, collected.
    let listing = batches_listing(&out).await;
    assert_eq!(listing.matches(" collected ").count(), 4, "{listing}");

    // The batched answers are in the response cache under the live calls' keys: a replay
    // from it, without --batch, calls nothing and comes out the same.
    let replayed = bench.out("replayed");
    let cache = out.to_str().unwrap().to_owned();
    let output = bench.run(&replayed, &["--replay", "--cache", &cache]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(provider.created(), sizes.len(), "no batch");
    assert_eq!(provider.chat_calls.load(Ordering::SeqCst), live_calls);
    assert_eq!(outcomes(&replayed).await, live);
}

#[tokio::test]
async fn a_benchmark_killed_between_submit_and_completion_resumes_without_resubmitting() {
    let (url, provider) = serve(Mode::Complete).await;
    let bench = Bench::new(&url);
    let (live, live_summary) = live_reference(&bench).await;

    provider.hold.store(true, Ordering::SeqCst);
    let out = bench.out("batched");
    let mut child = bench
        .command(
            &out,
            &[
                "--batch",
                "--batch-poll-seconds",
                "0.05",
                "--batch-gather-seconds",
                "2",
            ],
        )
        .spawn()
        .unwrap();
    while provider.created() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let it poll a few times, then SIGKILL it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert_eq!(provider.created(), 1);

    let listing = batches_listing(&out).await;
    assert!(
        listing.contains("batch_0") && listing.contains(" submitted "),
        "{listing}"
    );

    provider.hold.store(false, Ordering::SeqCst);
    provider.release_all();
    let output = bench.batched(&out, &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    // The first batch was collected, not sent again.
    let sizes: Vec<usize> = provider.custom_ids().iter().map(Vec::len).collect();
    assert_judge_rounds(&sizes);
    assert_no_request_sent_twice(&provider);
    assert_eq!(outcomes(&out).await, live);
    assert_eq!(leaderboard(&summary(&out)), leaderboard(&live_summary));
}

#[tokio::test]
async fn run_batch_detach_submits_a_round_and_returns_until_the_benchmark_finishes() {
    let (url, provider) = serve(Mode::Complete).await;
    let bench = Bench::new(&url);
    let (live, _) = live_reference(&bench).await;
    provider.hold.store(true, Ordering::SeqCst);
    let out = bench.out("batched");
    let mut detached = 0;
    let finished = loop {
        let output = bench.batched(&out, &["--detach"]).await;
        match output.status.code() {
            Some(75) => {
                assert!(
                    String::from_utf8_lossy(&output.stderr).contains("detached:"),
                    "{}",
                    text(&output)
                );
                detached += 1;
                assert_eq!(provider.created(), detached, "one new round per invocation");
                let note: Value =
                    serde_json::from_slice(&std::fs::read(out.join("interrupted.json")).unwrap())
                        .unwrap();
                assert_eq!(
                    (note["detached"].as_bool(), note["interrupted"].as_bool()),
                    (Some(true), Some(false))
                );
                provider.release_all();
            }
            Some(0) => break output,
            _ => panic!("{}", text(&output)),
        }
        assert!(detached <= 5, "more rounds than the benchmark has");
    };
    assert!(finished.status.success());
    assert!(out.join("summary.json").exists());
    // One invocation per round: tutor, student, tutor, judges (in one or two rounds).
    let sizes: Vec<usize> = provider.custom_ids().iter().map(Vec::len).collect();
    assert_judge_rounds(&sizes);
    assert_eq!(detached, sizes.len());
    assert_no_request_sent_twice(&provider);
    assert_eq!(outcomes(&out).await, live);
}

#[tokio::test]
async fn failed_and_expired_requests_are_sent_again_and_only_they() {
    for mode in [Mode::FailFirst, Mode::ExpireFirst] {
        let (url, provider) = serve(mode).await;
        let bench = Bench::new(&url);
        let (live, _) = live_reference(&bench).await;
        let out = bench.out("batched");
        let output = bench.batched(&out, &[]).await;
        assert!(output.status.success(), "{mode:?}: {}", text(&output));
        let batches = provider.custom_ids();
        // Sent again: the first batch's requests found in a later one (the requeued tutor
        // batch and the other runs' student batch go out together, in either order).
        let requeued: BTreeSet<&String> = batches[1..]
            .iter()
            .flatten()
            .filter(|id| batches[0].contains(id))
            .collect();
        let expected: BTreeSet<&String> = match mode {
            // The first request failed with a 500.
            Mode::FailFirst => batches[0].iter().take(1).collect(),
            // Every second request expired.
            _ => batches[0].iter().skip(1).step_by(2).collect(),
        };
        assert_eq!(
            requeued, expected,
            "{mode:?}: only the unanswered requests again"
        );
        assert_sent_twice_only(&provider, &expected);
        assert_eq!(outcomes(&out).await, live, "{mode:?}");
    }
}

#[tokio::test]
async fn the_cap_stops_a_batch_whose_worst_case_does_not_fit() {
    let (url, provider) = serve(Mode::Complete).await;
    let bench = Bench::new(&url);
    let out = bench.out("batched");
    let output = bench.batched(&out, &["--max-cost", "0.001"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert_eq!(provider.created(), 0, "no batch submitted");
    assert_eq!(provider.chat_calls.load(Ordering::SeqCst), 0);
    let summary = summary(&out);
    assert_eq!(summary["stopped_by_budget"], true);
    assert_eq!(summary["cost_usd"].as_f64(), Some(0.0));
}

#[tokio::test]
async fn bad_output_files_fail_the_runs_with_a_typed_reason_and_keep_the_batch() {
    for (mode, reason) in [
        (Mode::Malformed, "output line 1 is malformed"),
        (
            Mode::UnknownId,
            "is for custom id \"request-2\", which the batch did not send",
        ),
        (Mode::Oversize, "more than the"),
    ] {
        let (url, provider) = serve(mode).await;
        let bench = Bench::new(&url);
        let out = bench.out("batched");
        let output = bench.batched(&out, &[]).await;
        let all = text(&output);
        assert_eq!(output.status.code(), Some(4), "{mode:?}: {all}");
        assert!(all.contains(reason), "{mode:?}: {all}");
        assert_eq!(provider.created(), 1, "{mode:?}");
        // The batch was paid for: it stays on record, open.
        let listing = batches_listing(&out).await;
        assert!(listing.contains(" submitted "), "{mode:?}: {listing}");
    }
}

#[tokio::test]
async fn batches_cancel_asks_the_provider_and_the_next_run_collects_what_was_answered() {
    let (url, provider) = serve(Mode::Complete).await;
    let bench = Bench::new(&url);
    let (live, _) = live_reference(&bench).await;
    provider.hold.store(true, Ordering::SeqCst);
    let out = bench.out("batched");
    let output = bench.batched(&out, &["--detach"]).await;
    assert_eq!(output.status.code(), Some(75), "{}", text(&output));

    let cancelled = Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args(["batches", "--cancel", "--models"])
        .arg(&bench.models)
        .arg("--out")
        .arg(&out)
        .env(KEY_VARIABLE, KEY)
        .output()
        .await
        .unwrap();
    assert!(cancelled.status.success(), "{}", text(&cancelled));
    assert!(String::from_utf8_lossy(&cancelled.stdout).contains("cancelling batch_0"));
    assert!(provider.batches.lock().unwrap()[0].cancelled);

    provider.hold.store(false, Ordering::SeqCst);
    let output = bench.batched(&out, &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    let batches = provider.custom_ids();
    // Half the first round was answered before the cancel; only the other half again.
    let unanswered: BTreeSet<&String> = batches[0].iter().skip(1).step_by(2).collect();
    let again: BTreeSet<&String> = batches[1..]
        .iter()
        .flatten()
        .filter(|id| batches[0].contains(id))
        .collect();
    assert_eq!(again, unanswered);
    assert_sent_twice_only(&provider, &unanswered);
    assert_eq!(outcomes(&out).await, live);
}
