//! The [`LlmClient`] conformance suite: the request/response contract.

use serde_json::json;

use crate::llm::{
    ConverseRequest, LlmClient, LlmError, Message, Role, StopReason, StructuredOutput, SystemPart,
};

/// Runs every check against `model`, which must answer both free text and structured output.
pub async fn run_all(client: &dyn LlmClient, model: &str) {
    answers_text(client, model).await;
    answers_structured_output(client, model).await;
    rejects_invalid_requests(client, model).await;
}

/// A plain request gets text, a stop reason and usage.
pub async fn answers_text(client: &dyn LlmClient, model: &str) {
    let mut request = ConverseRequest::new(
        model,
        Role::Tutor,
        vec![Message::user("Why is the sky blue?")],
    );
    request.system = vec![
        SystemPart::cached("You are a Socratic tutor."),
        SystemPart::text("Ask one question."),
    ];
    let response = client
        .converse(&request)
        .await
        .expect("plain request succeeds");
    assert!(!response.text.trim().is_empty(), "a plain answer has text");
    assert!(
        response.structured.is_none(),
        "no structured value unless asked"
    );
    assert_ne!(response.stop_reason, StopReason::ToolUse);
    assert!(
        response.usage.output_tokens > 0,
        "usage counts output tokens"
    );
}

/// A request with a schema gets a JSON object back in `structured`.
pub async fn answers_structured_output(client: &dyn LlmClient, model: &str) {
    let mut request =
        ConverseRequest::new(model, Role::Judge, vec![Message::user("Score this turn.")]);
    request.structured_output = Some(StructuredOutput {
        name: "record_score".into(),
        description: "Record the score.".into(),
        schema: json!({
            "type": "object",
            "properties": {"score": {"type": "integer"}},
            "required": ["score"]
        })
        .into(),
    });
    let response = client
        .converse(&request)
        .await
        .expect("structured request succeeds");
    let value = response.structured.expect("structured output is returned");
    assert!(
        value.is_object(),
        "structured output is a JSON object: {value}"
    );
}

/// Malformed requests fail with a non-retryable `Validation` error.
pub async fn rejects_invalid_requests(client: &dyn LlmClient, model: &str) {
    let empty = ConverseRequest::new(model, Role::Tutor, vec![]);
    let starts_wrong = ConverseRequest::new(model, Role::Tutor, vec![Message::assistant("hello")]);
    for request in [empty, starts_wrong] {
        match client.converse(&request).await {
            Err(e @ LlmError::Validation { .. }) => assert!(!e.is_retryable()),
            other => panic!("an invalid request must fail with Validation, got {other:?}"),
        }
    }
}
