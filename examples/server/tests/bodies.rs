//! The server as a process: the key is checked before a body is read, and bodies that are too
//! large or cannot be read get a 413 or a 400 without a full-size buffer.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;

mod support;

use support::KEY;

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start() -> Server {
    let (child, address) = support::start(|address| {
        let mut command = support::server(address);
        command.args(["--workers", "1", "--memory"]);
        command
    })
    .await;
    Server { child, address }
}

/// Sends `head` and then `body`, optionally closing the write side, and returns the status
/// line, within five seconds.
async fn exchange(address: &str, head: &str, body: &[u8], close_write: bool) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    if close_write {
        stream.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            answer.extend_from_slice(&buffer[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 5 s to {head:?}");
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let server = start().await;
    // A body within the limit is announced and none sent: a server that read the body before
    // checking the key would wait for it.
    let head = "POST /manifests HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500000\r\n\r\n";
    assert!(
        exchange(&server.address, head, b"", false)
            .await
            .contains(" 401 ")
    );
    let head =
        "POST /manifests HTTP/1.1\r\nhost: x\r\nx-api-key: wrong\r\ncontent-length: 500000\r\n\r\n";
    assert!(
        exchange(&server.address, head, b"", false)
            .await
            .contains(" 403 ")
    );
}

#[tokio::test]
async fn an_oversized_body_is_413_and_an_unreadable_one_is_400() {
    let server = start().await;
    let head = format!(
        "POST /manifests HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\ncontent-length: 10000000\r\n\r\n"
    );
    assert!(
        exchange(&server.address, &head, b"", false)
            .await
            .contains(" 413 ")
    );
    // Chunked, so no length is announced, and past the limit.
    let head = format!(
        "POST /manifests HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let chunk = vec![b'a'; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..32 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    assert!(
        exchange(&server.address, &head, &body, false)
            .await
            .contains(" 413 ")
    );
    // The body stops short of its announced length.
    let head = format!(
        "POST /manifests HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\ncontent-length: 100\r\n\r\n"
    );
    assert!(
        exchange(&server.address, &head, b"{\"tutor", true)
            .await
            .contains(" 400 ")
    );
}
