//! Streamed calls over real HTTP against a stub that computes one request at a time and
//! replays the servers' recorded event streams: the call's timeout counts from the first
//! byte, so waiting in the server's queue is not a failure; without streaming it is.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use socratic_core::llm::{
    ConverseRequest, LlmClient, LlmError, Message, Role, StopReason, StructuredOutput,
};
use socratic_openai::{OpenAiConfig, OpenAiLlm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LLAMACPP_STREAM: &str = include_str!("fixtures/llamacpp-stream.txt");
const OPENAI_TOOL_STREAM: &str = include_str!("fixtures/openai-stream-tool-call.txt");
const LLAMACPP_TEXT: &str = include_str!("fixtures/llamacpp-text.json");
const LLAMACPP_503: &str = include_str!("fixtures/llamacpp-503-loading.json");

/// How the stub answers.
#[derive(Clone, Copy)]
struct Behaviour {
    /// Time computing before the first byte (the prompt), one request at a time.
    prompt: Duration,
    /// Between streamed events.
    between: Duration,
    /// The event stream for `stream: true`.
    events: &'static str,
    /// A status and body instead of the stream.
    fail: Option<(u16, &'static str)>,
}

async fn stub(behaviour: Behaviour) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let slot = Arc::new(tokio::sync::Mutex::new(()));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let slot = Arc::clone(&slot);
            tokio::spawn(async move {
                let Some(body) = read_body(&mut socket).await else {
                    return;
                };
                let streamed = body.contains("\"stream\":true");
                // One request computes at a time; the others wait in the server's queue.
                let _computing = slot.lock().await;
                tokio::time::sleep(behaviour.prompt).await;
                if let Some((status, body)) = behaviour.fail {
                    let reply = format!(
                        "HTTP/1.1 {status} Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    return;
                }
                if !streamed {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{LLAMACPP_TEXT}",
                        LLAMACPP_TEXT.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for event in behaviour.events.split_inclusive("\n\n") {
                    if socket.write_all(event.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(behaviour.between).await;
                }
            });
        }
    });
    url
}

/// Reads one request and answers its body; `None` if the connection closed first.
async fn read_body(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let n = socket.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Some(
                    String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned(),
                );
            }
        }
    }
}

fn client(url: &str, stream: bool, timeout: Duration, first_token: Duration) -> OpenAiLlm {
    OpenAiLlm::new(OpenAiConfig {
        stream,
        timeout,
        first_token_timeout: first_token,
        ..OpenAiConfig::new(url)
    })
    .unwrap()
}

fn request() -> ConverseRequest {
    let mut request = ConverseRequest::new(
        "qwen",
        Role::Tutor,
        vec![Message::user("Why does metal feel colder than wood?")],
    );
    request.max_tokens = 64;
    request
}

const LLAMACPP: Behaviour = Behaviour {
    prompt: Duration::from_millis(400),
    between: Duration::from_millis(20),
    events: LLAMACPP_STREAM,
    fail: None,
};

#[tokio::test]
async fn a_streamed_answer_is_assembled_with_its_usage_and_stop_reason() {
    let url = stub(LLAMACPP).await;
    let client = client(&url, true, Duration::from_secs(5), Duration::from_secs(5));
    let answer = client.converse(&request()).await.unwrap();
    assert_eq!(
        answer.text,
        "Which of your senses is telling you the metal is colder?"
    );
    assert_eq!(answer.stop_reason, StopReason::EndTurn);
    // llama.cpp's last chunk: 135 prompt tokens, 128 of them from its cache.
    assert_eq!(
        (
            answer.usage.input_tokens,
            answer.usage.cache_read_tokens,
            answer.usage.output_tokens
        ),
        (7, 128, 12)
    );
}

#[tokio::test]
async fn a_streamed_tool_call_is_the_structured_answer() {
    let url = stub(Behaviour {
        events: OPENAI_TOOL_STREAM,
        ..LLAMACPP
    })
    .await;
    let client = client(&url, true, Duration::from_secs(5), Duration::from_secs(5));
    let mut request = request();
    request.role = Role::Judge;
    request.structured_output = Some(StructuredOutput {
        name: "record_score".into(),
        description: "Record the score.".into(),
        schema: json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]})
            .into(),
    });
    let answer = client.converse(&request).await.unwrap();
    assert_eq!(answer.structured, Some(json!({"score": 4})));
    // OpenAI's usage chunk, after the last choice.
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.cache_read_tokens),
        (52, 1152)
    );
}

#[tokio::test]
async fn waiting_in_the_server_queue_fails_a_call_only_without_streaming() {
    // Three calls at once to a server that computes one at a time for 400 ms: the third
    // waits 800 ms in its queue, and the call timeout is 600 ms.
    let timeout = Duration::from_millis(600);
    for stream in [true, false] {
        let url = stub(LLAMACPP).await;
        let client = Arc::new(client(&url, stream, timeout, Duration::from_secs(10)));
        let started = Instant::now();
        let calls = (0..3).map(|_| {
            let client = Arc::clone(&client);
            async move { client.converse(&request()).await }
        });
        let results = futures::future::join_all(calls).await;
        let timed_out = results
            .iter()
            .filter(|r| matches!(r, Err(LlmError::Timeout { .. })))
            .count();
        if stream {
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            assert!(started.elapsed() >= Duration::from_millis(1200));
        } else {
            assert!(timed_out >= 2, "{results:?}");
        }
    }
}

#[tokio::test]
async fn no_first_byte_within_the_first_token_timeout_is_a_timeout_that_says_so() {
    let url = stub(Behaviour {
        prompt: Duration::from_secs(3),
        ..LLAMACPP
    })
    .await;
    let client = client(
        &url,
        true,
        Duration::from_secs(5),
        Duration::from_millis(300),
    );
    let started = Instant::now();
    let error = client.converse(&request()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    match error {
        LlmError::Timeout { message } => {
            assert!(message.contains("first-token timeout"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stream_slower_than_the_call_timeout_after_its_first_byte_times_out() {
    let url = stub(Behaviour {
        prompt: Duration::from_millis(10),
        between: Duration::from_millis(400),
        ..LLAMACPP
    })
    .await;
    let client = client(
        &url,
        true,
        Duration::from_millis(500),
        Duration::from_secs(5),
    );
    match client.converse(&request()).await.unwrap_err() {
        LlmError::Timeout { message } => {
            assert!(message.contains("of its first byte"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_error_status_on_a_streamed_call_maps_like_a_live_one() {
    let url = stub(Behaviour {
        fail: Some((503, LLAMACPP_503)),
        ..LLAMACPP
    })
    .await;
    let client = client(&url, true, Duration::from_secs(5), Duration::from_secs(5));
    let error = client.converse(&request()).await.unwrap_err();
    assert!(matches!(error, LlmError::Unavailable { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(error.to_string().contains("Loading model"), "{error}");
}
