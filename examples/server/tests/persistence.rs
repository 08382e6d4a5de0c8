//! The server on its default SQLite data directory: a finished manifest survives a kill and
//! restart, and a second server on the same directory is refused.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

mod support;

use support::KEY;

fn server(data: &Path, address: &str) -> Command {
    let mut command = support::server(address);
    command
        .args(["--workers", "2", "--data"])
        .arg(data)
        .stderr(std::process::Stdio::piped());
    command
}

async fn start(data: &Path) -> (Child, String) {
    support::start(|address| server(data, address)).await
}

/// One HTTP/1.1 exchange: the status code and the JSON body.
async fn call(address: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_manifest_survives_a_kill_and_the_directory_takes_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../local/manifest.json"),
    )
    .unwrap();

    let (mut first, address) = start(&data).await;
    let (status, posted) = call(&address, "POST", "/manifests", &manifest).await;
    assert_eq!(status, 201, "{posted}");
    let id = posted["manifest_id"].as_str().unwrap().to_owned();
    let mut summary = Value::Null;
    for _ in 0..600 {
        let (_, body) = call(&address, "GET", &format!("/manifests/{id}"), "").await;
        if !body["summary"].is_null() {
            summary = body["summary"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!summary.is_null(), "manifest {id} did not finish");

    // A second server on the same directory is refused while the first holds it.
    let other = server(&data, "127.0.0.1:0").output().await.unwrap();
    assert!(!other.status.success());
    let message = String::from_utf8_lossy(&other.stderr);
    assert!(
        message.contains("in use by another socratic process"),
        "{message}"
    );

    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let (_second, address) = start(&data).await;
    let (status, body) = call(&address, "GET", &format!("/manifests/{id}"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"], summary, "the summary survived the restart");
    let (_, listing) = call(&address, "GET", "/manifests", "").await;
    assert_eq!(listing["manifests"][0]["id"], Value::from(id.as_str()));
    // Posting the same manifest again finds it rather than running it twice.
    let (status, again) = call(&address, "POST", "/manifests", &manifest).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["manifest_id"], Value::from(id.as_str()));
    assert_eq!(again["jobs_queued"], 0);
}

#[tokio::test]
async fn an_empty_api_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["", "   "] {
        let mut command = server(&dir.path().join("data"), "127.0.0.1:0");
        command.args(["--api-key", key]);
        let output = command.output().await.unwrap();
        assert!(!output.status.success(), "started with key {key:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains("the API key is empty"), "{message}");
    }
}
