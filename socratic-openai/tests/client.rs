//! `OpenAiLlm` over real HTTP, against a local stub server that replays response bodies in
//! the shapes real servers send (see `fixtures/README.md`).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use socratic_core::llm::{
    ConverseRequest, LlmClient, LlmError, Message, Role, StopReason, StructuredOutput, SystemPart,
};
use socratic_openai::{ConfigError, OpenAiConfig, OpenAiLlm, StructuredMode, TokenLimitField};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the stub answers.
#[derive(Clone)]
enum Script {
    /// 200 with `text` for plain requests and `structured` for requests with tools or a
    /// response format.
    Replay { text: String, structured: String },
    /// Always this status, headers and body.
    Fail {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Never answers in time.
    Hang,
}

struct Stub {
    script: Script,
    seen: Mutex<Vec<(HeaderMap, Value)>>,
}

async fn chat(State(stub): State<Arc<Stub>>, headers: HeaderMap, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).expect("the client sends JSON");
    let structured = request.get("tools").is_some() || request.get("response_format").is_some();
    stub.seen.lock().unwrap().push((headers, request));
    match &stub.script {
        Script::Replay {
            text,
            structured: with_schema,
        } => {
            let body = if structured { with_schema } else { text };
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                body.clone(),
            )
                .into_response()
        }
        Script::Fail {
            status,
            headers,
            body,
        } => {
            let mut response =
                (StatusCode::from_u16(*status).unwrap(), body.clone()).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(*name, value.parse().unwrap());
            }
            response
        }
        Script::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
    }
}

async fn serve(script: Script) -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub {
        script,
        seen: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), stub)
}

fn replay(text: &str, structured: &str) -> Script {
    Script::Replay {
        text: fixture(text),
        structured: fixture(structured),
    }
}

fn fail(status: u16, body: &str) -> Script {
    Script::Fail {
        status,
        headers: Vec::new(),
        body: fixture(body),
    }
}

fn client(base_url: &str, structured: StructuredMode) -> OpenAiLlm {
    OpenAiLlm::new(OpenAiConfig {
        structured,
        timeout: Duration::from_secs(5),
        ..OpenAiConfig::new(base_url)
    })
    .unwrap()
}

fn tutor_request() -> ConverseRequest {
    let mut request = ConverseRequest::new(
        "some-model",
        Role::Tutor,
        vec![Message::user("I think metal is colder than wood.")],
    );
    request.system = vec![
        SystemPart::cached("You are a Socratic tutor."),
        SystemPart::text("Ask one question."),
    ];
    request.temperature = Some(0.7);
    request.max_tokens = 300;
    request
}

fn judge_request() -> ConverseRequest {
    let mut request = tutor_request();
    request.role = Role::Judge;
    request.structured_output = Some(StructuredOutput {
        name: "record_score".into(),
        description: "Record the score".into(),
        schema: json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}).into(),
    });
    request
}

#[tokio::test]
async fn every_server_passes_the_llm_conformance_suite() {
    for (text, structured, mode) in [
        (
            "openai-text.json",
            "openai-tool-call.json",
            StructuredMode::Tools,
        ),
        (
            "vllm-text.json",
            "vllm-tool-call.json",
            StructuredMode::Tools,
        ),
        (
            "ollama-text.json",
            "ollama-json-schema.json",
            StructuredMode::JsonSchema,
        ),
        (
            "llamacpp-text.json",
            "llamacpp-json-schema.json",
            StructuredMode::JsonSchema,
        ),
        // Text mode sends no schema field, so the stub gives every request the JSON answer.
        (
            "ollama-text-with-json.json",
            "ollama-text-with-json.json",
            StructuredMode::Text,
        ),
    ] {
        let (url, stub) = serve(replay(text, structured)).await;
        let client = client(&url, mode);
        socratic_core::testkit::llm::run_all(&client, "some-model").await;
        // Invalid requests are refused before anything is sent.
        assert_eq!(stub.seen.lock().unwrap().len(), 2, "{text}");
    }
}

#[tokio::test]
async fn a_plain_request_maps_messages_sampling_and_usage() {
    let (url, stub) = serve(replay("openai-text.json", "openai-tool-call.json")).await;
    let response = client(&url, StructuredMode::Tools)
        .converse(&tutor_request())
        .await
        .unwrap();
    assert!(response.text.starts_with("Before we settle on blue"));
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    // 1324 prompt tokens of which 1280 came from the provider's cache.
    assert_eq!(response.usage.input_tokens, 44);
    assert_eq!(response.usage.cache_read_tokens, 1280);
    assert_eq!(response.usage.output_tokens, 21);
    assert!(!response.cached);

    let seen = stub.seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert!(headers.get("authorization").is_none(), "no key configured");
    assert_eq!(body["model"], "some-model");
    assert_eq!(body["stream"], false);
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(body["temperature"], 0.7);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are a Socratic tutor.\n\nAsk one question."},
            {"role": "user", "content": "I think metal is colder than wood."}
        ])
    );
    assert!(body.get("tools").is_none() && body.get("response_format").is_none());
}

#[tokio::test]
async fn llama_cpp_cached_tokens_and_vllm_null_details_are_read() {
    let (url, _) = serve(replay("llamacpp-text.json", "llamacpp-json-schema.json")).await;
    let usage = client(&url, StructuredMode::JsonSchema)
        .converse(&tutor_request())
        .await
        .unwrap()
        .usage;
    assert_eq!((usage.input_tokens, usage.cache_read_tokens), (7, 128));
    let (url, _) = serve(replay("vllm-text.json", "vllm-tool-call.json")).await;
    let usage = client(&url, StructuredMode::Tools)
        .converse(&tutor_request())
        .await
        .unwrap()
        .usage;
    assert_eq!(
        (
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.output_tokens
        ),
        (107, 0, 21)
    );
}

#[tokio::test]
async fn each_structured_mode_sends_its_own_request_shape() {
    let (url, stub) = serve(replay("openai-text.json", "openai-tool-call.json")).await;
    let response = client(&url, StructuredMode::Tools)
        .converse(&judge_request())
        .await
        .unwrap();
    assert_eq!(response.structured, Some(json!({"score": 4})));
    {
        let seen = stub.seen.lock().unwrap();
        let body = &seen[0].1;
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "record_score");
        assert_eq!(
            body["tools"][0]["function"]["parameters"]["required"],
            json!(["score"])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "record_score"}})
        );
    }

    let (url, stub) = serve(replay("ollama-text.json", "ollama-json-schema.json")).await;
    let response = client(&url, StructuredMode::JsonSchema)
        .converse(&judge_request())
        .await
        .unwrap();
    assert_eq!(response.structured, Some(json!({"score": 3})));
    {
        let seen = stub.seen.lock().unwrap();
        let body = &seen[0].1;
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["response_format"]["json_schema"]["name"],
            "record_score"
        );
        assert_eq!(
            body["response_format"]["json_schema"]["schema"]["properties"]["score"]["type"],
            "integer"
        );
        assert!(body.get("tools").is_none());
    }

    // Text mode: the schema travels in the system prompt; the object is found in prose.
    let (url, stub) = serve(Script::Replay {
        text: fixture("ollama-text-with-json.json"),
        structured: fixture("ollama-text-with-json.json"),
    })
    .await;
    let response = client(&url, StructuredMode::Text)
        .converse(&judge_request())
        .await
        .unwrap();
    assert_eq!(response.structured, Some(json!({"score": 2})));
    let seen = stub.seen.lock().unwrap();
    let body = &seen[0].1;
    assert!(body.get("tools").is_none() && body.get("response_format").is_none());
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("\"required\":[\"score\"]"), "{system}");
}

#[tokio::test]
async fn a_tool_call_that_is_not_json_is_returned_unstructured_for_the_judge_to_reject() {
    let body = fixture("openai-tool-call.json").replace(r#"{\"score\":4}"#, "score is four");
    let (url, _) = serve(Script::Replay {
        text: body.clone(),
        structured: body,
    })
    .await;
    let response = client(&url, StructuredMode::Tools)
        .converse(&judge_request())
        .await
        .unwrap();
    assert_eq!(response.structured, None);
    assert!(response.text.contains("score is four"), "{}", response.text);
}

#[tokio::test]
async fn the_token_limit_goes_in_the_configured_field() {
    let (url, stub) = serve(replay("openai-text.json", "openai-tool-call.json")).await;
    let client = OpenAiLlm::new(OpenAiConfig {
        token_limit_field: TokenLimitField::MaxCompletionTokens,
        ..OpenAiConfig::new(&url)
    })
    .unwrap();
    client.converse(&tutor_request()).await.unwrap();
    let body = &stub.seen.lock().unwrap()[0].1;
    assert_eq!(body["max_completion_tokens"], 300);
    assert!(body.get("max_tokens").is_none());
}

const KEY_VARIABLE: &str = "EXAMPLE_API_KEY";

fn environment(name: &str) -> Option<String> {
    (name == KEY_VARIABLE).then(|| "sk-test-123".to_owned())
}

#[tokio::test]
async fn the_key_comes_from_the_named_variable_and_never_shows() {
    let (url, stub) = serve(replay("openai-text.json", "openai-tool-call.json")).await;
    let client = OpenAiLlm::with_environment(
        OpenAiConfig {
            api_key_env: Some(KEY_VARIABLE.into()),
            ..OpenAiConfig::new(&url)
        },
        environment,
    )
    .unwrap();
    client.converse(&tutor_request()).await.unwrap();
    let headers = &stub.seen.lock().unwrap()[0].0;
    assert_eq!(headers["authorization"], "Bearer sk-test-123");
    assert!(!format!("{client:?}").contains("sk-test-123"));

    let missing = OpenAiLlm::with_environment(
        OpenAiConfig {
            api_key_env: Some("UNSET_API_KEY".into()),
            ..OpenAiConfig::new(&url)
        },
        environment,
    )
    .unwrap_err();
    assert_eq!(
        missing,
        ConfigError::MissingKey {
            variable: "UNSET_API_KEY".into()
        }
    );
    assert!(missing.to_string().contains("UNSET_API_KEY"));
    assert!(matches!(
        OpenAiLlm::new(OpenAiConfig::new("localhost:11434/v1")),
        Err(ConfigError::BadBaseUrl { .. })
    ));
}

async fn error_of(script: Script) -> LlmError {
    let (url, _) = serve(script).await;
    let client = OpenAiLlm::with_environment(
        OpenAiConfig {
            api_key_env: Some(KEY_VARIABLE.into()),
            timeout: Duration::from_millis(300),
            ..OpenAiConfig::new(&url)
        },
        environment,
    )
    .unwrap();
    client.converse(&tutor_request()).await.unwrap_err()
}

#[tokio::test]
async fn authentication_failures_name_the_key_variable_and_are_not_retried() {
    for status in [401, 403] {
        let error = error_of(fail(status, "openai-401.json")).await;
        match &error {
            LlmError::AccessDenied { message } => {
                assert!(message.contains("$EXAMPLE_API_KEY"), "{message}");
                assert!(message.contains("Incorrect API key"), "{message}");
            }
            other => panic!("{status}: {other:?}"),
        }
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn rate_limits_are_throttled_with_the_servers_delay() {
    let error = error_of(Script::Fail {
        status: 429,
        headers: vec![
            ("x-ratelimit-remaining-requests", "0".into()),
            ("x-ratelimit-reset-requests", "120ms".into()),
            ("x-ratelimit-remaining-tokens", "149000".into()),
            ("x-ratelimit-reset-tokens", "6m0s".into()),
        ],
        body: fixture("openai-429-rate.json"),
    })
    .await;
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_millis(120)));

    let error = error_of(Script::Fail {
        status: 429,
        headers: vec![("retry-after", "7".into())],
        body: fixture("openai-429-rate.json"),
    })
    .await;
    assert!(matches!(error, LlmError::Throttled { .. }));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));

    // An exhausted quota does not recover by waiting.
    let error = error_of(fail(429, "openai-429-quota.json")).await;
    assert!(!error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("quota"), "{error}");
}

#[tokio::test]
async fn server_errors_timeouts_and_refused_connections_are_transient() {
    for (status, body) in [
        (500, "openai-500.json"),
        (502, "openai-500.json"),
        (503, "llamacpp-503-loading.json"),
    ] {
        let error = error_of(fail(status, body)).await;
        assert!(
            matches!(error, LlmError::Unavailable { .. }),
            "{status}: {error:?}"
        );
        assert!(error.is_retryable());
    }
    let error = error_of(fail(408, "openai-500.json")).await;
    assert!(matches!(error, LlmError::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
    let error = error_of(Script::Hang).await;
    assert!(matches!(error, LlmError::Timeout { .. }), "{error:?}");

    // Nothing listens on a port that was just released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = client(
        &format!("http://127.0.0.1:{port}/v1"),
        StructuredMode::Tools,
    )
    .converse(&tutor_request())
    .await
    .unwrap_err();
    assert!(matches!(error, LlmError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

#[tokio::test]
async fn context_length_errors_of_each_server_are_context_window_errors() {
    for body in [
        "openai-400-context.json",
        "vllm-400-context.json",
        "llamacpp-400-context.json",
    ] {
        let error = error_of(fail(400, body)).await;
        assert!(
            matches!(error, LlmError::ContextWindow { .. }),
            "{body}: {error:?}"
        );
        assert!(!error.is_retryable());
    }
    let error = error_of(Script::Fail {
        status: 400,
        headers: Vec::new(),
        body: r#"{"error":{"message":"temperature must be at most 2","type":"invalid_request_error","param":"temperature","code":null}}"#.into(),
    })
    .await;
    assert!(matches!(error, LlmError::Validation { .. }), "{error:?}");
}

#[tokio::test]
async fn unknown_models_are_not_found_and_a_wrong_path_says_so() {
    for body in [
        "openai-404-model.json",
        "vllm-404-model.json",
        "ollama-404-model.json",
    ] {
        let error = error_of(fail(404, body)).await;
        match &error {
            LlmError::ModelNotFound { model } => assert!(model.contains("some-model"), "{model}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    let error = error_of(Script::Fail {
        status: 404,
        headers: Vec::new(),
        body: "404 page not found".into(),
    })
    .await;
    match error {
        LlmError::Validation { message } => assert!(message.contains("base_url"), "{message}"),
        other => panic!("{other:?}"),
    }
}
