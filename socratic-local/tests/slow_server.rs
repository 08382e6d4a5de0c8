//! The laptop case: several model ids served by one local server that answers one request at
//! a time (llama.cpp with one slot, Ollama with `OLLAMA_NUM_PARALLEL=1`). A stub on loopback
//! does exactly that, answering with llama.cpp's own response body after a delay, and counts
//! the requests it holds at once. The models' clients share the server's limit, so the server
//! never holds more than it can serve, and calls that together take longer than one call's
//! timeout all succeed: each one's timeout starts when the server can take it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use socratic_core::llm::{ConverseRequest, Message, Role};
use socratic_core::pipeline::Providers;
use socratic_local::models::{self, ClientOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// llama.cpp's answer to a chat completion (socratic-openai's recorded fixture).
const ANSWER: &str = include_str!("../../socratic-openai/tests/fixtures/llamacpp-text.json");

/// How long the stub takes per request.
const WORK: Duration = Duration::from_millis(300);

/// A server computing one request at a time. `held` counts the requests it has received and
/// not yet answered (queued or computing); `peak` is the most it ever held.
struct Stub {
    url: String,
    peak: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

async fn stub() -> Stub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (held, peak, served) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    let (h, p, s) = (Arc::clone(&held), Arc::clone(&peak), Arc::clone(&served));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (held, peak, served, slot) = (
                Arc::clone(&h),
                Arc::clone(&p),
                Arc::clone(&s),
                Arc::clone(&one_at_a_time),
            );
            tokio::spawn(async move {
                if !read_request(&mut socket).await {
                    return;
                }
                let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                {
                    let _computing = slot.lock().await;
                    tokio::time::sleep(WORK).await;
                }
                held.fetch_sub(1, Ordering::SeqCst);
                served.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    Stub { url, peak, served }
}

/// Reads one request (headers and the body its Content-Length announces); false if the
/// connection closed first.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let n = socket.read(&mut buffer).await.unwrap_or(0);
        if n == 0 {
            return false;
        }
        request.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return true;
            }
        }
    }
}

/// A models file of three model ids on the stub, each at concurrency 1 with a one-second
/// timeout, and `servers` appended.
fn models_file(dir: &Path, url: &str, servers: &str) -> std::path::PathBuf {
    let mut text = String::new();
    for id in ["tutor-local", "student-local", "judge-local"] {
        text.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nprovider = \"openai\"\nmodel = \"smollm2-135m\"\nbase_url = \"{url}\"\nprices = {{ input = 0.0, output = 0.0 }}\nconcurrency = 1\ntimeout_secs = 1\n\n"
        ));
    }
    text.push_str(servers);
    let path = dir.join("models.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Six calls at once, two per model; the time they took.
async fn six_calls(path: &Path) -> Duration {
    let file = models::load(path, |_| None).unwrap();
    let options = ClientOptions {
        concurrency: 8,
        ..ClientOptions::check_only()
    };
    let (_, built) = file.clients(&options, Providers::new()).await.unwrap();
    let started = Instant::now();
    let calls = built.iter().flat_map(|(entry, clients)| {
        (0..2).map(move |_| {
            let request = ConverseRequest::new(
                entry.model.clone(),
                Role::Tutor,
                vec![Message::user("What makes a square a rectangle?")],
            );
            let client = Arc::clone(&clients.benchmark);
            async move { client.converse(&request).await }
        })
    });
    for answer in futures::future::join_all(calls).await {
        answer.unwrap();
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_on_one_server_share_its_limit_and_queue_here_not_there() {
    let server = stub().await;
    let dir = tempfile::tempdir().unwrap();
    let path = models_file(dir.path(), &server.url, "");
    let file = models::load(&path, |_| None).unwrap();
    assert_eq!(
        file.server_concurrency(8).into_values().collect::<Vec<_>>(),
        vec![1],
        "three models at concurrency 1 on one server share one slot"
    );

    let took = six_calls(&path).await;
    assert_eq!(server.served.load(Ordering::SeqCst), 6);
    assert_eq!(
        server.peak.load(Ordering::SeqCst),
        1,
        "the server never held a request it could not start"
    );
    // Six calls of 300 ms one after another: twice one call's timeout, yet none timed out.
    assert!(took >= WORK * 6, "{took:?}");
    assert!(took > Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_entry_sets_the_shared_limit() {
    let server = stub().await;
    let dir = tempfile::tempdir().unwrap();
    let path = models_file(
        dir.path(),
        &server.url,
        &format!(
            "[[servers]]\nbase_url = \"{}/\"\nconcurrency = 2\n",
            server.url
        ),
    );
    let file = models::load(&path, |_| None).unwrap();
    assert_eq!(
        file.server_concurrency(8).into_values().collect::<Vec<_>>(),
        vec![2]
    );
    six_calls(&path).await;
    assert_eq!(server.peak.load(Ordering::SeqCst), 2);
}

#[test]
fn a_servers_entry_must_name_a_server_of_the_file_once_with_a_positive_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = models_file(
        dir.path(),
        "http://127.0.0.1:8080/v1",
        "[[servers]]\nbase_url = \"http://127.0.0.1:9999/v1\"\nconcurrency = 1\n\n\
         [[servers]]\nbase_url = \"http://127.0.0.1:8080/v1\"\nconcurrency = 0\n\n\
         [[servers]]\nbase_url = \"http://127.0.0.1:8080/v1/\"\nconcurrency = 1\n\n\
         [[servers]]\nbase_url = \"http://127.0.0.1:8080/v1\"\nslots = 1\n",
    );
    let error = models::load(&path, |_| None).unwrap_err();
    let text = error.to_string();
    assert_eq!(error.problems.len(), 4, "{text}");
    assert!(
        text.contains(
            "servers[0]: no openai model of the file has the base_url http://127.0.0.1:9999/v1"
        ),
        "{text}"
    );
    assert!(
        text.contains("servers[1]: concurrency must be at least 1"),
        "{text}"
    );
    assert!(
        text.contains("servers[2]: the server http://127.0.0.1:8080/v1/ is listed twice"),
        "{text}"
    );
    assert!(text.contains("servers[3]: unknown field `slots`"), "{text}");
}
