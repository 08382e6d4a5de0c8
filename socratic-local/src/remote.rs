//! A benchmark run by a deployed admin API (the AWS stack, or `socratic-server`), and its
//! results pulled into a local results directory, where `report`, `list`, `show` and
//! `compare` read them as if the benchmark had run here.
//!
//! [`submit`] sends the catalog entities the manifest uses (each created, or found the same),
//! then the manifest request; [`follow`] polls `GET /manifests/{id}` until the summary is
//! there; [`pull`] copies the manifest, its catalog, every run with its turns, judgments and
//! summary, and the manifest's summary, then renders the report. Every step is idempotent:
//! submitting the same request again finds the same manifest, and pulling again changes
//! nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use socratic_core::blob::{BlobKey, BlobPutMode, BlobStoreExt};
use socratic_core::entity::{
    CatalogEntity, Judgment, Manifest, ManifestSummary, Model, Prompt, Rubric, Run, RunSummary,
    Scenario, Turn,
};
use socratic_core::id::ManifestId;
use socratic_core::repository::{RepoError, Repository};
use socratic_sqlite::ResultsDir;

use crate::benchmark::{Benchmark, BenchmarkOptions};
use crate::error::{Context, Error};

/// The environment variable holding the admin API's key.
pub const API_KEY_VARIABLE: &str = "SOCRATIC_API_KEY";

/// Runs read from the API per page.
const PAGE: usize = 100;

/// Why the admin API could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The key is missing from the environment.
    #[error(
        "set {API_KEY_VARIABLE} to the admin API's key (for the AWS stack, the value of the ApiKeySecret output's secret)"
    )]
    NoKey,
    /// The API could not be reached.
    #[error("could not reach the admin API at {url}: {message}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// Why.
        message: String,
    },
    /// The API refused the key.
    #[error("the admin API at {url} refused the key in {API_KEY_VARIABLE} (HTTP {status})")]
    Unauthorized {
        /// The URL asked.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// The API answered with an error.
    #[error("the admin API answered {method} {path} with HTTP {status} {code}: {message}{}", problems_text(.problems))]
    Rejected {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// The status.
        status: u16,
        /// The API's error code (`conflict`, `invalid_manifest`, …).
        code: String,
        /// Its message.
        message: String,
        /// Its problems, for an invalid request.
        problems: Vec<String>,
    },
    /// The API answered with something that is not what it serves.
    #[error("the admin API's answer to {path} cannot be read: {message}")]
    Malformed {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The benchmark has not finished.
    #[error(
        "benchmark {id} has finished {finished} of its {runs} runs; pull it once it has finished"
    )]
    Unfinished {
        /// The benchmark.
        id: ManifestId,
        /// Runs finished.
        finished: u64,
        /// Runs planned.
        runs: u64,
    },
}

impl From<RemoteError> for Error {
    fn from(error: RemoteError) -> Self {
        Self::Remote(Box::new(error))
    }
}

fn problems_text(problems: &[String]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

/// A deployed admin API: its base URL (`https://…/v1`) and key.
#[derive(Debug, Clone)]
pub struct RemoteApi {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl RemoteApi {
    /// The API at `base`, with the key `key`.
    pub fn new(base: &str, key: impl Into<String>) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Invalid(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.into(),
            client,
        })
    }

    /// The API at `base`, with the key from [`API_KEY_VARIABLE`].
    pub fn from_env(base: &str) -> Result<Self, Error> {
        let key = std::env::var(API_KEY_VARIABLE)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or(RemoteError::NoKey)?;
        Self::new(base, key)
    }

    /// `GET path`, parsed.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let value = self.send("GET", path, None).await?;
        parse(path, value)
    }

    /// `POST path` with `body`: the answer.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, RemoteError> {
        self.send("POST", path, Some(body)).await
    }

    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        let url = format!("{}{path}", self.base);
        let request = match body {
            Some(body) => self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => self.client.get(&url),
        };
        let unreachable = |e: reqwest::Error| RemoteError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = request
            .header("x-api-key", &self.key)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if status == 401 || status == 403 {
            return Err(RemoteError::Unauthorized { url, status });
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| RemoteError::Malformed {
            path: path.to_owned(),
            message: format!("HTTP {status}, not JSON: {e}"),
        })?;
        if status >= 400 {
            let error = &value["error"];
            return Err(RemoteError::Rejected {
                method,
                path: path.to_owned(),
                status,
                code: error["code"].as_str().unwrap_or("unknown").to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
                problems: error["problems"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        Ok(value)
    }
}

fn parse<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, RemoteError> {
    serde_json::from_value(value).map_err(|e| RemoteError::Malformed {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The API's collection of a catalog entity kind, by its key's prefix.
fn collection(pk: &str) -> Option<(&'static str, &str)> {
    let (kind, id) = pk.split_once('#')?;
    let collection = match kind {
        "PROMPT" => "prompts",
        "RUBRIC" => "rubrics",
        "SEED" => "scenarios",
        "MODEL" => "models",
        _ => return None,
    };
    Some((collection, id))
}

/// A manifest submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its id in the API's deployment.
    pub manifest: ManifestId,
    /// Whether it was new (not the same request posted before).
    pub created: bool,
    /// Its runs.
    pub runs: u64,
    /// Catalog entities the deployment did not hold and was sent.
    pub catalog_sent: usize,
}

/// Sends the benchmark `options` describe to `api`: the catalog entities its manifest uses,
/// then its manifest request. The entities are those a local run would use (the embedded
/// catalog, `--catalog`, the models file); one the deployment holds with other content is
/// refused there, and the manifest is then not sent.
pub async fn submit(api: &RemoteApi, options: BenchmarkOptions) -> Result<Submitted, Error> {
    // Planned in memory, to learn exactly which catalog entities the manifest uses.
    let benchmark = Benchmark::in_memory(options).await?;
    let ports = benchmark.ports();
    let planned = socratic_core::pipeline::plan(ports, benchmark.request())
        .await
        .map_err(|e| match e {
            socratic_core::pipeline::PlanError::Invalid(problems) => {
                Error::InvalidManifest(problems)
            }
            other => Error::Failed {
                context: "planning the benchmark".to_owned(),
                source: Box::new(other),
            },
        })?;
    let mut catalog_sent = 0;
    for pk in planned.manifest.catalog_hashes.keys() {
        let Some((collection, _)) = collection(pk) else {
            continue;
        };
        let key = socratic_core::store::Key::new(pk.clone(), socratic_core::keys::METADATA);
        let repository = &ports.repository;
        let entity = match collection {
            "prompts" => entity_json::<Prompt>(repository, &key).await,
            "rubrics" => entity_json::<Rubric>(repository, &key).await,
            "scenarios" => entity_json::<Scenario>(repository, &key).await,
            _ => entity_json::<Model>(repository, &key).await,
        }?;
        let answer = api.post(&format!("/{collection}"), &entity).await?;
        if answer["created"] == json!(true) {
            catalog_sent += 1;
        }
    }
    let request = serde_json::to_value(benchmark.request()).context("writing the manifest")?;
    let answer = api.post("/manifests", &request).await?;
    let manifest = answer["manifest_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| RemoteError::Malformed {
            path: "/manifests".to_owned(),
            message: "no manifest_id".to_owned(),
        })?;
    Ok(Submitted {
        manifest,
        created: answer["created"] == json!(true),
        runs: answer["runs"].as_array().map_or(0, |r| r.len() as u64),
        catalog_sent,
    })
}

/// The stored entity at `key` as JSON.
async fn entity_json<E: socratic_core::entity::Entity + serde::Serialize>(
    repository: &Repository,
    key: &socratic_core::store::Key,
) -> Result<Value, Error> {
    let entity = repository
        .get::<E>(key)
        .await
        .with_context(|| format!("reading {key}"))?
        .ok_or_else(|| Error::NotFound(format!("the catalog lacks {key}")))?;
    serde_json::to_value(entity.value).with_context(|| format!("writing {key}"))
}

/// A benchmark's progress in the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteProgress {
    /// Runs finished (completed, curated, failed or skipped).
    pub finished: u64,
    /// Runs planned.
    pub runs: u64,
    /// Whether its summary is written: the benchmark is done.
    pub summarised: bool,
}

/// The progress of benchmark `id`.
pub async fn progress(api: &RemoteApi, id: &ManifestId) -> Result<RemoteProgress, Error> {
    let status: Value = api.get(&format!("/manifests/{id}")).await?;
    Ok(RemoteProgress {
        finished: status["progress"]["finished_runs"].as_u64().unwrap_or(0),
        runs: status["progress"]["runs"].as_u64().unwrap_or(0),
        summarised: status["summary"].is_object(),
    })
}

/// Polls benchmark `id` every `every` until its summary is written, calling `seen` with each
/// answer.
pub async fn follow(
    api: &RemoteApi,
    id: &ManifestId,
    every: Duration,
    seen: &(dyn Fn(&RemoteProgress) + Send + Sync),
) -> Result<RemoteProgress, Error> {
    loop {
        let now = progress(api, id).await?;
        seen(&now);
        if now.summarised {
            return Ok(now);
        }
        tokio::time::sleep(every).await;
    }
}

/// A benchmark pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The benchmark.
    pub manifest: ManifestId,
    /// Its runs.
    pub runs: usize,
    /// The report written.
    pub report: std::path::PathBuf,
}

/// Copies the finished benchmark `id` from `api` into results directory `out` (created if
/// missing) and renders its report there. Catalog entities the directory holds with other
/// content are refused, before anything is written.
pub async fn pull(api: &RemoteApi, id: &ManifestId, out: &Path) -> Result<Pulled, Error> {
    let status: Value = api.get(&format!("/manifests/{id}")).await?;
    let manifest: Manifest = parse("manifest", status["manifest"].clone())?;
    if !status["summary"].is_object() {
        return Err(RemoteError::Unfinished {
            id: *id,
            finished: status["progress"]["finished_runs"].as_u64().unwrap_or(0),
            runs: manifest.run_count,
        }
        .into());
    }
    let summary: ManifestSummary = parse("summary", status["summary"].clone())?;

    let results = ResultsDir::acquire(out)?;
    let repository = Repository::new(Arc::new(results.database().store()));
    let blobs = results.blobs()?;

    // The catalog first: a conflict stops the pull before anything is written.
    for pk in manifest.catalog_hashes.keys() {
        let Some((collection, entity_id)) = collection(pk) else {
            continue;
        };
        let path = format!("/{collection}/{entity_id}");
        let stored = match collection {
            "prompts" => put_catalog::<Prompt>(api, &repository, &path).await,
            "rubrics" => put_catalog::<Rubric>(api, &repository, &path).await,
            "scenarios" => put_catalog::<Scenario>(api, &repository, &path).await,
            _ => put_catalog::<Model>(api, &repository, &path).await,
        };
        stored.with_context(|| format!("storing {pk} in {}", out.display()))?;
    }
    let storing = || format!("storing benchmark {id} in {}", out.display());
    repository
        .create_manifest(&manifest)
        .await
        .with_context(storing)?;
    blobs
        .put_json(
            &BlobKey::new(format!("manifests/{id}.json")).context("naming a file")?,
            &manifest,
            BlobPutMode::Overwrite,
        )
        .await
        .with_context(storing)?;

    let mut runs = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/runs?manifest={id}&limit={PAGE}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = api.get(&path).await?;
        for run in page["runs"].as_array().into_iter().flatten() {
            let run: Run = parse("/runs", run.clone())?;
            let record: Value = api.get(&format!("/runs/{}", run.id)).await?;
            let run: Run = parse("run", record["run"].clone())?;
            let turns: Vec<Turn> = parse("turns", record["turns"].clone())?;
            let judgments: Vec<Judgment> = parse("judgments", record["judgments"].clone())?;
            let run_summary: Option<RunSummary> = parse("summary", record["summary"].clone())?;
            repository
                .put_once(run.clone())
                .await
                .with_context(storing)?;
            for turn in &turns {
                repository
                    .put_once(turn.clone())
                    .await
                    .with_context(storing)?;
            }
            for judgment in &judgments {
                repository
                    .put_once(judgment.clone())
                    .await
                    .with_context(storing)?;
            }
            if let Some(run_summary) = &run_summary {
                repository
                    .put_once(run_summary.clone())
                    .await
                    .with_context(storing)?;
                // The curated document the report reads, as the curator writes it.
                let document = json!({
                    "run": run, "turns": turns, "judgments": judgments, "summary": run_summary,
                });
                blobs
                    .put_compact_json(
                        &BlobKey::new(format!("curated/runs/{}.json", run.id))
                            .context("naming a file")?,
                        &document,
                        BlobPutMode::Overwrite,
                    )
                    .await
                    .with_context(storing)?;
            }
            runs += 1;
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    repository
        .put_once(summary.clone())
        .await
        .with_context(storing)?;
    // The runs were stored, not moved: count them for the manifest's status.
    repository.recount_runs(id).await.with_context(storing)?;
    blobs
        .put_json(
            &BlobKey::new(format!("curated/manifests/{id}/summary.json"))
                .context("naming a file")?,
            &summary,
            BlobPutMode::Overwrite,
        )
        .await
        .with_context(storing)?;
    drop(results);
    // A directory without a report at its top shows this one there, as after a run.
    let top = !out.join(crate::benchmark::REPORT_FILES[0]).exists();
    let rendered = crate::rerender::render(out, Some(*id), top).await?;
    Ok(Pulled {
        manifest: *id,
        runs,
        report: rendered.report,
    })
}

/// Reads one catalog entity from the API and stores it, unless the directory holds it the
/// same; other content is a conflict.
async fn put_catalog<E: CatalogEntity + DeserializeOwned>(
    api: &RemoteApi,
    repository: &Repository,
    path: &str,
) -> Result<(), Error> {
    let entity: E = api.get(path).await?;
    match repository.put_catalog(&entity).await {
        Ok(_) => Ok(()),
        Err(e @ RepoError::Conflict { .. }) => Err(Error::Invalid(format!(
            "{e}: the results directory holds another version; pull into another directory"
        ))),
        Err(e) => Err(e).context("storing the catalog"),
    }
}
