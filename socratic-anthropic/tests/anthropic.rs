//! The Messages API client and Message Batches over real HTTP, against a local stub that
//! answers with the API reference's bodies.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use socratic_anthropic::{API_VERSION, AnthropicBatchApi, AnthropicConfig, AnthropicLlm};
use socratic_core::llm::{
    BatchApi, BatchJournal, BatchOptions, BatchState, Batcher, Budget, ConverseRequest, LlmClient,
    LlmError, MemoryBatchJournal, Message, Prices, Role, StopReason, StructuredOutput, SystemPart,
};

const TEXT: &str = include_str!("fixtures/message-text.json");
const TOOL_USE: &str = include_str!("fixtures/message-tool-use.json");
const OVERLOADED: &str = include_str!("fixtures/error-overloaded.json");
const RATE_LIMIT: &str = include_str!("fixtures/error-rate-limit.json");
const TOO_LONG: &str = include_str!("fixtures/error-prompt-too-long.json");
const AUTH: &str = include_str!("fixtures/error-authentication.json");
const IN_PROGRESS: &str = include_str!("fixtures/batch-in-progress.json");
const KEY: &str = "sk-ant-stub";

#[derive(Default)]
struct Stub {
    /// Bodies of live calls.
    live: Mutex<Vec<Value>>,
    /// Batches created: their requests.
    batches: Mutex<Vec<Vec<Value>>>,
    /// Polls before a batch ends.
    polls: Mutex<usize>,
    cancelled: Mutex<Vec<String>>,
}

fn json_reply(
    status: StatusCode,
    body: &str,
    headers: &[(&'static str, &'static str)],
) -> Response {
    let mut response = (status, body.to_owned()).into_response();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (name, value) in headers {
        response.headers_mut().insert(*name, value.parse().unwrap());
    }
    response
}

fn check_headers(headers: &HeaderMap) {
    assert_eq!(headers["x-api-key"], KEY);
    assert_eq!(headers["anthropic-version"], API_VERSION);
}

/// The live endpoint: the last user message says which body to answer with.
async fn messages(State(stub): State<Arc<Stub>>, headers: HeaderMap, body: String) -> Response {
    check_headers(&headers);
    let request: Value = serde_json::from_str(&body).unwrap();
    stub.live.lock().unwrap().push(request.clone());
    let asked = request["messages"][0]["content"].as_str().unwrap_or("");
    match asked {
        "overloaded" => json_reply(StatusCode::from_u16(529).unwrap(), OVERLOADED, &[]),
        "rate limit" => json_reply(
            StatusCode::TOO_MANY_REQUESTS,
            RATE_LIMIT,
            &[("retry-after", "7")],
        ),
        "too long" => json_reply(StatusCode::BAD_REQUEST, TOO_LONG, &[]),
        "bad key" => json_reply(StatusCode::UNAUTHORIZED, AUTH, &[]),
        _ if request.get("tools").is_some() => json_reply(StatusCode::OK, TOOL_USE, &[]),
        _ => json_reply(StatusCode::OK, TEXT, &[]),
    }
}

fn batch_object(id: &str, status: &str, base: &str) -> Value {
    let mut batch: Value = serde_json::from_str(IN_PROGRESS).unwrap();
    batch["id"] = json!(id);
    batch["processing_status"] = json!(status);
    if status == "ended" {
        batch["results_url"] = json!(format!("{base}/messages/batches/{id}/results"));
    }
    batch
}

async fn create(State(stub): State<Arc<Stub>>, headers: HeaderMap, body: String) -> Response {
    check_headers(&headers);
    let request: Value = serde_json::from_str(&body).unwrap();
    let requests = request["requests"].as_array().unwrap().clone();
    let mut batches = stub.batches.lock().unwrap();
    let id = format!("msgbatch_{}", batches.len());
    batches.push(requests);
    json_reply(
        StatusCode::OK,
        &batch_object(&id, "in_progress", "").to_string(),
        &[],
    )
}

async fn retrieve(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    check_headers(&headers);
    let host = headers["host"].to_str().unwrap();
    let base = format!("http://{host}/v1");
    let mut polls = stub.polls.lock().unwrap();
    *polls += 1;
    let status = if *polls % 2 == 1 {
        "in_progress"
    } else {
        "ended"
    };
    json_reply(
        StatusCode::OK,
        &batch_object(&id, status, &base).to_string(),
        &[],
    )
}

/// Results of batch `n`: in the first, the request whose text is "invalid" errors and the
/// one whose text is "late" expires; everything else succeeds.
async fn results(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    check_headers(&headers);
    let n: usize = id.trim_start_matches("msgbatch_").parse().unwrap();
    let requests = stub.batches.lock().unwrap()[n].clone();
    let mut lines = Vec::new();
    for r in requests.iter().rev() {
        let asked = r["params"]["messages"][0]["content"].as_str().unwrap_or("");
        let result = match asked {
            "invalid" => {
                json!({"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}})
            }
            "late" if n == 0 => json!({"type": "expired"}),
            _ => {
                json!({"type": "succeeded", "message": serde_json::from_str::<Value>(TEXT).unwrap()})
            }
        };
        lines.push(json!({"custom_id": r["custom_id"], "result": result}).to_string());
    }
    (StatusCode::OK, lines.join("\n") + "\n").into_response()
}

async fn cancel(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    check_headers(&headers);
    stub.cancelled.lock().unwrap().push(id.clone());
    json_reply(
        StatusCode::OK,
        &batch_object(&id, "canceling", "").to_string(),
        &[],
    )
}

async fn serve() -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/batches", post(create))
        .route("/v1/messages/batches/{id}", get(retrieve))
        .route("/v1/messages/batches/{id}/results", get(results))
        .route("/v1/messages/batches/{id}/cancel", post(cancel))
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), stub)
}

fn client(url: &str) -> AnthropicLlm {
    AnthropicLlm::with_environment(
        AnthropicConfig {
            base_url: url.to_owned(),
            ..AnthropicConfig::new()
        },
        |_| Some(KEY.to_owned()),
    )
    .unwrap()
}

fn request(text: &str) -> ConverseRequest {
    let mut request = ConverseRequest::new(
        "claude-sonnet-4-20250514",
        Role::Tutor,
        vec![Message::user(text)],
    );
    request.system = vec![
        SystemPart::cached("You are a Socratic tutor."),
        SystemPart::text("The scenario."),
    ];
    request.max_tokens = 300;
    request.temperature = Some(0.7);
    request
}

fn judge_request() -> ConverseRequest {
    let mut request = request("Score this turn.");
    request.role = Role::Judge;
    request.structured_output = Some(StructuredOutput {
        name: "record_score".into(),
        description: "Record the score.".into(),
        schema: json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}).into(),
    });
    request
}

#[tokio::test]
async fn a_call_sends_cache_marks_and_reads_text_and_cache_usage() {
    let (url, stub) = serve().await;
    let answer = client(&url)
        .converse(&request("Why is metal cold?"))
        .await
        .unwrap();
    assert_eq!(
        answer.text,
        "What do you notice when you touch both at the same temperature?"
    );
    assert_eq!(answer.stop_reason, StopReason::EndTurn);
    assert_eq!(
        (
            answer.usage.input_tokens,
            answer.usage.cache_read_tokens,
            answer.usage.output_tokens
        ),
        (95, 2051, 17)
    );
    let sent = stub.live.lock().unwrap()[0].clone();
    assert_eq!(
        sent["system"],
        json!([
            {"type": "text", "text": "You are a Socratic tutor.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "The scenario."}
        ])
    );
    assert_eq!(sent["max_tokens"], 300);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Why is metal cold?"}])
    );
}

#[tokio::test]
async fn structured_output_is_a_forced_tool_call() {
    let (url, stub) = serve().await;
    let answer = client(&url).converse(&judge_request()).await.unwrap();
    assert_eq!(answer.structured, Some(json!({"score": 4})));
    assert_eq!(answer.stop_reason, StopReason::ToolUse);
    assert_eq!(answer.usage.cache_write_tokens, 1830);
    let sent = stub.live.lock().unwrap()[0].clone();
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "record_score"})
    );
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["score"])
    );
}

#[tokio::test]
async fn errors_map_to_their_kinds() {
    let (url, _stub) = serve().await;
    let client = client(&url);
    let error = client.converse(&request("overloaded")).await.unwrap_err();
    assert!(
        matches!(error, LlmError::Unavailable { .. }) && error.is_retryable(),
        "{error:?}"
    );
    match client.converse(&request("rate limit")).await.unwrap_err() {
        LlmError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
    let error = client.converse(&request("too long")).await.unwrap_err();
    assert!(matches!(error, LlmError::ContextWindow { .. }), "{error:?}");
    let error = client.converse(&request("bad key")).await.unwrap_err();
    assert!(error.to_string().contains("$ANTHROPIC_API_KEY"), "{error}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn message_batches_answer_at_batch_prices_and_resend_only_what_expired() {
    let (url, stub) = serve().await;
    let live = Arc::new(client(&url));
    let api = Arc::new(AnthropicBatchApi::new((*live).clone()));
    let journal = Arc::new(MemoryBatchJournal::new());
    let budget = Arc::new(Budget::unlimited());
    let batcher = Batcher::new(
        Arc::clone(&journal) as Arc<dyn BatchJournal>,
        Arc::clone(&budget),
        None,
        BatchOptions {
            gather: Duration::from_millis(100),
            poll: Duration::from_millis(20),
        },
    );
    let prices = Prices {
        input: 3.0,
        output: 15.0,
        cache_read: 0.3,
        cache_write: 3.75,
        batch_input: Some(1.5),
        batch_output: Some(7.5),
    };
    let lane = batcher.lane("claude", "anthropic stub", api, prices, live);
    let asked = ["Why is metal cold?", "invalid", "late", "What is heat?"];
    let calls = asked.iter().map(|text| {
        let lane = Arc::clone(&lane);
        async move { lane.converse(&request(text)).await }
    });
    let answers = futures::future::join_all(calls).await;

    // The live body, as each request's params.
    let batches = stub.batches.lock().unwrap().clone();
    assert_eq!(batches[0].len(), 4);
    assert_eq!(
        batches[0][0]["params"]["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    // Only the expired request went again.
    assert_eq!(batches.len(), 2);
    let again: BTreeSet<&str> = batches[1]
        .iter()
        .map(|r| r["params"]["messages"][0]["content"].as_str().unwrap())
        .collect();
    assert_eq!(again, BTreeSet::from(["late"]));

    for (text, answer) in asked.iter().zip(&answers) {
        match *text {
            "invalid" => {
                let error = answer.as_ref().unwrap_err();
                assert!(matches!(error, LlmError::Validation { .. }), "{error:?}");
                assert!(
                    error.to_string().contains("max_tokens: Field required"),
                    "{error}"
                );
            }
            _ => {
                let answer = answer.as_ref().unwrap();
                assert!(answer.batched);
                assert_eq!(answer.usage.cache_read_tokens, 2051);
            }
        }
    }
    // Three answers at batch prices: 95 input at $1.50, 2051 cache reads at $0.15, 17 output
    // at $7.50 per million.
    let each = (95.0 * 1.5 + 2051.0 * 0.15 + 17.0 * 7.5) / 1e6;
    assert!(
        (budget.spent() - 3.0 * each).abs() < 1e-12,
        "{}",
        budget.spent()
    );
    let records = journal.all().await.unwrap();
    assert!(records.iter().all(|r| r.state == BatchState::Collected));
    assert!(stub.live.lock().unwrap().is_empty(), "no live call");
}

#[tokio::test]
async fn a_batch_can_be_cancelled_and_none_is_found_without_metadata() {
    let (url, stub) = serve().await;
    let api = AnthropicBatchApi::new(client(&url));
    api.cancel("msgbatch_7").await.unwrap();
    assert_eq!(stub.cancelled.lock().unwrap().as_slice(), ["msgbatch_7"]);
    assert_eq!(api.find("01LOCAL").await.unwrap(), None);
    assert_eq!(api.max_requests(), 100_000);
}
