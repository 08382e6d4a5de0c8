//! docs/openapi.json against the handler: every documented operation is served, every route
//! the handler serves is documented, other methods on a documented path answer 405, and error
//! bodies match the documented schema.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use http::{Request, StatusCode};
use serde_json::Value;
use socratic_core::api::{AdminApi, ApiConfig, ROUTES};
use support::{Harness, Options};

const KEY: &str = "openapi-test-key";

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The documented operations, as (METHOD, template).
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// A checker for the subset of JSON Schema the document uses: `$ref`, `type`, `required`,
/// `properties`, `additionalProperties: false`, `items`. Returns what does not fit.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.trim_start_matches('#');
        return check(doc, doc.pointer(pointer).unwrap(), value, at, problems);
    }
    let fits = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !fits {
        problems.push(format!("{at}: {value} is not {}", schema["type"]));
        return;
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap()) {
                problems.push(format!("{at}: {required} is missing"));
            }
        }
        for (key, member) in object {
            match schema["properties"].get(key) {
                Some(property) => check(doc, property, member, &format!("{at}.{key}"), problems),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    problems.push(format!("{at}.{key} is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(doc, &schema["items"], item, &format!("{at}[{i}]"), problems);
        }
    }
}

async fn call(
    api: &AdminApi,
    method: &str,
    uri: &str,
    body: &str,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = api
        .handle(request.body(body.as_bytes().to_vec()).unwrap())
        .await;
    (
        response.status(),
        serde_json::from_slice(response.body()).unwrap(),
    )
}

fn is_unrouted(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no route")))
}

#[tokio::test]
async fn the_openapi_document_and_the_handler_agree() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let documented = documented(&doc);
    assert_eq!(
        documented.difference(&routes).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not a route"
    );
    assert_eq!(
        routes.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );

    let harness = Harness::new(Options::default()).await;
    let api = AdminApi::new(harness.ports.clone(), ApiConfig::new(KEY));
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    let mut error_bodies = Vec::new();
    for path in paths {
        let uri = path.replace("{id}", id);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let (status, body) = call(&api, method, &uri, "{}", Some(KEY)).await;
            let served = !is_unrouted(status, &body);
            let listed = documented.contains(&(method.to_owned(), path.clone()));
            assert_eq!(served, listed, "{method} {path}: {status} {body}");
            if !listed {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            }
            if !status.is_success() {
                error_bodies.push((format!("{method} {path}"), body));
            }
        }
    }
    // Errors of every kind the document lists: no key, a wrong key, no such route, malformed
    // JSON, an invalid manifest, an unknown id.
    for (what, method, uri, body, key) in [
        ("no key", "GET", "/manifests", "", None),
        ("wrong key", "GET", "/manifests", "", Some("wrong")),
        ("no route", "GET", "/nowhere", "", Some(KEY)),
        ("malformed", "POST", "/manifests", "{not json", Some(KEY)),
        (
            "invalid",
            "POST",
            "/manifests",
            "{\"tutors\": []}",
            Some(KEY),
        ),
        (
            "unknown",
            "GET",
            "/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "",
            Some(KEY),
        ),
    ] {
        let (status, body) = call(&api, method, uri, body, key).await;
        assert!(status.is_client_error(), "{what}: {status}");
        error_bodies.push((what.to_owned(), body));
    }
    let schema = serde_json::json!({"$ref": "#/components/schemas/Error"});
    let mut problems = Vec::new();
    for (what, body) in &error_bodies {
        check(&doc, &schema, body, what, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(error_bodies.len() > 10, "the error schema was exercised");
}
