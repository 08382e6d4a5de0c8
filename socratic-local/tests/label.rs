//! `socratic label` over real HTTP: a stratified, seeded, blind sample of a finished
//! benchmark's turns; scores checked and stored at once; two raters at once; a taken port;
//! and the labels straight into calibration and the report.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};
use socratic_core::labelling::{Phase, sample_turns, stored_labels};
use socratic_core::repository::{RunFilter, RunRecord};
use socratic_local::history::History;
use socratic_local::{
    Benchmark, Error, LabelOptions, LabelServer, Outcome, calibrate, export_labels,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

/// A label server on `out`, serving on a spawned task until the sender is dropped or sent.
struct Running {
    address: SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(options: LabelOptions) -> Self {
        let server = LabelServer::open(options).await.unwrap();
        let address = server.address();
        let url = server.url();
        let token = url
            .split("token=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            address,
            token,
            stop: Some(stop),
            task,
        }
    }

    /// `METHOD path?token=…&query` with an optional JSON body: the status and the body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        let query = if query.is_empty() {
            format!("token={}", self.token)
        } else {
            format!("token={}&{query}", self.token)
        };
        raw(self.address, method, &format!("{path}?{query}"), body).await
    }

    async fn json(&self, path: &str, rater: &str) -> Value {
        let (status, body) = self
            .call("GET", path, &format!("rater={rater}"), None)
            .await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn score(
        &self,
        index: usize,
        dimension: &str,
        rater: &str,
        score: Value,
    ) -> (u16, String) {
        let body = json!({ "score": score }).to_string();
        self.call(
            "PUT",
            &format!("/api/turns/{index}/scores/{dimension}"),
            &format!("rater={rater}"),
            Some(&body),
        )
        .await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn raw(address: SocketAddr, method: &str, target: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn options(out: &Path) -> LabelOptions {
    LabelOptions {
        out: out.to_owned(),
        ..LabelOptions::default()
    }
}

/// Every run of the newest finished benchmark with its turns and judgments.
async fn records(out: &Path) -> Vec<RunRecord> {
    let history = History::open(out).unwrap();
    let id = history.finished_or(None).await.unwrap();
    let repository = history.repository();
    let page = repository
        .list_runs(&RunFilter::Manifest(id), 1000, None)
        .await
        .unwrap();
    let mut records = Vec::new();
    for run in page.items {
        records.push(repository.run_record(&run.id).await.unwrap().unwrap());
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_holds_every_stratum_repeats_with_its_seed_and_names_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    support::run(support::options(&out)).await;
    let records = records(&out).await;
    let strata: BTreeSet<_> = records
        .iter()
        .flat_map(|r| {
            let run = &r.run.value;
            r.turns.iter().map(move |t| {
                (
                    run.tutor.model.clone(),
                    run.vector,
                    Phase::of(t.index, run.turns),
                )
            })
        })
        .collect();
    // Three tutors × three vectors × early and late.
    assert_eq!(strata.len(), 18, "{strata:?}");

    let sample = sample_turns(&records, 30, 7);
    assert_eq!(sample.len(), 30);
    let drawn: BTreeSet<_> = sample
        .iter()
        .map(|s| (s.tutor.clone(), s.vector, s.phase))
        .collect();
    assert_eq!(drawn, strata, "every tutor, vector and phase is drawn");
    let distinct: BTreeSet<_> = sample.iter().map(|s| (s.run, s.turn)).collect();
    assert_eq!(distinct.len(), 30, "no turn twice");
    assert_eq!(
        sample_turns(&records, 30, 7),
        sample,
        "the same seed, the same turns in order"
    );
    assert_ne!(
        sample_turns(&records, 30, 8),
        sample,
        "another seed, another sample"
    );
    // The order is shuffled, not grouped by stratum.
    assert!(
        sample.windows(2).any(|w| w[0].tutor != w[1].tutor)
            && sample.windows(3).any(|w| w[0].tutor == w[2].tutor),
        "{sample:?}"
    );
    // Only judged turns are drawn: a benchmark whose turns were never judged offers none.
    let unjudged: Vec<RunRecord> = records
        .iter()
        .cloned()
        .map(|mut r| {
            r.judgments.clear();
            r
        })
        .collect();
    assert!(sample_turns(&unjudged, 30, 7).is_empty());
    let all = sample_turns(&records, 1000, 7);
    assert_eq!(
        all.len(),
        72,
        "a sample larger than the benchmark holds every judged turn"
    );

    let server = Running::start(LabelOptions {
        seed: Some(7),
        rater: Some("ana".into()),
        ..options(&out)
    })
    .await;
    let overview = server.json("/api/sample", "ana").await;
    assert_eq!(overview["of"], 30);
    assert_eq!(overview["dimensions"].as_array().unwrap().len(), 4);
    assert_eq!(overview["dimensions"][0]["anchors"][0]["score"], 1);
    for (i, drawn) in sample.iter().enumerate() {
        let (status, body) = server
            .call("GET", &format!("/api/turns/{i}"), "", None)
            .await;
        assert_eq!(status, 200, "{body}");
        for hidden in ["sim-", "judgment", "verdict", "rationale", "run_id"] {
            assert!(!body.contains(hidden), "turn {i} shows {hidden:?}: {body}");
        }
        let turn: Value = serde_json::from_str(&body).unwrap();
        // The page shows the sampled turns in the sample's order.
        assert_eq!(turn["turn"], drawn.turn);
        let dialogue = turn["dialogue"].as_array().unwrap();
        assert_eq!(dialogue.last().unwrap()["speaker"], "tutor");
        assert_eq!(
            dialogue.iter().filter(|l| l["speaker"] == "tutor").count(),
            drawn.turn as usize,
            "the dialogue runs up to the turn"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_are_checked_stored_at_once_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    support::run(support::options(&out)).await;
    let server = Running::start(options(&out)).await;

    // A wrong or missing token is refused on every route.
    for target in ["/", "/api/sample", "/api/turns/0"] {
        let (status, _) = raw(server.address, "GET", target, None).await;
        assert_eq!(status, 403, "{target} without a token");
        // The token with its first character changed (a token that starts with 0 gets a 1).
        let first = if server.token.starts_with('0') {
            '1'
        } else {
            '0'
        };
        let (status, _) = raw(
            server.address,
            "GET",
            &format!("{target}?token={first}{}", &server.token[1..]),
            None,
        )
        .await;
        assert_eq!(status, 403, "{target} with a wrong token");
    }
    let (status, _) = raw(
        server.address,
        "PUT",
        "/api/turns/0/scores/pedagogical_stance?rater=ana",
        Some("{\"score\": 3}"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, page) = server.call("GET", "/", "", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Label tutor turns"), "{page}");

    // Bad scores, dimensions, turns and raters are refused, and nothing is stored.
    for (score, fragment) in [
        (json!(0), "outside pedagogical_stance's scale 1–5"),
        (json!(6), "outside"),
        (json!(300), "outside"),
        (json!(-1), "outside"),
        (json!(3.5), "not a whole number"),
        (json!("4"), "not a number"),
    ] {
        let (status, body) = server
            .score(0, "pedagogical_stance", "ana", score.clone())
            .await;
        assert_eq!(status, 400, "{score}: {body}");
        assert!(body.contains(fragment), "{score}: {body}");
    }
    let (status, body) = server.score(0, "kindness", "ana", json!(3)).await;
    assert_eq!(status, 400);
    assert!(body.contains("\\\"kindness\\\" is not in rubric"), "{body}");
    let (status, _) = server
        .score(30, "pedagogical_stance", "ana", json!(3))
        .await;
    assert_eq!(status, 404);
    let (status, body) = server.score(0, "pedagogical_stance", "", json!(3)).await;
    assert_eq!(status, 400, "no rater: {body}");
    let (status, body) = server
        .score(0, "pedagogical_stance", "%20ana", json!(3))
        .await;
    assert_eq!(status, 400, "a padded rater: {body}");
    let history = History::open(&out).unwrap();
    let id = history.finished_or(None).await.unwrap();
    assert_eq!(
        stored_labels(history.repository(), &id).await.unwrap(),
        None
    );

    // A score is in the database as soon as it is answered; a second score of the same
    // dimension replaces the first.
    assert_eq!(
        server
            .score(0, "pedagogical_stance", "ana", json!(2))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .score(0, "pedagogical_stance", "ana", json!(4))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .score(0, "conceptual_fidelity", "ana", json!(5))
            .await
            .0,
        200
    );
    let stored = stored_labels(History::open(&out).unwrap().repository(), &id)
        .await
        .unwrap()
        .unwrap();
    let scores: Vec<(&str, u8, Option<&str>)> = stored
        .labels
        .iter()
        .map(|l| (l.dimension.as_str(), l.score, l.rater.as_deref()))
        .collect();
    assert_eq!(
        scores,
        [
            ("conceptual_fidelity", 5, Some("ana")),
            ("pedagogical_stance", 4, Some("ana"))
        ]
    );
    assert_eq!(
        server
            .call("PUT", "/api/turns/1/skip", "rater=ana", None)
            .await
            .0,
        200
    );
    server.stop().await;

    // A new server continues where the rater stopped; another rater starts afresh.
    let server = Running::start(options(&out)).await;
    let ana = server.json("/api/sample", "ana").await;
    assert_eq!(ana["labelled"], json!([0]));
    assert_eq!(ana["skipped"], json!([1]));
    let turn = server.json("/api/turns/0", "ana").await;
    assert_eq!(
        turn["scores"],
        json!({"conceptual_fidelity": 5, "pedagogical_stance": 4})
    );
    let ben = server.json("/api/sample", "ben").await;
    assert_eq!(ben["labelled"], json!([]));
    assert_eq!(
        server.json("/api/turns/0", "ben").await["scores"],
        json!({})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_raters_at_once_keep_every_score() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    support::run(support::options(&out)).await;
    // Two servers on one results directory, as two people would run them, and both raters
    // writing through each.
    let first = Running::start(options(&out)).await;
    let second = Running::start(options(&out)).await;
    let dimensions = [
        "pedagogical_stance",
        "conceptual_fidelity",
        "persona_adaptation",
        "dialectical_progress",
    ];
    let mut calls = Vec::new();
    for index in 0..10 {
        for (d, dimension) in dimensions.iter().enumerate() {
            for (rater, server) in [
                ("ana", &first),
                ("ben", &second),
                ("cy", &first),
                ("dee", &second),
            ] {
                let score = 1 + (index + d) % 5;
                calls
                    .push(async move { server.score(index, dimension, rater, json!(score)).await });
            }
        }
    }
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    let history = History::open(&out).unwrap();
    let id = history.finished_or(None).await.unwrap();
    let stored = stored_labels(history.repository(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.labels.len(), 10 * 4 * 4, "no score was lost");
    for rater in ["ana", "ben", "cy", "dee"] {
        assert_eq!(
            stored
                .labels
                .iter()
                .filter(|l| l.rater.as_deref() == Some(rater))
                .count(),
            40,
            "{rater}"
        );
    }
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_replaced_and_bad_options_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");

    let missing = LabelServer::open(options(&out)).await.unwrap_err();
    assert!(matches!(missing, Error::Results(_)), "{missing}");
    // A benchmark stopped before its summary is not labelled.
    let benchmark = Benchmark::open(support::options(&out)).await.unwrap();
    let Outcome::Interrupted(stopped) = benchmark
        .run_until(&(), std::future::ready(()))
        .await
        .unwrap()
    else {
        panic!("finished before the stop");
    };
    drop(benchmark);
    let unfinished = LabelServer::open(options(&out)).await.unwrap_err();
    assert!(matches!(unfinished, Error::NotFound(_)), "{unfinished}");
    assert!(
        unfinished.to_string().contains("no finished benchmark"),
        "{unfinished}"
    );
    let named = LabelServer::open(LabelOptions {
        manifest: Some(stopped.manifest),
        ..options(&out)
    })
    .await
    .unwrap_err();
    assert!(named.to_string().contains("has not finished"), "{named}");
    support::run(support::options(&out)).await;

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let server = LabelServer::open(LabelOptions {
        port: Some(port),
        ..options(&out)
    })
    .await
    .unwrap();
    assert_eq!(server.taken_port(), Some(port));
    assert_ne!(server.address().port(), port);
    assert!(server.address().ip().is_loopback());
    assert!(server.url().starts_with(&format!(
        "http://127.0.0.1:{}/?token=",
        server.address().port()
    )));
    drop(held);

    for (bad, fragment) in [
        (
            LabelOptions {
                turns: 0,
                ..options(&out)
            },
            "--turns",
        ),
        (
            LabelOptions {
                rater: Some(" ".into()),
                ..options(&out)
            },
            "--rater",
        ),
        (
            LabelOptions {
                manifest: Some("01J00000000000000000000000".parse().unwrap()),
                ..options(&out)
            },
            "is not in",
        ),
    ] {
        let error = LabelServer::open(bad).await.unwrap_err();
        assert!(error.to_string().contains(fragment), "{fragment}: {error}");
    }
    let file = dir.path().join("labels.csv");
    let none = export_labels(&out, None, &file).await.unwrap_err();
    assert!(matches!(none, Error::NotFound(_)), "{none}");
    assert!(!file.exists(), "nothing is written without labels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_from_the_page_calibrate_the_judges_and_reach_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    support::run(support::options(&out)).await;
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("Not calibrated"), "a fresh report says so");

    let server = Running::start(LabelOptions {
        rater: Some("Lee, A.".into()),
        ..options(&out)
    })
    .await;
    for index in 0..5 {
        for dimension in [
            "pedagogical_stance",
            "conceptual_fidelity",
            "persona_adaptation",
            "dialectical_progress",
        ] {
            let (status, body) = server
                .call(
                    "PUT",
                    &format!("/api/turns/{index}/scores/{dimension}"),
                    "",
                    Some("{\"score\": 3}"),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    server.stop().await;

    let calibrated = calibrate(&out, None, None).await.unwrap();
    let c = &calibrated.calibration;
    assert_eq!((c.labels, c.turns), (20, 5));
    assert_eq!(c.raters, ["Lee, A."]);
    assert!(
        c.agreement.iter().all(|a| a.turns == 5),
        "{:?}",
        c.agreement
    );
    assert_eq!(calibrated.report, out.join("report.html"));
    let report = std::fs::read_to_string(&calibrated.report).unwrap();
    assert!(!report.contains("Not calibrated"));
    assert!(
        report.contains("20 labels of 5 turns in"),
        "the calibration table is in the report"
    );
    assert_eq!(report.matches("<tr><td>sim-judge</td>").count(), 4);

    // The export is the import format: importing it again changes nothing.
    let file = dir.path().join("labels.csv");
    assert_eq!(export_labels(&out, None, &file).await.unwrap(), 20);
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(
        csv.starts_with("run_id,turn,dimension,score,rater\n"),
        "{csv}"
    );
    assert!(csv.contains(",3,\"Lee, A.\"\n"), "{csv}");
    let again = calibrate(&out, Some(&file), None).await.unwrap();
    assert_eq!(again.calibration, calibrated.calibration);
}
