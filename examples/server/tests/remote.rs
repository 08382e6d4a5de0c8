//! `run --remote` and `pull` over the admin API of `socratic-server` on loopback: a benchmark
//! submitted with the catalog entities it uses, followed to its summary, and pulled into a
//! results directory where the report, `list`, `show` and `compare` read it; submitting and
//! pulling again change nothing; a wrong key, an unknown manifest and a conflicting catalog
//! entity are typed errors. (The command line maps its flags onto these calls.)

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use socratic_core::id::ManifestId;
use socratic_local::history::History;
use socratic_local::remote::{self, RemoteApi, RemoteError, RemoteProgress};
use socratic_local::{BenchmarkOptions, Error};

mod support;

use support::{KEY, server, start};

/// The default benchmark (24 runs on the simulated models), or with `repetitions`.
fn options(out: &Path, repetitions: Option<u32>) -> BenchmarkOptions {
    let mut options = BenchmarkOptions {
        out: out.to_owned(),
        ..BenchmarkOptions::default()
    };
    options.overrides.repetitions = repetitions;
    options
}

/// Runs `options`' benchmark on the server as `run --remote` does: submit, follow, pull.
async fn run_remote(
    api: &RemoteApi,
    options: BenchmarkOptions,
    out: &Path,
) -> (ManifestId, Vec<RemoteProgress>) {
    let submitted = remote::submit(api, options).await.unwrap();
    let seen = Mutex::new(Vec::new());
    let last = remote::follow(api, &submitted.manifest, Duration::from_millis(50), &|p| {
        seen.lock().unwrap().push(p.clone());
    })
    .await
    .unwrap();
    assert!(last.summarised && last.finished == last.runs, "{last:?}");
    let pulled = remote::pull(api, &submitted.manifest, out).await.unwrap();
    assert_eq!(pulled.runs as u64, last.runs);
    (submitted.manifest, seen.into_inner().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_benchmark_is_pulled_into_a_results_directory_that_reads_it_as_its_own() {
    let (_server, address) = start(|a| {
        let mut c = server(a);
        c.arg("--memory");
        c
    })
    .await;
    let api = RemoteApi::new(&format!("http://{address}"), KEY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");

    let (first, seen) = run_remote(&api, options(&out, None), &out).await;
    // Progress only grows, up to the run count.
    assert!(
        seen.windows(2).all(|w| w[0].finished <= w[1].finished),
        "{seen:?}"
    );
    assert_eq!(seen.last().unwrap().runs, 24);

    // `list`: the benchmark, finished, with its summary.
    let history = History::open(&out).unwrap();
    let lines = history.manifests().await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].manifest.id, first);
    assert_eq!(lines[0].finished, 24);
    let summary = lines[0].summary.clone().unwrap();
    assert_eq!(summary.runs, 24);
    // The report, at the top of the directory as after a local run.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("sim-socratic") && report.contains(&first.to_string()));
    let served: Value = reqwest_get(&address, &format!("/manifests/{first}")).await;
    assert_eq!(
        serde_json::to_value(&summary).unwrap()["leaderboard"],
        served["summary"]["leaderboard"]
    );
    // `show`: a run with every turn and judgment the server stored.
    let listed: Value = reqwest_get(&address, &format!("/runs?manifest={first}&limit=1")).await;
    let run_id = listed["runs"][0]["id"].as_str().unwrap().parse().unwrap();
    let record = history.run(&run_id).await.unwrap();
    let there: Value = reqwest_get(&address, &format!("/runs/{run_id}")).await;
    assert_eq!(record.turns.len(), there["turns"].as_array().unwrap().len());
    assert_eq!(
        record.judgments.len(),
        there["judgments"].as_array().unwrap().len()
    );
    assert!(record.summary.is_some());
    let curated: Value =
        serde_json::from_slice(&history.curated_run(&run_id).await.unwrap()).unwrap();
    assert_eq!(curated["run"]["id"], run_id.to_string());

    // Pulling again changes nothing; submitting the same request finds the same manifest.
    let before = std::fs::read(out.join("summary.json")).unwrap();
    let again = remote::pull(&api, &first, &out).await.unwrap();
    assert_eq!(again.runs, 24);
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), before);
    let resubmitted = remote::submit(&api, options(&out, None)).await.unwrap();
    assert_eq!(resubmitted.manifest, first);
    assert!(!resubmitted.created);
    assert_eq!(resubmitted.catalog_sent, 0, "the catalog is there already");

    // `compare`: a second remote benchmark against the first, in the same directory.
    let (second, _) = run_remote(&api, options(&out, Some(2)), &out).await;
    assert_ne!(second, first);
    let comparison = History::open(&out)
        .unwrap()
        .compare(first, second)
        .await
        .unwrap();
    assert!(comparison.page.exists());
    assert_eq!(
        History::open(&out)
            .unwrap()
            .manifests()
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_an_unknown_manifest_and_a_conflicting_catalog_are_typed_errors() {
    let (_server, address) = start(|a| {
        let mut c = server(a);
        c.arg("--memory");
        c
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");

    let wrong = RemoteApi::new(&format!("http://{address}"), "not-the-key").unwrap();
    let refused = remote::submit(&wrong, options(&out, None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            remote_error(&refused),
            RemoteError::Unauthorized {
                status: 401 | 403,
                ..
            }
        ),
        "{refused:?}"
    );

    let api = RemoteApi::new(&format!("http://{address}"), KEY).unwrap();
    let unknown: ManifestId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let missing = remote::pull(&api, &unknown, &out).await.unwrap_err();
    assert!(
        matches!(
            remote_error(&missing),
            RemoteError::Rejected { status: 404, .. }
        ),
        "{missing:?}"
    );
    assert!(
        !out.join("socratic.db").exists(),
        "nothing is written for a manifest not found"
    );

    // A benchmark of its own catalog, whose rubric the server holds with other content: the
    // submit stops there, before the manifest.
    let catalog = dir.path().join("mine");
    socratic_local::catalog::init(&catalog).unwrap();
    let mut rubric: Value =
        serde_json::from_slice(&std::fs::read(catalog.join("rubrics/my-rubric-v1.json")).unwrap())
            .unwrap();
    rubric["description"] = Value::from("edited on the server");
    let answer = reqwest_post(&address, "/rubrics", &rubric).await;
    assert_eq!(answer["created"], true, "{answer}");
    let mut mine = options(&out, None);
    mine.catalog = Some(catalog);
    let conflict = remote::submit(&api, mine).await.unwrap_err();
    let RemoteError::Rejected { status, path, .. } = remote_error(&conflict) else {
        panic!("{conflict:?}");
    };
    assert_eq!((*status, path.as_str()), (409, "/rubrics"), "{conflict}");
    assert!(conflict.to_string().contains("HTTP 409"), "{conflict}");
    let manifests: Value = reqwest_get(&address, "/manifests").await;
    assert_eq!(
        manifests["manifests"].as_array().unwrap().len(),
        0,
        "no manifest was posted"
    );
}

/// The admin API's error inside `error`.
fn remote_error(error: &Error) -> &RemoteError {
    match error {
        Error::Remote(e) => e,
        other => panic!("not an error of the admin API: {other:?}"),
    }
}

/// `GET path` on the server with the key, as JSON.
async fn reqwest_get(address: &str, path: &str) -> Value {
    request(address, "GET", path, None).await
}

async fn reqwest_post(address: &str, path: &str, body: &Value) -> Value {
    request(address, "POST", path, Some(body)).await
}

/// One HTTP/1.1 request over a plain socket, the body read to the end.
async fn request(address: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}
