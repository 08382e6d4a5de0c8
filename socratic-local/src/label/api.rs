//! The labelling page's HTTP interface. Every route needs the token; the rater is named by the
//! `rater` query parameter or, failing that, by `--rater`.
//!
//! - `GET /`: the page.
//! - `GET /api/sample`: the rubric's dimensions and anchors, the sample's size, and which
//!   turns this rater has answered.
//! - `GET /api/turns/{i}`: turn `i` (from 0): its scenario and dialogue, and this rater's
//!   scores of it.
//! - `PUT /api/turns/{i}/scores/{dimension}` with `{"score": n}`: stores one score at once.
//! - `PUT /api/turns/{i}/skip`: stores that this rater skipped the turn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State as Shared};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};
use socratic_core::calibration::CalibrationError;
use socratic_core::clock::{Clock, SystemClock};
use socratic_core::entity::{HumanLabel, HumanLabels, Manifest, Rubric, SkippedTurn};
use socratic_core::labelling::{rater_problem, save_label, skip_turn, stored_labels};
use socratic_core::repository::Repository;

use super::Item;

/// The page: plain HTML, CSS and script, nothing loaded from elsewhere.
const PAGE: &str = include_str!("page.html");

/// What every request shares.
#[derive(Debug)]
pub(super) struct State {
    pub(super) repository: Repository,
    pub(super) manifest: Manifest,
    pub(super) rubric: Rubric,
    pub(super) items: Vec<Item>,
    pub(super) token: String,
    pub(super) rater: Option<String>,
}

/// The routes, behind the token check.
pub(super) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/sample", get(sample))
        .route("/api/turns/{index}", get(turn))
        .route("/api/turns/{index}/scores/{dimension}", put(score))
        .route("/api/turns/{index}/skip", put(skip))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// A failed request: its status and what to tell the person.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<CalibrationError> for Failure {
    fn from(error: CalibrationError) -> Self {
        match error {
            CalibrationError::Labels(problems) => Failure(
                StatusCode::BAD_REQUEST,
                problems
                    .0
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other => internal(other),
        }
    }
}

fn internal(error: impl std::fmt::Display) -> Failure {
    tracing::error!(%error, "labelling request failed");
    Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// The query's parameters.
fn query(request: &Request) -> BTreeMap<String, String> {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Refuses a request without the token (403); answers the rest with no caching, no referrer
/// and a content policy that allows nothing but this address.
async fn guard(Shared(state): Shared<Arc<State>>, request: Request, next: Next) -> Response {
    let given = query(&request).remove("token").unwrap_or_default();
    if !same(given.as_bytes(), state.token.as_bytes()) {
        return Failure(
            StatusCode::FORBIDDEN,
            "the token is wrong or missing: open the address `socratic label` printed".into(),
        )
        .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The rater of a request: `?rater=`, else `--rater`.
fn rater(state: &State, request: &Request) -> Result<Option<String>, Failure> {
    let named = query(request)
        .remove("rater")
        .filter(|r| !r.is_empty())
        .or_else(|| state.rater.clone());
    if let Some(problem) = named.as_deref().and_then(rater_problem) {
        return Err(Failure(StatusCode::BAD_REQUEST, problem));
    }
    Ok(named)
}

fn required_rater(state: &State, request: &Request) -> Result<String, Failure> {
    rater(state, request)?.ok_or_else(|| {
        Failure(
            StatusCode::BAD_REQUEST,
            "name the rater: add ?rater=NAME, or start `socratic label` with --rater".into(),
        )
    })
}

fn item(state: &State, index: usize) -> Result<&Item, Failure> {
    state.items.get(index).ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            format!(
                "turn {index} is not in the sample (0 to {})",
                state.items.len().saturating_sub(1)
            ),
        )
    })
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn labels(state: &State) -> Result<Option<HumanLabels>, Failure> {
    stored_labels(&state.repository, &state.manifest.id)
        .await
        .map_err(internal)
}

/// This rater's scores of one turn, by dimension.
fn scores_of(
    labels: Option<&HumanLabels>,
    item: &Item,
    rater: Option<&str>,
) -> BTreeMap<String, u8> {
    labels
        .iter()
        .flat_map(|l| &l.labels)
        .filter(|l| l.run == item.run && l.turn == item.turn && l.rater.as_deref() == rater)
        .map(|l| (l.dimension.clone(), l.score))
        .collect()
}

fn skipped(labels: Option<&HumanLabels>, item: &Item, rater: Option<&str>) -> bool {
    labels
        .iter()
        .flat_map(|l| &l.skipped)
        .any(|s| s.run == item.run && s.turn == item.turn && s.rater.as_deref() == rater)
}

async fn sample(Shared(state): Shared<Arc<State>>, request: Request) -> Result<Response, Failure> {
    let rater = rater(&state, &request)?;
    let labels = labels(&state).await?;
    let (mut labelled, mut skips) = (BTreeSet::new(), BTreeSet::new());
    if let Some(r) = rater.as_deref() {
        for (i, item) in state.items.iter().enumerate() {
            if !scores_of(labels.as_ref(), item, Some(r)).is_empty() {
                labelled.insert(i);
            } else if skipped(labels.as_ref(), item, Some(r)) {
                skips.insert(i);
            }
        }
    }
    let dimensions: Vec<Value> = state
        .rubric
        .dimensions
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "description": d.description,
                "min": d.scale.min,
                "max": d.scale.max,
                "anchors": d.anchors,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "of": state.items.len(),
        "rater": rater,
        "dimensions": dimensions,
        "labelled": labelled,
        "skipped": skips,
    }))
    .into_response())
}

async fn turn(
    Shared(state): Shared<Arc<State>>,
    Path(index): Path<usize>,
    request: Request,
) -> Result<Response, Failure> {
    let rater = rater(&state, &request)?;
    let item = item(&state, index)?;
    let labels = labels(&state).await?;
    let dialogue: Vec<Value> = item
        .dialogue
        .iter()
        .map(|(speaker, text)| json!({ "speaker": speaker, "text": text }))
        .collect();
    Ok(axum::Json(json!({
        "index": index,
        "of": state.items.len(),
        "turn": item.turn,
        "vector": item.vector,
        "scenario": item.scenario,
        "dialogue": dialogue,
        "scores": scores_of(labels.as_ref(), item, rater.as_deref()),
        "skipped": skipped(labels.as_ref(), item, rater.as_deref()),
    }))
    .into_response())
}

async fn score(
    Shared(state): Shared<Arc<State>>,
    Path((index, dimension)): Path<(usize, String)>,
    request: Request,
) -> Result<Response, Failure> {
    let rater = required_rater(&state, &request)?;
    let item = item(&state, index)?;
    let body = axum::body::to_bytes(request.into_body(), 4096)
        .await
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("reading the body: {e}")))?;
    let score = score_of(&body)?;
    let dim = state
        .rubric
        .dimensions
        .iter()
        .find(|d| d.name == dimension)
        .ok_or_else(|| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "dimension {dimension:?} is not in rubric {}",
                    state.rubric.id
                ),
            )
        })?;
    let score = u8::try_from(score)
        .ok()
        .filter(|s| dim.scale.contains(i64::from(*s)))
        .ok_or_else(|| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "score {score} is outside {}'s scale {}–{}",
                    dim.name, dim.scale.min, dim.scale.max
                ),
            )
        })?;
    let label = HumanLabel {
        run: item.run,
        turn: item.turn,
        dimension,
        score,
        rater: Some(rater),
    };
    save_label(
        &state.repository,
        &state.manifest.id,
        label,
        SystemClock.now(),
    )
    .await?;
    Ok(axum::Json(json!({ "saved": true })).into_response())
}

/// The integer `score` of a JSON body.
fn score_of(body: &Bytes) -> Result<i64, Failure> {
    let bad = |what: &str| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON like {{\"score\": 3}}: {what}"),
        )
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    match value.get("score") {
        None => Err(bad("no score")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad(&format!("{n} is not a whole number"))),
        Some(other) => Err(bad(&format!("{other} is not a number"))),
    }
}

async fn skip(
    Shared(state): Shared<Arc<State>>,
    Path(index): Path<usize>,
    request: Request,
) -> Result<Response, Failure> {
    let rater = required_rater(&state, &request)?;
    let item = item(&state, index)?;
    let skip = SkippedTurn {
        run: item.run,
        turn: item.turn,
        rater: Some(rater),
    };
    skip_turn(
        &state.repository,
        &state.manifest.id,
        skip,
        SystemClock.now(),
    )
    .await?;
    Ok(axum::Json(json!({ "skipped": true })).into_response())
}
