//! The admin API as a framework-free handler: `http::Request` in, `http::Response` out. An
//! axum server (local) and `lambda_http` (AWS) both wrap it.
//!
//! | route | does |
//! |---|---|
//! | `POST /manifests` | plan a manifest (201, or 200 when the same content was posted before); also takes the deployment guide's body (`prompt_id`, `judge_prompt_id`, `rubric_id`, `seed_ids`, `model_configs`, ids with or without their `PROMPT#`/`SEED#`/… prefix, plus `judge_model_configs`) |
//! | `GET /manifests` | list manifests, newest first |
//! | `GET /manifests/{id}` | the manifest, its progress, and its leaderboard once curated |
//! | `POST /manifests/{id}/labels` | import human labels (CSV body) and answer with the calibration; 422 lists every bad row |
//! | `GET /manifests/{id}/calibration` | each judge against the stored human labels, per dimension |
//! | `GET /runs?manifest=&model=&status=&vector=` | list runs through an index; without a filter, every run, newest first |
//! | `GET /runs/{id}` | the run, its turns, judgments and summary (one query) |
//! | `POST /prompts`, `/rubrics`, `/scenarios`, `/models` | store a catalog entity (201, 200 if identical, 409 if different) |
//! | `GET /prompts`, `/rubrics`, `/scenarios`, `/models` | list the catalog |
//! | `GET /prompts/{id}` … | one catalog entity |
//!
//! `docs/openapi.json` documents these routes (`OpenAPI` 3.1); a test holds it to [`ROUTES`] and
//! to the handler's answers. Every route needs the `x-api-key` header, compared in constant time: 401 without it, 403
//! with a wrong one. Lists take `limit` (1–100, default 25) and `cursor`, and return
//! `next_cursor`: an opaque token, sealed under a server-side key and bound to the listing
//! (route and filters) that issued it, so it shows nothing of the key schema; a changed token,
//! or one from another listing, is a 400 `bad_cursor`. `GET /runs` reads the index of its most
//! selective filter and applies the others to its pages, following the index until the page is
//! full (within a bound of reads), so `?manifest=…&status=failed` finds failures beyond the
//! first page. `GET /manifests/{id}` counts the runs by status and lists the failed and skipped
//! ones with their stage and reason. Errors are JSON `{"error": {"code", "message"}}` (an invalid manifest also
//! lists its `problems`): 400 malformed or truncated JSON or parameters, 404 unknown id or
//! route, 405 wrong method, 409 conflicting immutable content, 413 body over the limit, 422
//! invalid entity or manifest, 429 throttled, 500 internal, 503 unavailable. A 429 or 5xx is
//! the service's fault: its message is generic and names a `request_id`, under which the
//! detail is logged; backend text (which can name accounts, ARNs and resources) never reaches
//! the client. Ids in paths are bare (`RUN#…` would be a fragment).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use http::{Method, Request, Response, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::calibration::{self, CalibrationError};
use crate::entity::{
    CatalogEntity, ManifestRequest, Model, Problems, Prompt, Rubric, RunStatus, Scenario, Validate,
    Vector,
};
use crate::id::{ManifestId, ModelId, PromptId, RubricId, RunId, ScenarioId};
use crate::pipeline::{PlanError, Ports, StageError, plan};
use crate::repository::{PutOutcome, RepoError, RunFilter};
use crate::store::{Cursor, StoreError};

mod cursor;
mod seed;
use cursor::CursorSeal;

/// Every route the API serves, as `(method, path template)`: the list `docs/openapi.json`
/// documents (a test holds them equal, and probes each against the handler). A path that
/// matches a template with another method answers 405.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/manifests"),
    ("GET", "/manifests"),
    ("GET", "/manifests/{id}"),
    ("POST", "/manifests/{id}/labels"),
    ("GET", "/manifests/{id}/calibration"),
    ("GET", "/runs"),
    ("GET", "/runs/{id}"),
    ("POST", "/prompts"),
    ("GET", "/prompts"),
    ("GET", "/prompts/{id}"),
    ("POST", "/rubrics"),
    ("GET", "/rubrics"),
    ("GET", "/rubrics/{id}"),
    ("POST", "/scenarios"),
    ("GET", "/scenarios"),
    ("GET", "/scenarios/{id}"),
    ("POST", "/models"),
    ("GET", "/models"),
    ("GET", "/models/{id}"),
];

/// Whether `segments` fit a path template of [`ROUTES`] (`{id}` fits any one segment).
fn matches_template(template: &str, segments: &[&str]) -> bool {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    parts.len() == segments.len()
        && parts
            .iter()
            .zip(segments)
            .all(|(p, s)| *p == "{id}" || p == s)
}

/// The header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The most failed or skipped runs `GET /manifests/{id}` lists.
const MAX_LISTED_FAILURES: usize = 100;

/// The most index pages one `GET /runs` with combined filters reads to fill its page.
const MAX_FILTER_PAGES: usize = 50;

/// Limits of the API.
#[derive(Clone)]
pub struct ApiConfig {
    /// The key every request must present.
    pub api_key: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The secret that seals pagination cursors; `None` derives it from the API key, which
    /// every instance of a deployment shares, so a cursor from one instance opens on another.
    pub cursor_secret: Option<String>,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("api_key", &"<redacted>")
            .field("max_body_bytes", &self.max_body_bytes)
            .field(
                "cursor_secret",
                &self.cursor_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ApiConfig {
    /// A configuration with the given key and a 1 MiB body limit.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            max_body_bytes: 1024 * 1024,
            cursor_secret: None,
        }
    }
}

/// The admin API.
#[derive(Debug, Clone)]
pub struct AdminApi {
    ports: Ports,
    config: ApiConfig,
    cursors: CursorSeal,
    /// The key requests must present; replaceable at run time (a rotated secret), shared by
    /// every clone.
    key: Arc<RwLock<String>>,
}

/// An API key that is empty or blank: it would let a request with an empty header in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the API key is empty; set a key of at least {MIN_API_KEY_LEN} characters")]
pub struct EmptyApiKey;

/// The shortest API key accepted.
pub const MIN_API_KEY_LEN: usize = 1;

/// An error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    problems: Option<Problems>,
    /// For server faults: the id under which the detail was logged.
    request_id: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            problems: None,
            request_id: None,
        }
    }

    /// A failure of the service, not of the request. Backend messages can name accounts,
    /// ARNs and resources, so the client gets a generic message and a request id; the detail
    /// goes to the log under that id.
    fn fault(status: StatusCode, code: &'static str, detail: &dyn std::fmt::Display) -> Self {
        let request_id = ulid::Ulid::new().to_string();
        let message = match status {
            StatusCode::TOO_MANY_REQUESTS => "the service is busy; retry after a short wait",
            StatusCode::SERVICE_UNAVAILABLE => "a backend is unavailable; retry later",
            _ => "internal error",
        };
        if status.is_server_error() {
            tracing::error!(%request_id, code, %detail, "request failed");
        } else {
            tracing::warn!(%request_id, code, %detail, "request throttled");
        }
        Self {
            status,
            code,
            message: format!("{message} (request {request_id})"),
            problems: None,
            request_id: Some(request_id),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn invalid(code: &'static str, problems: Problems) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message: problems.to_string(),
            problems: Some(problems),
            request_id: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        // Requests are checked before they reach the store, so whatever it refuses is the
        // service's fault, not the client's.
        match &error {
            StoreError::Throttled { .. } => {
                Self::fault(StatusCode::TOO_MANY_REQUESTS, "throttled", &error)
            }
            StoreError::Unavailable { .. } => {
                Self::fault(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &error)
            }
            _ => Self::fault(StatusCode::INTERNAL_SERVER_ERROR, "internal", &error),
        }
    }
}

impl From<RepoError> for ApiError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Store(e) => e.into(),
            RepoError::NotFound { .. } => Self::not_found(error.to_string()),
            RepoError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            RepoError::Invalid { problems, .. } => Self::invalid("invalid_entity", problems),
            other => Self::fault(StatusCode::INTERNAL_SERVER_ERROR, "internal", &other),
        }
    }
}

impl From<StageError> for ApiError {
    fn from(error: StageError) -> Self {
        match &error {
            StageError::Retryable { .. } => {
                Self::fault(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &error)
            }
            _ => Self::fault(StatusCode::INTERNAL_SERVER_ERROR, "internal", &error),
        }
    }
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Vec<u8>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(bytes);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: ApiError) -> Response<Vec<u8>> {
    let mut body = json!({"error": {"code": error.code, "message": error.message}});
    if let Some(problems) = error.problems {
        body["error"]["problems"] = serde_json::to_value(problems.0).unwrap_or(Value::Null);
    }
    if let Some(request_id) = error.request_id {
        body["error"]["request_id"] = Value::from(request_id);
    }
    json_response(error.status, &body)
}

/// Compares two secrets in time independent of where they differ (and of their lengths,
/// since their fixed-size digests are compared).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Query parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(25),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "limit must be 1 to 100, got {text:?}"
                ))),
            },
        }
    }
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| ApiError::bad_request(e.to_string()))
}

/// Parses a JSON body: malformed JSON is 400, well-formed JSON of the wrong shape (unknown or
/// missing field, bad id) is 422.
fn parse_json<T: DeserializeOwned>(body: &[u8], invalid_code: &'static str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            wrong_shape(invalid_code, &e)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
        }
    })
}

/// Well-formed JSON of the wrong shape (unknown or missing field, bad id): 422, one problem.
fn wrong_shape(invalid_code: &'static str, error: &serde_json::Error) -> ApiError {
    let mut problems = Problems::new();
    problems.push("$", error.to_string());
    ApiError::invalid(invalid_code, problems)
}

/// Parses and validates an entity body; a broken invariant is 422 with every problem.
fn parse_entity<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ApiError> {
    let value: T = parse_json(body, "invalid_entity")?;
    value
        .validate()
        .map_err(|problems| ApiError::invalid("invalid_entity", problems))?;
    Ok(value)
}

impl AdminApi {
    /// The API over `ports`. With an empty key every request is refused; binaries check
    /// [`ApiConfig::api_key`] with [`AdminApi::check_api_key`] and refuse to start.
    pub fn new(ports: Ports, config: ApiConfig) -> Self {
        let secret = config
            .cursor_secret
            .clone()
            .unwrap_or_else(|| config.api_key.clone());
        Self {
            cursors: CursorSeal::from_secret(secret.as_bytes()),
            key: Arc::new(RwLock::new(config.api_key.clone())),
            ports,
            config,
        }
    }

    /// Whether `key` can serve as the API key: not empty or blank.
    pub fn check_api_key(key: &str) -> Result<(), EmptyApiKey> {
        if key.trim().len() < MIN_API_KEY_LEN {
            Err(EmptyApiKey)
        } else {
            Ok(())
        }
    }

    /// Replaces the key requests must present (a rotated secret), for this API and its
    /// clones. Pagination cursors stay sealed under the first key, so they keep working.
    pub fn set_api_key(&self, key: impl Into<String>) -> Result<(), EmptyApiKey> {
        let key = key.into();
        Self::check_api_key(&key)?;
        *self.key.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }

    /// Whether `headers` carry the current key.
    pub fn accepts(&self, headers: &http::HeaderMap) -> bool {
        self.authorize(headers).is_ok()
    }

    /// The store cursor inside the `cursor` parameter, which must have been issued for
    /// `listing`.
    fn cursor(&self, params: &Params, listing: &str) -> Result<Option<Cursor>, ApiError> {
        match params.get("cursor").filter(|c| !c.is_empty()) {
            None => Ok(None),
            Some(token) => self.cursors.open(listing, token).map(Some).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_cursor",
                    "the cursor is not one this listing issued (it was changed, or comes from another listing)",
                )
            }),
        }
    }

    /// The token to hand out for the next page of `listing`.
    fn next_cursor(&self, listing: &str, cursor: Option<&Cursor>) -> Option<String> {
        cursor.map(|c| self.cursors.seal(listing, c))
    }

    /// Handles one request. Never panics and never answers a bare 500 text.
    pub async fn handle(&self, request: Request<Vec<u8>>) -> Response<Vec<u8>> {
        match self.route(request).await {
            Ok(response) => response,
            Err(error) => error_response(error),
        }
    }

    /// Checks the API key in `headers`: `None` when it is right, else the 401 or 403 to
    /// answer. A server that streams bodies calls this before reading one, so a caller without
    /// the key cannot make it read (or buffer) anything.
    pub fn check_key(&self, headers: &http::HeaderMap) -> Option<Response<Vec<u8>>> {
        self.authorize(headers).err().map(error_response)
    }

    /// The largest request body the API accepts, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// The 413 answer to a body over [`AdminApi::max_body_bytes`]; `size` when it is known.
    pub fn body_too_large(&self, size: Option<usize>) -> Response<Vec<u8>> {
        let message = match size {
            Some(size) => format!(
                "the body is {size} bytes; the limit is {}",
                self.config.max_body_bytes
            ),
            None => format!(
                "the body is over the limit of {} bytes",
                self.config.max_body_bytes
            ),
        };
        error_response(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            message,
        ))
    }

    /// The 400 answer to a request that could not be read or decoded.
    pub fn bad_request(message: impl Into<String>) -> Response<Vec<u8>> {
        error_response(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            message,
        ))
    }

    fn authorize(&self, headers: &http::HeaderMap) -> Result<(), ApiError> {
        let Some(given) = headers.get(API_KEY_HEADER) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the x-api-key header is required",
            ));
        };
        let expected = self.key.read().unwrap_or_else(PoisonError::into_inner);
        // An empty expected key would let an empty header in.
        if Self::check_api_key(&expected).is_err()
            || !same_secret(given.as_bytes(), expected.as_bytes())
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the API key is not valid",
            ));
        }
        Ok(())
    }

    async fn route(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, ApiError> {
        self.authorize(request.headers())?;
        if request.body().len() > self.config.max_body_bytes {
            return Ok(self.body_too_large(Some(request.body().len())));
        }
        let path = request.uri().path().trim_end_matches('/').to_owned();
        let params = Params::parse(request.uri().query());
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = request.method().clone();
        let body = request.into_body();
        match (segments.as_slice(), &method) {
            (["manifests"], &Method::POST) => self.post_manifest(&body).await,
            (["manifests"], &Method::GET) => self.list_manifests(&params).await,
            (["manifests", id], &Method::GET) => self.get_manifest(id).await,
            (["manifests", id, "labels"], &Method::POST) => self.post_labels(id, &body).await,
            (["manifests", id, "calibration"], &Method::GET) => self.get_calibration(id).await,
            (["runs"], &Method::GET) => self.list_runs(&params).await,
            (["runs", id], &Method::GET) => self.get_run(id).await,
            (["prompts"], &Method::POST) => self.put_catalog::<Prompt>(&body).await,
            (["rubrics"], &Method::POST) => self.put_catalog::<Rubric>(&body).await,
            (["scenarios"], &Method::POST) => self.put_catalog::<Scenario>(&body).await,
            (["models"], &Method::POST) => self.put_catalog::<Model>(&body).await,
            (["prompts"], &Method::GET) => self.list_catalog::<Prompt>("prompts", &params).await,
            (["rubrics"], &Method::GET) => self.list_catalog::<Rubric>("rubrics", &params).await,
            (["scenarios"], &Method::GET) => {
                self.list_catalog::<Scenario>("scenarios", &params).await
            }
            (["models"], &Method::GET) => self.list_catalog::<Model>("models", &params).await,
            (["prompts", id], &Method::GET) => {
                self.get_catalog::<Prompt>(&parse_id::<PromptId>(id)?).await
            }
            (["rubrics", id], &Method::GET) => {
                self.get_catalog::<Rubric>(&parse_id::<RubricId>(id)?).await
            }
            (["scenarios", id], &Method::GET) => {
                self.get_catalog::<Scenario>(&parse_id::<ScenarioId>(id)?)
                    .await
            }
            (["models", id], &Method::GET) => {
                self.get_catalog::<Model>(&parse_id::<ModelId>(id)?).await
            }
            _ if ROUTES
                .iter()
                .any(|(_, template)| matches_template(template, &segments)) =>
            {
                Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{method} is not allowed on {path}"),
                ))
            }
            _ => Err(ApiError::not_found(format!("no route {method} {path}"))),
        }
    }

    async fn post_manifest(&self, body: &[u8]) -> Result<Response<Vec<u8>>, ApiError> {
        // The planner validates the request and its catalog references together, so every
        // problem comes back in one answer.
        let value: Value = parse_json(body, "invalid_manifest")?;
        // The deployment guide's body (prompt_id, seed_ids, model_configs) is accepted too.
        let value = if seed::is_seed_body(&value) {
            seed::to_request(value).map_err(|e| wrong_shape("invalid_manifest", &e))?
        } else {
            value
        };
        let request: ManifestRequest =
            serde_json::from_value(value).map_err(|e| wrong_shape("invalid_manifest", &e))?;
        let planned = plan(&self.ports, &request).await.map_err(|e| match e {
            PlanError::Invalid(problems) => ApiError::invalid("invalid_manifest", problems),
            PlanError::Backend(e) => e.into(),
        })?;
        let status = if planned.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(json_response(
            status,
            &json!({
                "manifest_id": planned.manifest.id,
                "created": planned.created,
                "runs": planned.runs,
                "jobs_queued": planned.jobs_sent,
            }),
        ))
    }

    async fn list_manifests(&self, params: &Params) -> Result<Response<Vec<u8>>, ApiError> {
        let listing = "manifests";
        let page = self
            .ports
            .repository
            .list_manifests(params.limit()?, self.cursor(params, listing)?)
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"manifests": page.items, "next_cursor": self.next_cursor(listing, page.cursor.as_ref())}),
        ))
    }

    async fn get_manifest(&self, id: &str) -> Result<Response<Vec<u8>>, ApiError> {
        let id: ManifestId = parse_id(id)?;
        let repo = &self.ports.repository;
        // The counts, the failures an operator looks for and the summary: two requests at
        // most, however many runs the manifest has.
        let Some(status) = repo.manifest_status(&id, MAX_LISTED_FAILURES).await? else {
            return Err(ApiError::not_found(format!("manifest {id} not found")));
        };
        let (progress, manifest) = (&status.progress, &status.progress.manifest);
        let summary = &status.summary;
        let by_status: BTreeMap<&'static str, u64> = status
            .by_status
            .iter()
            .map(|(s, n)| (s.as_str(), *n))
            .collect();
        let stopped: Vec<Value> = status
            .stopped
            .iter()
            .map(|run| {
                json!({
                    "run": run.id, "status": run.status, "tutor": run.tutor.model,
                    "scenario": run.scenario, "repetition": run.repetition,
                    "stage": run.failure.as_ref().map(|f| f.stage),
                    "reason": run.failure.as_ref().map(|f| f.reason.as_str()),
                })
            })
            .collect();
        let stopped_count = usize::try_from(status.stopped_count).unwrap_or(usize::MAX);
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "manifest": manifest,
                "progress": {
                    "finished_runs": progress.finished,
                    "runs": manifest.run_count,
                    "by_status": by_status,
                },
                "failed_runs": stopped,
                "failed_runs_truncated": stopped_count > stopped.len(),
                "summary": summary,
            }),
        ))
    }

    /// Imports human labels (CSV) for a manifest's turns and answers with the calibration.
    async fn post_labels(&self, id: &str, body: &[u8]) -> Result<Response<Vec<u8>>, ApiError> {
        let id: ManifestId = parse_id(id)?;
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the labels are not UTF-8 text"))?;
        let now = self.ports.clock.now();
        match calibration::import_labels(&self.ports.repository, &id, text, now).await {
            Ok(calibration) => Ok(json_response(StatusCode::OK, &calibration)),
            Err(CalibrationError::Labels(problems)) => {
                Err(ApiError::invalid("invalid_labels", problems))
            }
            Err(CalibrationError::Repo(e)) => Err(e.into()),
        }
    }

    /// The calibration over a manifest's stored labels.
    async fn get_calibration(&self, id: &str) -> Result<Response<Vec<u8>>, ApiError> {
        let id: ManifestId = parse_id(id)?;
        match calibration::stored_calibration(&self.ports.repository, &id).await {
            Ok(Some(calibration)) => Ok(json_response(StatusCode::OK, &calibration)),
            Ok(None) => Err(ApiError::not_found(format!(
                "manifest {id} has no human labels; POST them to /manifests/{id}/labels"
            ))),
            Err(CalibrationError::Labels(problems)) => {
                Err(ApiError::invalid("invalid_labels", problems))
            }
            Err(CalibrationError::Repo(e)) => Err(e.into()),
        }
    }

    async fn list_runs(&self, params: &Params) -> Result<Response<Vec<u8>>, ApiError> {
        let status = params
            .get("status")
            .map(|s| {
                RunStatus::parse(s)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown status {s:?}")))
            })
            .transpose()?;
        let model = params.get("model").map(parse_id::<ModelId>).transpose()?;
        let manifest = params
            .get("manifest")
            .map(parse_id::<ManifestId>)
            .transpose()?;
        let vector = params
            .get("vector")
            .map(|v| {
                Vector::ALL
                    .into_iter()
                    .find(|x| x.as_str() == v)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown vector {v:?}")))
            })
            .transpose()?;
        // The most selective filter picks the index; the others filter its page.
        let filter = match (&manifest, &model, status, vector) {
            (Some(m), ..) => RunFilter::Manifest(*m),
            (None, Some(m), ..) => RunFilter::Model(m.clone()),
            (None, None, Some(s), _) => RunFilter::Status(s),
            (None, None, None, Some(v)) => RunFilter::Vector(v),
            (None, None, None, None) => RunFilter::All,
        };
        // A cursor belongs to one index and one set of filters.
        let listing = format!(
            "runs?manifest={}&model={}&status={}&vector={}",
            manifest.map(|m| m.to_string()).unwrap_or_default(),
            model.as_ref().map(ToString::to_string).unwrap_or_default(),
            status.map(RunStatus::as_str).unwrap_or_default(),
            vector.map(Vector::as_str).unwrap_or_default(),
        );
        // The other filters apply to the index's pages. Follow its cursor until the page is
        // full, asking each time for no more than is missing so nothing is skipped, within a
        // bound on reads; the cursor returned resumes where the reading stopped.
        let limit = params.limit()?;
        let mut cursor = self.cursor(params, &listing)?;
        let mut runs = Vec::with_capacity(limit);
        for _ in 0..MAX_FILTER_PAGES {
            let page = self
                .ports
                .repository
                .list_runs(&filter, limit - runs.len(), cursor)
                .await?;
            runs.extend(
                page.items
                    .into_iter()
                    .filter(|r| model.as_ref().is_none_or(|m| &r.tutor.model == m))
                    .filter(|r| status.is_none_or(|s| r.status == s))
                    .filter(|r| vector.is_none_or(|v| r.vector == v)),
            );
            cursor = page.cursor;
            if cursor.is_none() || runs.len() >= limit {
                break;
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"runs": runs, "next_cursor": self.next_cursor(&listing, cursor.as_ref())}),
        ))
    }

    async fn get_run(&self, id: &str) -> Result<Response<Vec<u8>>, ApiError> {
        let id: RunId = parse_id(id)?;
        let record = self
            .ports
            .repository
            .run_record(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "run": record.run.value,
                "judged": record.judgments.len(),
                "turns": record.turns,
                "judgments": record.judgments,
                "summary": record.summary,
            }),
        ))
    }

    async fn put_catalog<E: CatalogEntity + DeserializeOwned>(
        &self,
        body: &[u8],
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let value: E = parse_entity(body)?;
        let outcome = self.ports.repository.put_catalog(&value).await?;
        let (status, created) = match outcome {
            PutOutcome::Created => (StatusCode::CREATED, true),
            PutOutcome::Unchanged => (StatusCode::OK, false),
        };
        Ok(json_response(
            status,
            &json!({"id": value.id().to_string(), "created": created}),
        ))
    }

    async fn list_catalog<E: CatalogEntity + Serialize>(
        &self,
        name: &str,
        params: &Params,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let listing = format!("catalog/{name}");
        let page = self
            .ports
            .repository
            .list_catalog::<E>(params.limit()?, self.cursor(params, &listing)?)
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({name: page.items, "next_cursor": self.next_cursor(&listing, page.cursor.as_ref())}),
        ))
    }

    async fn get_catalog<E: CatalogEntity + Serialize>(
        &self,
        id: &E::Id,
    ) -> Result<Response<Vec<u8>>, ApiError> {
        let entity = self.ports.repository.require_catalog::<E>(id).await?;
        Ok(json_response(StatusCode::OK, &entity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret(b"key", b"key"));
        assert!(!same_secret(b"key", b"kez"));
        assert!(!same_secret(b"", b"key"));
        assert!(!same_secret(b"key-but-longer", b"key"));
    }
}
