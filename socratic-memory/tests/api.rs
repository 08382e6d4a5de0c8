//! The admin API: every route, every error status, pagination.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::defaults::Defaults;
use support::{Harness, Options, default_request, fast_config};

const KEY: &str = "test-key-0123456789";

struct Client {
    api: AdminApi,
}

impl Client {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.raw(
            method,
            uri,
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            Some(KEY),
        )
        .await
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = self.api.handle(request.body(body).unwrap()).await;
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        let status = response.status();
        let value: Value = serde_json::from_slice(response.body()).expect("every response is JSON");
        if !status.is_success() {
            assert!(
                value["error"]["code"].is_string() && value["error"]["message"].is_string(),
                "{value}"
            );
        }
        (status, value)
    }
}

async fn client() -> (Harness, Client) {
    let harness = Harness::new(Options::default()).await;
    let api = AdminApi::new(
        harness.ports.clone(),
        ApiConfig {
            max_body_bytes: 64 * 1024,
            ..ApiConfig::new(KEY)
        },
    );
    (harness, Client { api })
}

#[tokio::test]
async fn every_route_needs_the_api_key() {
    let (_, client) = client().await;
    for uri in ["/manifests", "/runs?status=pending", "/prompts", "/nowhere"] {
        let (status, body) = client.raw(Method::GET, uri, Vec::new(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = client
            .raw(Method::GET, uri, Vec::new(), Some("wrong"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_a_manifest_run_it_and_read_everything_back() {
    let (harness, client) = client().await;
    let request = serde_json::to_value(default_request()).unwrap();
    let (status, planned) = client
        .call(Method::POST, "/manifests", Some(request.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{planned}");
    assert_eq!(planned["jobs_queued"], 24);
    let id = planned["manifest_id"].as_str().unwrap().to_owned();
    let (status, again) = client.call(Method::POST, "/manifests", Some(request)).await;
    assert_eq!(status, StatusCode::OK, "the same manifest again is not new");
    assert_eq!(again["manifest_id"], id.as_str());
    assert_eq!(again["created"], false);

    let (_, before) = client
        .call(Method::GET, &format!("/manifests/{id}"), None)
        .await;
    assert_eq!(before["progress"]["runs"], 24);
    assert_eq!(before["summary"], Value::Null);

    let runner = harness.runner(4, fast_config());
    runner
        .complete(&id.parse().unwrap(), Some(Duration::from_secs(60)))
        .await
        .unwrap();

    let (status, done) = client
        .call(Method::GET, &format!("/manifests/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["progress"]["finished_runs"], 24);
    assert_eq!(done["summary"]["leaderboard"][0]["model"], "sim-socratic");
    let (_, listed) = client.call(Method::GET, "/manifests", None).await;
    assert_eq!(listed["manifests"][0]["id"], id.as_str());

    // Runs, page by page through the manifest index.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let uri = format!(
            "/runs?manifest={id}&limit=10{}",
            if cursor.is_empty() {
                String::new()
            } else {
                format!("&cursor={cursor}")
            }
        );
        let (status, page) = client.call(Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK);
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 10);
        seen.extend(runs.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 24);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 24, "every run exactly once across pages");

    let (_, by_model) = client
        .call(Method::GET, "/runs?model=sim-leaky&limit=100", None)
        .await;
    assert_eq!(by_model["runs"].as_array().unwrap().len(), 8);
    let (_, by_status) = client
        .call(Method::GET, "/runs?status=curated&limit=100", None)
        .await;
    assert_eq!(by_status["runs"].as_array().unwrap().len(), 24);
    let (_, combined) = client
        .call(
            Method::GET,
            &format!("/runs?manifest={id}&model=sim-leaky&vector=aporia&limit=100"),
            None,
        )
        .await;
    assert_eq!(combined["runs"].as_array().unwrap().len(), 4);

    // Without a filter: every run, newest first, page by page (a second manifest's runs come
    // first).
    let mut newer = default_request();
    newer.repetitions = 2;
    let (status, second) = client
        .call(
            Method::POST,
            "/manifests",
            Some(serde_json::to_value(&newer).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let mut listed: Vec<Value> = Vec::new();
    let mut uri = "/runs?limit=10".to_owned();
    loop {
        let (status, page) = client.call(Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        listed.extend(page["runs"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/runs?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(listed.len(), 24 + 48, "every run of both manifests");
    let created: Vec<&str> = listed
        .iter()
        .map(|r| r["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
    assert!(
        listed[..48]
            .iter()
            .all(|r| r["manifest"] == second["manifest_id"]),
        "the newer manifest's runs lead"
    );

    let (status, run) = client
        .call(Method::GET, &format!("/runs/{}", seen[0]), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["turns"].as_array().unwrap().len(), 3);
    assert_eq!(run["judgments"].as_array().unwrap().len(), 3);
    assert!(run["summary"]["overall"].is_number());
}

#[tokio::test]
async fn the_catalog_can_be_created_listed_and_read() {
    let (_, client) = client().await;
    let mut scenario = serde_json::to_value(&Defaults::load().unwrap().scenarios[0]).unwrap();
    scenario["id"] = json!("EL-NEW-01");
    let (status, created) = client
        .call(Method::POST, "/scenarios", Some(scenario.clone()))
        .await;
    assert_eq!(
        (status, created["created"].clone()),
        (StatusCode::CREATED, json!(true))
    );
    let (status, same) = client
        .call(Method::POST, "/scenarios", Some(scenario.clone()))
        .await;
    assert_eq!(
        (status, same["created"].clone()),
        (StatusCode::OK, json!(false))
    );
    scenario["title"] = json!("Changed");
    let (status, conflict) = client
        .call(Method::POST, "/scenarios", Some(scenario))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(conflict["error"]["code"], "conflict");

    let (status, one) = client.call(Method::GET, "/scenarios/EL-NEW-01", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["title"], Defaults::load().unwrap().scenarios[0].title);
    let mut ids = Vec::new();
    let mut uri = "/scenarios?limit=4".to_owned();
    loop {
        let (_, page) = client.call(Method::GET, &uri, None).await;
        ids.extend(
            page["scenarios"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/scenarios?limit=4&cursor={c}"),
            None => break,
        }
    }
    let bank = Defaults::load().unwrap().scenarios.len();
    assert_eq!(ids.len(), bank + 1, "the default bank and the new one");

    // A cursor is opaque, bound to the listing that issued it, and checked.
    let (_, first) = client.call(Method::GET, "/scenarios?limit=2", None).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    assert!(
        !cursor
            .to_uppercase()
            .contains(&hex::encode("SEED#").to_uppercase())
            && !cursor.contains("SEED"),
        "the cursor shows no key: {cursor}"
    );
    let (status, ok) = client
        .call(
            Method::GET,
            &format!("/scenarios?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let (status, other) = client
        .call(
            Method::GET,
            &format!("/prompts?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(other["error"]["code"], "bad_cursor");
    let mut tampered = cursor.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (status, body) = client
        .call(
            Method::GET,
            &format!("/scenarios?limit=2&cursor={tampered}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_cursor");
    for kind in ["prompts", "rubrics", "models"] {
        let (status, page) = client.call(Method::GET, &format!("/{kind}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!page[kind].as_array().unwrap().is_empty(), "{kind}");
    }
    let (status, _) = client.call(Method::GET, "/rubrics/ase-v1", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client.call(Method::GET, "/models/sim-judge", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client.call(Method::GET, "/prompts/judge-v1", None).await;
    assert_eq!(status, StatusCode::OK);
    let model = json!({"id": "new-model", "provider": "simulated", "provider_model_id": "sim-judge", "name": "N", "prices": {"input": 1, "output": 2}});
    assert_eq!(
        client.call(Method::POST, "/models", Some(model)).await.0,
        StatusCode::CREATED
    );
    let prompt = json!({"id": "p2", "kind": "judge", "title": "t", "body": "b"});
    assert_eq!(
        client.call(Method::POST, "/prompts", Some(prompt)).await.0,
        StatusCode::CREATED
    );
    let mut rubric = serde_json::to_value(Defaults::load().unwrap().rubric).unwrap();
    rubric["id"] = json!("ase-v2");
    assert_eq!(
        client.call(Method::POST, "/rubrics", Some(rubric)).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn every_error_status_has_a_json_body() {
    let (_, client) = client().await;
    // 400: malformed JSON, bad parameters, bad ids.
    let (status, body) = client
        .raw(Method::POST, "/manifests", b"{not json".to_vec(), Some(KEY))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    // Truncated JSON is malformed too, not a request of the wrong shape.
    for truncated in [
        &b"{\"tutor_prompt\": \"socratic-tu"[..],
        b"{\"scenarios\": [",
        b"",
    ] {
        let (status, body) = client
            .raw(Method::POST, "/manifests", truncated.to_vec(), Some(KEY))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("malformed_json")),
            "{}",
            String::from_utf8_lossy(truncated)
        );
    }
    assert_eq!(
        client
            .call(Method::GET, "/runs?status=sleeping", None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        client
            .call(Method::GET, "/runs?status=pending&limit=0", None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        client
            .call(Method::GET, "/runs?status=pending&cursor=bogus", None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        client.call(Method::GET, "/runs/RUN%23123", None).await.0,
        StatusCode::BAD_REQUEST
    );
    // 404: unknown ids and routes.
    let unknown = "01JD8X4Z7Q3V9K2M5N6P7R8S9T";
    assert_eq!(
        client
            .call(Method::GET, &format!("/runs/{unknown}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client
            .call(Method::GET, &format!("/manifests/{unknown}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.call(Method::GET, "/scenarios/NOPE-01", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.call(Method::GET, "/nowhere", None).await.0,
        StatusCode::NOT_FOUND
    );
    // 405: a known path with the wrong method.
    assert_eq!(
        client.call(Method::DELETE, "/manifests", None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // 413: a body over the limit.
    let (status, _) = client
        .raw(
            Method::POST,
            "/scenarios",
            vec![b' '; 64 * 1024 + 1],
            Some(KEY),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // 422: an invalid manifest lists every problem.
    let mut request = serde_json::to_value(default_request()).unwrap();
    request["scenarios"] = json!(["NOPE-01"]);
    request["tutors"][0]["temperature"] = json!(2.0);
    request["judges"] = json!([]);
    let (status, body) = client.call(Method::POST, "/manifests", Some(request)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_manifest");
    let fields: Vec<&str> = body["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    for field in ["judges", "tutors[0].temperature", "scenarios[0]"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    // 422: well-formed JSON of the wrong shape, and an entity that breaks an invariant.
    let (status, body) = client
        .call(Method::POST, "/models", Some(json!({"id": "x"})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_entity"))
    );
    let mut rubric = serde_json::to_value(Defaults::load().unwrap().rubric).unwrap();
    rubric["id"] = json!("broken");
    rubric["dimensions"] = json!([]);
    let (status, body) = client.call(Method::POST, "/rubrics", Some(rubric)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["problems"][0]["field"], "dimensions");
}

#[tokio::test]
async fn failures_beyond_the_first_page_are_found() {
    use socratic_core::entity::{RunFailure, RunStatus, Stage};
    use socratic_core::repository::RunFilter;

    let (harness, client) = client().await;
    let mut request = default_request();
    request.repetitions = 5;
    let planned = socratic_core::pipeline::plan(&harness.ports, &request)
        .await
        .unwrap();
    assert_eq!(planned.runs.len(), 120);
    let manifest = planned.manifest.id;
    // The last five runs of the manifest's listing fail: none is on its first page.
    let repo = &harness.ports.repository;
    let runs = repo
        .list_runs(&RunFilter::Manifest(manifest), 200, None)
        .await
        .unwrap()
        .items;
    for run in &runs[115..] {
        let stored = repo.get_run(&run.id).await.unwrap().unwrap();
        let mut failed = stored.value.clone();
        failed.status = RunStatus::Failed;
        failed.failure = Some(RunFailure {
            stage: Stage::Dialogue,
            reason: format!("model unavailable for {}", run.id),
        });
        repo.move_run(&stored, failed).await.unwrap().unwrap();
    }
    let failed_ids: Vec<String> = runs[115..].iter().map(|r| r.id.to_string()).collect();

    // One request fills its page from further down the index.
    let (status, page) = client
        .call(
            Method::GET,
            &format!("/runs?manifest={manifest}&status=failed&limit=10"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, failed_ids);
    assert!(page["next_cursor"].is_null());

    // Smaller pages, followed by their cursors, give each failure once.
    let mut seen = Vec::new();
    let mut uri = format!("/runs?manifest={manifest}&status=failed&limit=2");
    loop {
        let (_, page) = client.call(Method::GET, &uri, None).await;
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 2);
        seen.extend(runs.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => {
                uri = format!("/runs?manifest={manifest}&status=failed&limit=2&cursor={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, failed_ids);

    // The manifest names its failures with their stage and reason, and counts by status.
    let (_, body) = client
        .call(Method::GET, &format!("/manifests/{manifest}"), None)
        .await;
    assert_eq!(
        body["progress"]["by_status"],
        json!({"pending": 115, "failed": 5})
    );
    let listed = body["failed_runs"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0]["stage"], "dialogue");
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("model unavailable")
    );
    assert_eq!(body["failed_runs_truncated"], false);
}

#[tokio::test]
async fn the_deployment_guides_manifest_body_is_accepted() {
    let (_, client) = client().await;
    let mut body = json!({
        "prompt_id": "PROMPT#socratic-tutor-v1",
        "judge_prompt_id": "PROMPT#judge-v1",
        "rubric_id": "RUBRIC#ase-v1",
        "seed_ids": ["SEED#EL-ETH-UTIL-DEON-01", "SEED#MAI-BIO-CRISPR-01"],
        "model_configs": [{"model_id": "MODEL#sim-socratic", "temperature": 0.7}]
    });
    // The guide had no judge stage: its body alone names no judge, and that is the problem.
    let (status, refused) = client
        .call(Method::POST, "/manifests", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let fields: Vec<&str> = refused["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["judges"], "{refused}");

    body["judge_model_configs"] = json!([{"model_id": "MODEL#sim-judge"}]);
    let (status, planned) = client.call(Method::POST, "/manifests", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{planned}");
    assert_eq!(planned["runs"].as_array().unwrap().len(), 2);
    let id = planned["manifest_id"].as_str().unwrap();
    let (_, manifest) = client
        .call(Method::GET, &format!("/manifests/{id}"), None)
        .await;
    let request = &manifest["manifest"]["request"];
    assert_eq!(request["tutor_prompt"], "socratic-tutor-v1");
    assert_eq!(request["rubric"], "ase-v1");
    assert_eq!(request["scenarios"][1], "MAI-BIO-CRISPR-01");
    assert_eq!(request["tutors"][0]["model"], "sim-socratic");
    assert_eq!(request["judges"][0]["temperature"], 0.0);

    // An unknown field of the guide's shape is named, not ignored.
    let (status, unknown) = client
        .call(
            Method::POST,
            "/manifests",
            Some(
                json!({"prompt_id": "x", "judge_prompt_id": "y", "rubric_id": "z",
                        "seed_ids": [], "model_configs": [], "colour": "red"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.to_string().contains("colour"), "{unknown}");
}
