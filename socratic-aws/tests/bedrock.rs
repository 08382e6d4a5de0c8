//! `BedrockLlm`: conversions and error mapping through the real SDK client with `aws-smithy-mocks`,
//! and end to end through the SDK against a local HTTP stub of `POST /model/{id}/converse`.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::error::{
    AccessDeniedException, ModelNotReadyException, ModelTimeoutException,
    ResourceNotFoundException, ServiceUnavailableException, ThrottlingException,
    ValidationException,
};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput as Output, Message, StopReason as BedrockStop,
    TokenUsage, ToolUseBlock,
};
use aws_sdk_bedrockruntime::{Client, config::Credentials};
use aws_smithy_mocks::{mock, mock_client};
use serde_json::{Value, json};
use socratic_aws::BedrockLlm;
use socratic_core::llm::{
    ConverseRequest, LlmClient, LlmError, Message as LlmMessage, RetryBudget, RetryLlm,
    RetryPolicy, Role, StopReason, StructuredOutput, SystemPart,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request(model: &str) -> ConverseRequest {
    let mut r = ConverseRequest::new(
        model,
        Role::Tutor,
        vec![LlmMessage::user("I think metal is hotter.")],
    );
    r.system = vec![
        SystemPart::cached("You are a Socratic tutor."),
        SystemPart::text("Objective: aporia."),
    ];
    r.temperature = Some(0.5);
    r
}

fn judge_request(model: &str) -> ConverseRequest {
    let mut r = request(model);
    r.role = Role::Judge;
    r.structured_output = Some(StructuredOutput {
        name: "record_judgment".into(),
        description: "Record it.".into(),
        schema: json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}).into(),
    });
    r
}

fn text_output(text: &str) -> ConverseOutput {
    ConverseOutput::builder()
        .output(Output::Message(
            Message::builder()
                .role(ConversationRole::Assistant)
                .content(ContentBlock::Text(text.into()))
                .build()
                .unwrap(),
        ))
        .stop_reason(BedrockStop::EndTurn)
        .usage(
            TokenUsage::builder()
                .input_tokens(10)
                .output_tokens(5)
                .total_tokens(15)
                .cache_read_input_tokens(7)
                .cache_write_input_tokens(3)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn text_answers_carry_usage_with_cache_tokens() {
    let rule = mock!(Client::converse)
        .match_requests(|r| {
            r.model_id() == Some("anthropic.claude-sonnet-4-tutor")
                && r.system().len() == 3 // text, cache point, text
                && r.inference_config().and_then(|c| c.temperature()) == Some(0.5)
                && r.tool_config().is_none()
        })
        .then_output(|| text_output("What makes you say metal is hotter?"));
    let llm = BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&rule]));
    let response = llm
        .converse(&request("anthropic.claude-sonnet-4-tutor"))
        .await
        .unwrap();
    assert_eq!(response.text, "What makes you say metal is hotter?");
    assert_eq!(response.structured, None);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (10, 5)
    );
    assert_eq!(
        (
            response.usage.cache_read_tokens,
            response.usage.cache_write_tokens
        ),
        (7, 3)
    );
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn cache_points_go_only_to_models_that_support_prompt_caching() {
    let rule = mock!(Client::converse)
        .match_requests(|r| r.system().len() == 2) // text, text: no cache point
        .then_output(|| text_output("What do you think?"));
    let llm = BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&rule]));
    llm.converse(&request("us.meta.llama3-3-70b-instruct-v1:0"))
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
    for model in [
        "us.amazon.nova-pro-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
    ] {
        let cached = mock!(Client::converse)
            .match_requests(|r| r.system().len() == 3)
            .then_output(|| text_output("What?"));
        let llm = BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&cached]));
        llm.converse(&request(model)).await.unwrap();
        assert_eq!(cached.num_calls(), 1, "{model} gets cache points");
    }
    assert!(socratic_aws::PromptCaching::Always.applies_to("mistral.mistral-large"));
    assert!(!socratic_aws::PromptCaching::Never.applies_to("anthropic.claude-3"));
}

#[test]
fn cache_point_support_is_decided_per_family_from_the_table() {
    use socratic_aws::PromptCaching::Auto;
    let arn = |kind: &str, id: &str| format!("arn:aws:bedrock:us-east-1:123456789012:{kind}/{id}");
    let supported = [
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        "amazon.nova-pro-v1:0",
        "apac.amazon.nova-lite-v1:0",
        "us.amazon.nova-micro-v1:0",
        "us.amazon.nova-premier-v1:0",
        &arn(
            "foundation-model",
            "anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        &arn("inference-profile", "us.amazon.nova-pro-v1:0"),
    ];
    for model in supported {
        assert!(Auto.applies_to(model), "{model} supports cache points");
    }
    let unsupported = [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-v2:1",
        "us.meta.llama3-3-70b-instruct-v1:0",
        "mistral.mistral-large-2407-v1:0",
        "cohere.command-r-plus-v1:0",
        "ai21.jamba-1-5-large-v1:0",
        "us.deepseek.r1-v1:0",
        "amazon.titan-text-premier-v1:0",
        "openai.gpt-oss-120b-1:0",
        "someone.unknown-model-v1",
        &arn("inference-profile", "us.meta.llama3-3-70b-instruct-v1:0"),
        // An application inference profile does not name its model.
        &arn("application-inference-profile", "a1b2c3d4e5f6"),
    ];
    for model in unsupported {
        assert!(!Auto.applies_to(model), "{model} gets no cache points");
    }
}

#[tokio::test]
async fn an_application_inference_profile_is_cached_by_the_model_it_names() {
    let profile =
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6";
    let uncached = mock!(Client::converse)
        .match_requests(|r| r.system().len() == 2)
        .then_output(|| text_output("What?"));
    BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&uncached]))
        .converse(&request(profile))
        .await
        .unwrap();
    assert_eq!(uncached.num_calls(), 1, "unknown model: no cache point");
    let cached = mock!(Client::converse)
        .match_requests(|r| r.system().len() == 3)
        .then_output(|| text_output("What?"));
    BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&cached]))
        .with_profile_model(profile, "anthropic.claude-sonnet-4-20250514-v1:0")
        .converse(&request(profile))
        .await
        .unwrap();
    assert_eq!(
        cached.num_calls(),
        1,
        "a named Claude profile gets cache points"
    );
}

#[tokio::test]
async fn structured_output_is_a_forced_tool_call() {
    let rule = mock!(Client::converse)
        .match_requests(|r| {
            let Some(tools) = r.tool_config() else { return false };
            matches!(tools.tool_choice(), Some(aws_sdk_bedrockruntime::types::ToolChoice::Tool(t)) if t.name() == "record_judgment")
        })
        .then_output(|| {
            let input = aws_smithy_types::Document::Object(
                [("score".to_owned(), aws_smithy_types::Document::Number(aws_smithy_types::Number::PosInt(4)))].into_iter().collect(),
            );
            let tool = ToolUseBlock::builder().tool_use_id("t1").name("record_judgment").input(input).build().unwrap();
            ConverseOutput::builder()
                .output(Output::Message(Message::builder().role(ConversationRole::Assistant).content(ContentBlock::ToolUse(tool)).build().unwrap()))
                .stop_reason(BedrockStop::ToolUse)
                .build()
                .unwrap()
        });
    let llm = BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&rule]));
    let response = llm.converse(&judge_request("judge-model")).await.unwrap();
    assert_eq!(response.structured, Some(json!({"score": 4})));
    assert_eq!(response.stop_reason, StopReason::ToolUse);
}

#[tokio::test]
async fn a_text_answer_to_a_structured_request_is_invalid_output_with_the_raw_text() {
    let rule = mock!(Client::converse).then_output(|| text_output("I'd give it a 4."));
    let llm = BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&rule]));
    match llm.converse(&judge_request("judge-model")).await {
        Err(LlmError::InvalidOutput { raw, .. }) => assert_eq!(raw, "I'd give it a 4."),
        other => panic!("expected InvalidOutput, got {other:?}"),
    }
}

/// A Bedrock error, what it must map to, and whether that is retryable.
type ErrorCase = (fn() -> ConverseError, fn(&LlmError) -> bool, bool);

#[tokio::test]
async fn errors_are_classified_for_the_retry_layer() {
    let cases: Vec<ErrorCase> = vec![
        (
            || {
                ConverseError::ThrottlingException(
                    ThrottlingException::builder().message("slow").build(),
                )
            },
            |e| matches!(e, LlmError::Throttled { .. }),
            true,
        ),
        (
            || {
                ConverseError::ServiceUnavailableException(
                    ServiceUnavailableException::builder().build(),
                )
            },
            |e| matches!(e, LlmError::Unavailable { .. }),
            true,
        ),
        (
            || ConverseError::ModelNotReadyException(ModelNotReadyException::builder().build()),
            |e| matches!(e, LlmError::Unavailable { .. }),
            true,
        ),
        (
            || ConverseError::ModelTimeoutException(ModelTimeoutException::builder().build()),
            |e| matches!(e, LlmError::Timeout { .. }),
            true,
        ),
        (
            || {
                ConverseError::AccessDeniedException(
                    AccessDeniedException::builder().message("no").build(),
                )
            },
            |e| matches!(e, LlmError::Unavailable { message } if message.contains("access denied")),
            true,
        ),
        (
            || {
                ConverseError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().build(),
                )
            },
            |e| matches!(e, LlmError::ModelNotFound { model } if model == "m"),
            false,
        ),
        (
            || {
                ConverseError::ValidationException(
                    ValidationException::builder()
                        .message("bad temperature")
                        .build(),
                )
            },
            |e| matches!(e, LlmError::Validation { .. }),
            false,
        ),
        (
            || {
                ConverseError::ValidationException(
                    ValidationException::builder()
                        .message("Input is too long for requested model.")
                        .build(),
                )
            },
            |e| matches!(e, LlmError::ContextWindow { .. }),
            false,
        ),
    ];
    for (error, expected, retryable) in cases {
        let shown = format!("{:?}", error());
        let rule = mock!(Client::converse).then_error(error);
        let llm = BedrockLlm::new(mock_client!(aws_sdk_bedrockruntime, [&rule]));
        let got = llm.converse(&request("m")).await.unwrap_err();
        assert!(expected(&got), "{shown} mapped to {got:?}");
        assert_eq!(got.is_retryable(), retryable, "{shown}");
    }
}

/// A stub of Bedrock's Converse endpoint on loopback, answering by model id.
struct Stub {
    url: String,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn stub() -> Stub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head, body) = loop {
                    let n = socket.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        while buffer.len() < end + 4 + length {
                            let n = socket.read(&mut chunk).await.unwrap();
                            buffer.extend_from_slice(&chunk[..n]);
                        }
                        break (head, buffer[end + 4..end + 4 + length].to_vec());
                    }
                };
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let model = path
                    .trim_start_matches("/model/")
                    .trim_end_matches("/converse")
                    .to_owned();
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let count = {
                    let mut all = seen.lock().unwrap();
                    all.push((model.clone(), json));
                    all.iter().filter(|(m, _)| *m == model).count()
                };
                let ok = |body: Value| (200, None, body.to_string());
                let (status, error_type, body) = match model.as_str() {
                    "text-model" => ok(json!({
                        "output": {"message": {"role": "assistant", "content": [{"text": "What do you notice?"}]}},
                        "stopReason": "end_turn",
                        "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16, "cacheReadInputTokens": 8},
                        "metrics": {"latencyMs": 3}
                    })),
                    "anthropic.claude-sonnet-4-tool" => ok(json!({
                        "output": {"message": {"role": "assistant", "content": [
                            {"toolUse": {"toolUseId": "t1", "name": "record_judgment", "input": {"score": 5}}}
                        ]}},
                        "stopReason": "tool_use",
                        "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39},
                        "metrics": {"latencyMs": 3}
                    })),
                    "flaky-model" if count == 1 => (
                        429,
                        Some("ThrottlingException"),
                        json!({"message": "Too many requests"}).to_string(),
                    ),
                    "flaky-model" => ok(json!({
                        "output": {"message": {"role": "assistant", "content": [{"text": "Second time lucky?"}]}},
                        "stopReason": "end_turn",
                        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                        "metrics": {"latencyMs": 1}
                    })),
                    "denied-model" => (
                        403,
                        Some("AccessDeniedException"),
                        json!({"message": "You don't have access"}).to_string(),
                    ),
                    "malformed-model" => (200, None, "{\"output\": {\"message\": ".to_owned()),
                    _ => (
                        404,
                        Some("ResourceNotFoundException"),
                        json!({"message": "no such model"}).to_string(),
                    ),
                };
                let reason = match status {
                    200 => "OK",
                    403 => "Forbidden",
                    404 => "Not Found",
                    _ => "Too Many Requests",
                };
                let mut response = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                if let Some(kind) = error_type {
                    response.push_str(&format!("x-amzn-errortype: {kind}\r\n"));
                }
                response.push_str("\r\n");
                response.push_str(&body);
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Stub { url, requests }
}

async fn stub_client(url: &str) -> BedrockLlm {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::v2026_01_12())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    BedrockLlm::from_conf(&sdk)
}

#[tokio::test]
async fn end_to_end_through_the_sdk_against_a_stub() {
    let stub = stub().await;
    let llm = stub_client(&stub.url).await;

    let text = llm.converse(&request("text-model")).await.unwrap();
    assert_eq!(text.text, "What do you notice?");
    assert_eq!(text.usage.cache_read_tokens, 8);

    let tool = llm
        .converse(&judge_request("anthropic.claude-sonnet-4-tool"))
        .await
        .unwrap();
    assert_eq!(tool.structured, Some(json!({"score": 5})));
    let (_, sent) = stub
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|(m, _)| m == "anthropic.claude-sonnet-4-tool")
        .cloned()
        .unwrap();
    assert_eq!(
        sent["toolConfig"]["toolChoice"]["tool"]["name"],
        "record_judgment"
    );
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"],
        json!(["score"])
    );
    assert_eq!(
        sent["system"][1],
        json!({"cachePoint": {"type": "default"}}),
        "a cache point follows the cached part"
    );
    assert_eq!(sent["messages"][0]["role"], "user");

    // SDK retries are off: the throttle surfaces, and the retry layer recovers from it.
    match llm.converse(&request("flaky-model")).await {
        Err(e @ LlmError::Throttled { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Throttled, got {other:?}"),
    }
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        budget: Arc::new(RetryBudget::unlimited()),
        ..RetryPolicy::default()
    };
    let retried = RetryLlm::new(stub_client(&stub.url).await, policy)
        .converse(&request("flaky-model"))
        .await
        .unwrap();
    assert_eq!(retried.text, "Second time lucky?");

    // Access denied is a deployment fault: retryable, so the job waits for the fix.
    match llm.converse(&request("denied-model")).await {
        Err(e @ LlmError::Unavailable { .. }) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("access denied"), "{e}");
        }
        other => panic!("expected a retryable deployment fault, got {other:?}"),
    }
    let malformed = llm.converse(&request("malformed-model")).await.unwrap_err();
    assert!(
        matches!(
            malformed,
            LlmError::Unavailable { .. } | LlmError::Other { .. }
        ),
        "{malformed:?}"
    );
    assert!(matches!(
        llm.converse(&request("no-such-model")).await,
        Err(LlmError::ModelNotFound { .. })
    ));
}

#[tokio::test]
async fn bedrock_passes_the_llm_contract_against_the_stub() {
    let stub = stub().await;
    let llm = stub_client(&stub.url).await;
    socratic_core::testkit::llm::answers_text(&llm, "text-model").await;
    socratic_core::testkit::llm::answers_structured_output(&llm, "anthropic.claude-sonnet-4-tool")
        .await;
    socratic_core::testkit::llm::rejects_invalid_requests(&llm, "text-model").await;
}

/// Each model of the example Bedrock catalog gets cache points exactly as docs/models.md says
/// (from Bedrock's documentation of prompt caching).
#[test]
fn the_example_catalog_gets_cache_points_as_the_docs_list_them() {
    let catalog = include_str!("../../examples/models/bedrock.toml");
    let docs = include_str!("../../docs/models.md");
    let models: Vec<&str> = catalog
        .lines()
        .filter_map(|line| line.trim().strip_prefix("model = "))
        .map(|value| value.trim_matches('"'))
        .collect();
    assert!(models.len() >= 4, "{models:?}");
    for model in models {
        let row = docs
            .lines()
            .filter(|line| line.ends_with("| yes |") || line.ends_with("| no |"))
            .find(|line| line.contains(&format!("`{model}`")))
            .unwrap_or_else(|| panic!("docs/models.md's cache-point table has no row for {model}"));
        let documented = row.ends_with("| yes |");
        assert_eq!(
            socratic_aws::PromptCaching::Auto.applies_to(model),
            documented,
            "{model}: {row}"
        );
    }
}
