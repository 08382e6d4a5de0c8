//! Batch mode as a models file builds it: an `anthropic` model's calls go through Message
//! Batches (a stub of them on loopback, answering with the API reference's message), charged
//! at its batch prices; a Bedrock Claude model with batch settings is batched, and a Bedrock
//! model without them stays live.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use socratic_core::llm::{
    BatchOptions, Batcher, Budget, ConverseRequest, MemoryBatchJournal, Message, Role,
};
use socratic_core::pipeline::Providers;
use socratic_local::models::{self, Batching, ClientOptions};

const MESSAGE: &str = include_str!("../../socratic-anthropic/tests/fixtures/message-text.json");

#[derive(Default)]
struct Stub {
    created: Mutex<Vec<Vec<Value>>>,
}

async fn create(State(stub): State<Arc<Stub>>, body: String) -> impl IntoResponse {
    let request: Value = serde_json::from_str(&body).unwrap();
    let mut created = stub.created.lock().unwrap();
    created.push(request["requests"].as_array().unwrap().clone());
    axum::Json(
        json!({"id": format!("msgbatch_{}", created.len() - 1), "type": "message_batch",
                      "processing_status": "in_progress", "results_url": null}),
    )
}

async fn retrieve(Path(id): Path<String>) -> impl IntoResponse {
    axum::Json(
        json!({"id": id, "type": "message_batch", "processing_status": "ended",
                      "results_url": null}),
    )
}

async fn results(State(stub): State<Arc<Stub>>, Path(id): Path<String>) -> String {
    let n: usize = id.trim_start_matches("msgbatch_").parse().unwrap();
    let message: Value = serde_json::from_str(MESSAGE).unwrap();
    stub.created.lock().unwrap()[n]
        .iter()
        .map(|r| {
            json!({"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": message}})
                .to_string()
                + "\n"
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_configured_bedrock_models_batch_others_stay_live() {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/v1/messages/batches", post(create))
        .route("/v1/messages/batches/{id}", get(retrieve))
        .route("/v1/messages/batches/{id}/results", get(results))
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.toml");
    std::fs::write(
        &path,
        format!(
            "[[models]]\nid = \"claude\"\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4-20250514\"\nbase_url = \"{url}\"\napi_key_env = \"CARGO_MANIFEST_DIR\"\nprices = {{ input = 3.0, output = 15.0, cache_read = 0.3, batch_input = 1.5, batch_output = 7.5 }}\n\n\
             [[models]]\nid = \"nova\"\nprovider = \"bedrock\"\nmodel = \"us.amazon.nova-pro-v1:0\"\nregion = \"us-east-1\"\nprices = {{ input = 0.8, output = 3.2 }}\n\n\
             [[models]]\nid = \"haiku\"\nprovider = \"bedrock\"\nmodel = \"anthropic.claude-3-haiku-20240307-v1:0\"\nregion = \"us-east-1\"\nprices = {{ input = 0.25, output = 1.25, batch_input = 0.125, batch_output = 0.625 }}\nbatch_role_arn = \"arn:aws:iam::123456789012:role/socratic-batch\"\nbatch_s3_uri = \"s3://bucket/socratic\"\n"
        ),
    )
    .unwrap();
    // The client reads its key from the process environment: any variable cargo sets for a
    // test serves, as the stub checks none.
    let file = models::load(&path, |_| Some("sk-ant-stub".to_owned())).unwrap();
    let budget = Arc::new(Budget::unlimited());
    let batching = Batching {
        batcher: Batcher::new(
            Arc::new(MemoryBatchJournal::new()),
            Arc::clone(&budget),
            None,
            BatchOptions {
                gather: Duration::from_millis(50),
                poll: Duration::from_millis(20),
            },
        ),
        all: true,
    };
    let (claude, nova, haiku) = (&file.models[0], &file.models[1], &file.models[2]);
    assert!(batching.batches(claude));
    assert!(
        !batching.batches(nova),
        "Nova without batch settings runs live"
    );
    assert!(
        batching.batches(haiku),
        "Claude on Bedrock with batch settings"
    );

    let options = ClientOptions {
        batching: Some(batching),
        ..ClientOptions::check_only()
    };
    let (_, built) = file.clients(&options, Providers::new()).await.unwrap();
    let client = &built[0].1.benchmark;
    let request = ConverseRequest::new(
        "claude-sonnet-4-20250514",
        Role::Tutor,
        vec![Message::user("Why is metal cold?")],
    );
    let answer = client.converse(&request).await.unwrap();
    assert!(answer.batched);
    assert_eq!(stub.created.lock().unwrap().len(), 1);
    // Charged at the batch prices: 95 input, 2051 cache reads and 17 output tokens.
    let expected = (95.0 * 1.5 + 2051.0 * 0.15 + 17.0 * 7.5) / 1e6;
    assert!(
        (budget.spent() - expected).abs() < 1e-12,
        "{}",
        budget.spent()
    );
}
