//! The models file (`--models FILE`, TOML or JSON): which models the command line may call,
//! where they are served, what they cost, and how hard they may be driven.
//!
//! ```toml
//! [[models]]
//! id = "gpt-4o-mini"                 # the catalog id manifests use
//! provider = "openai"                # openai (any compatible server), anthropic, bedrock or simulated
//! model = "gpt-4o-mini"              # the provider's own model id
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"     # the variable holding the key; never the key itself
//! prices = { input = 0.15, output = 0.60, cache_read = 0.075 }   # $ per million tokens
//! concurrency = 8                    # calls at once
//! requests_per_minute = 500
//! batch = true                       # optional: its calls through the Batch API, at
//!                                    # prices.batch_input / batch_output
//!
//! [[servers]]                        # optional: calls at once to one server, all its models
//! base_url = "http://localhost:8080/v1"
//! concurrency = 1
//! ```
//!
//! Models of an OpenAI-compatible server that share a `base_url` share one concurrency limit:
//! its `[[servers]]` entry's, or else the largest `concurrency` among them (the command
//! line's `--concurrency` for those without one). A local server answers one request, or a
//! few, at a time; calls beyond that wait here rather than in its queue, so a call's
//! `timeout_secs` counts from when the server can take it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use socratic_core::blob::BlobStore;
use socratic_core::entity::{Model, Validate};
use socratic_core::id::ModelId;
use socratic_core::llm::{
    BatchApi, Batcher, Budget, CacheMode, CallRecorder, ClientStack, ConverseRequest, LlmClient,
    Message, Prices, RetryPolicy, Role, StackCache, StructuredMode, TokenLimitField,
};
use socratic_core::pipeline::Providers;
#[cfg(feature = "openai")]
use socratic_openai::{OpenAiConfig, OpenAiLlm};

use crate::Error;
#[cfg(any(feature = "openai", feature = "anthropic"))]
use crate::error::Context;
use socratic_sim::SimulatedLlm;

/// The providers a models file may name.
pub const PROVIDERS: [&str; 4] = ["openai", "anthropic", "bedrock", "simulated"];

/// The providers whose calls batch mode can send through a batch interface.
pub const BATCH_PROVIDERS: [&str; 3] = ["openai", "anthropic", "bedrock"];

/// The key variable of an `anthropic` model without `api_key_env`.
pub const ANTHROPIC_KEY: &str = "ANTHROPIC_API_KEY";

/// Anthropic's API root, for an `anthropic` model without `base_url`.
pub const ANTHROPIC_API: &str = "https://api.anthropic.com/v1";

/// One model of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Catalog id.
    pub id: String,
    /// `openai`, `anthropic`, `bedrock` or `simulated`.
    pub provider: String,
    /// The provider's model id (for Bedrock, a model id or inference profile id).
    pub model: String,
    /// Display name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The API root of an OpenAI-compatible server (required for `openai`); for `bedrock`,
    /// an endpoint override.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Bedrock's region; the SDK's default chain when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// How judges' structured output is requested from an OpenAI-compatible server.
    #[serde(default)]
    pub structured: StructuredMode,
    /// Which field carries the output token limit.
    #[serde(default)]
    pub token_limit_field: TokenLimitField,
    /// Prices in US dollars per million tokens.
    pub prices: Prices,
    /// Calls at once; the command line's `--concurrency` when absent.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Calls started per minute; unlimited when absent.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Seconds allowed per call (with `stream`, from the answer's first byte).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Stream answers from an OpenAI-compatible server, so that time in the server's queue
    /// counts against `first_token_timeout_secs`, not `timeout_secs`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// With `stream`, seconds allowed until an answer's first byte.
    #[serde(
        default = "default_first_token_timeout",
        skip_serializing_if = "is_default_first_token_timeout"
    )]
    pub first_token_timeout_secs: u64,
    /// Send this model's calls through its provider's batch interface, at its batch prices,
    /// even without `run --batch`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    /// Bedrock batch inference: the service role Bedrock assumes to read the records and
    /// write the answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_role_arn: Option<String>,
    /// Bedrock batch inference: where the records and answers go (`s3://bucket/prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_s3_uri: Option<String>,
    /// Bedrock batch inference: the fewest records a job takes (Bedrock's per-model quota,
    /// 100 when absent); a smaller round runs live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_min_records: Option<usize>,
}

fn default_timeout() -> u64 {
    120
}

fn default_first_token_timeout() -> u64 {
    600
}

fn is_default_first_token_timeout(secs: &u64) -> bool {
    *secs == default_first_token_timeout()
}

impl ModelEntry {
    /// The longest one attempt of a call may take: `timeout_secs`, plus the time to the first
    /// byte when streaming.
    pub fn attempt_timeout(&self) -> Duration {
        let first = if self.stream {
            self.first_token_timeout_secs
        } else {
            0
        };
        Duration::from_secs(self.timeout_secs.saturating_add(first))
    }

    /// The catalog entity.
    pub fn catalog_model(&self) -> Result<Model, String> {
        Ok(Model {
            id: ModelId::new(&self.id).map_err(|e| e.to_string())?,
            provider: self.provider.clone(),
            provider_model_id: self.model.clone(),
            name: self.name.clone().unwrap_or_else(|| self.id.clone()),
            prices: self.prices,
            active: true,
            tags: Vec::new(),
        })
    }

    /// Whether its calls can go through a batch interface: OpenAI-compatible servers and
    /// Anthropic always; Bedrock for Claude models with `batch_role_arn` and `batch_s3_uri`.
    pub fn can_batch(&self) -> bool {
        BATCH_PROVIDERS.contains(&self.provider.as_str())
            && (self.provider != "bedrock"
                || (self.batch_role_arn.is_some()
                    && self.batch_s3_uri.is_some()
                    && bedrock_batch_supported(&self.model)))
    }

    /// Where it is served, for messages and the cache namespace.
    pub fn endpoint(&self) -> String {
        match self.provider.as_str() {
            "bedrock" => format!(
                "bedrock {}",
                self.base_url
                    .as_deref()
                    .or(self.region.as_deref())
                    .unwrap_or("(default region)")
            ),
            "openai" => format!("openai {}", self.base_url.as_deref().unwrap_or("")),
            "anthropic" => format!(
                "anthropic {}",
                self.base_url.as_deref().unwrap_or(ANTHROPIC_API)
            ),
            other => other.to_owned(),
        }
    }
}

/// Every problem of a models file, found before any call is made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", crate::problem_list(&path.display().to_string(), problems))]
pub struct ModelsFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, one line each, naming the entry and the field.
    pub problems: Vec<String>,
}

/// One server of the file (`[[servers]]`): the limit its models share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The API root, as its models' `base_url` give it.
    pub base_url: String,
    /// Calls at once to the server, across all its models.
    pub concurrency: usize,
}

/// A checked models file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The models, in file order.
    pub models: Vec<ModelEntry>,
    /// The servers given limits of their own.
    pub servers: Vec<ServerEntry>,
}

/// The server whose limit `entry` shares: an OpenAI-compatible model's `base_url`.
fn server_of(entry: &ModelEntry) -> Option<String> {
    (entry.provider == "openai")
        .then(|| entry.base_url.as_deref().map(server_key))
        .flatten()
}

/// A server's address as its limit is keyed: without a trailing slash.
fn server_key(base_url: &str) -> String {
    base_url.trim_end_matches('/').to_owned()
}

/// Reads and checks a models file (`.toml`, else JSON), looking environment variables up with
/// `env`. Every problem of every entry is reported in one error.
pub fn load(
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ModelsFile, ModelsFileError> {
    let fail = |problems: Vec<String>| ModelsFileError {
        path: path.to_owned(),
        problems,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(vec![format!("cannot read it: {e}")]))?;
    let document: Value = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).map_err(|e| fail(vec![format!("not valid TOML: {e}")]))?
    } else {
        serde_json::from_str(&text).map_err(|e| fail(vec![format!("not valid JSON: {e}")]))?
    };
    // A file of comments only (as `socratic init` writes it) lists no model.
    let none = Vec::new();
    let entries = match document.get("models") {
        None if document.as_object().is_some_and(serde_json::Map::is_empty) => &none,
        Some(Value::Array(entries)) => entries,
        _ => {
            return Err(fail(vec![
                "expected a list of models under `models` ([[models]] in TOML)".to_owned(),
            ]));
        }
    };
    let mut problems = Vec::new();
    let mut models = Vec::new();
    let mut ids = BTreeSet::new();
    let builtin: BTreeSet<String> = SimulatedLlm::catalog()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    for (i, entry) in entries.iter().enumerate() {
        let label = match entry.get("id").and_then(Value::as_str) {
            Some(id) => format!("models[{i}] ({id})"),
            None => format!("models[{i}]"),
        };
        let mut missing = Vec::new();
        for field in ["id", "provider", "model", "prices"] {
            if entry.get(field).is_none() {
                missing.push(field);
            }
        }
        if !missing.is_empty() {
            for field in missing {
                problems.push(format!("{label}: missing field `{field}`"));
            }
            continue;
        }
        let parsed: ModelEntry = match serde_json::from_value(entry.clone()) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(format!("{label}: {e}"));
                continue;
            }
        };
        check(&parsed, &label, &env, &mut problems);
        if !ids.insert(parsed.id.clone()) {
            problems.push(format!("{label}: the id {} is used twice", parsed.id));
        }
        if builtin.contains(&parsed.id) && parsed.provider != "simulated" {
            problems.push(format!(
                "{label}: the id {} belongs to a built-in simulated model",
                parsed.id
            ));
        }
        models.push(parsed);
    }
    let servers = servers(&document, &models, &mut problems);
    if problems.is_empty() {
        Ok(ModelsFile {
            path: path.to_owned(),
            models,
            servers,
        })
    } else {
        Err(fail(problems))
    }
}

/// The `[[servers]]` entries, checked: each names the `base_url` of an OpenAI-compatible
/// model of the file, once, with a concurrency of at least 1.
fn servers(
    document: &Value,
    models: &[ModelEntry],
    problems: &mut Vec<String>,
) -> Vec<ServerEntry> {
    let entries = match document.get("servers") {
        None => return Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            problems.push(
                "expected a list of servers under `servers` ([[servers]] in TOML)".to_owned(),
            );
            return Vec::new();
        }
    };
    let served: BTreeSet<String> = models
        .iter()
        .filter(|m| m.provider == "openai")
        .filter_map(|m| m.base_url.as_deref().map(server_key))
        .collect();
    let mut seen = BTreeSet::new();
    let mut servers = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let label = format!("servers[{i}]");
        let server: ServerEntry = match serde_json::from_value(entry.clone()) {
            Ok(server) => server,
            Err(e) => {
                problems.push(format!("{label}: {e}"));
                continue;
            }
        };
        let key = server_key(&server.base_url);
        if !served.contains(&key) {
            problems.push(format!(
                "{label}: no openai model of the file has the base_url {}",
                server.base_url
            ));
        }
        if !seen.insert(key) {
            problems.push(format!(
                "{label}: the server {} is listed twice",
                server.base_url
            ));
        }
        if server.concurrency == 0 {
            problems.push(format!("{label}: concurrency must be at least 1"));
        }
        servers.push(server);
    }
    servers
}

/// Reads and checks a models file, looking its key variables up in this process's environment.
pub fn load_from_env(path: &Path) -> Result<ModelsFile, ModelsFileError> {
    load(path, |name| std::env::var(name).ok())
}

/// Whether Bedrock batch inference takes `model` (Claude models); never in a build without
/// Bedrock.
fn bedrock_batch_supported(model: &str) -> bool {
    #[cfg(feature = "bedrock")]
    {
        socratic_aws::batch_supported(model)
    }
    #[cfg(not(feature = "bedrock"))]
    {
        let _ = model;
        false
    }
}

/// The settings of Bedrock batch inference: only on Bedrock models, both or neither of the
/// role and the S3 location, and all of them for `batch = true`.
fn bedrock_batch_problems(entry: &ModelEntry, label: &str, problems: &mut Vec<String>) {
    let settings = [
        ("batch_role_arn", entry.batch_role_arn.is_some()),
        ("batch_s3_uri", entry.batch_s3_uri.is_some()),
        ("batch_min_records", entry.batch_min_records.is_some()),
    ];
    if entry.provider != "bedrock" {
        for (name, _) in settings.iter().filter(|(_, set)| *set) {
            problems.push(format!(
                "{label}: {name} is for provider \"bedrock\" (Bedrock batch inference)"
            ));
        }
        return;
    }
    let wanted = entry.batch || settings.iter().any(|(_, set)| *set);
    if !wanted {
        return;
    }
    for (name, set) in &settings[..2] {
        if !set {
            problems.push(format!(
                "{label}: Bedrock batch inference needs {name} (see docs/models.md, \"Bedrock batch inference\")"
            ));
        }
    }
    if let Some(uri) = &entry.batch_s3_uri
        && !uri
            .strip_prefix("s3://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    {
        problems.push(format!(
            "{label}: batch_s3_uri {uri:?} is not an s3://bucket/prefix URI"
        ));
    }
    if entry.batch_min_records == Some(0) {
        problems.push(format!("{label}: batch_min_records must be at least 1"));
    }
    if !bedrock_batch_supported(&entry.model) {
        problems.push(format!(
            "{label}: Bedrock batch inference takes Claude models (anthropic.claude-…); {} would run live at live prices",
            entry.model
        ));
    }
}

fn check(
    entry: &ModelEntry,
    label: &str,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    match entry.catalog_model() {
        Ok(model) => {
            if let Err(found) = model.validate() {
                for p in found.0 {
                    problems.push(format!("{label}: {}: {}", p.field, p.message));
                }
            }
        }
        Err(e) => problems.push(format!("{label}: id: {e}")),
    }
    if !PROVIDERS.contains(&entry.provider.as_str()) {
        problems.push(format!(
            "{label}: unknown provider {:?} (expected one of {})",
            entry.provider,
            PROVIDERS.join(", ")
        ));
    }
    if entry.provider == "openai" {
        match entry.base_url.as_deref() {
            None => problems.push(format!(
                "{label}: missing field `base_url` (the server's API root, e.g. http://localhost:11434/v1)"
            )),
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => problems
                .push(format!("{label}: base_url {url:?} is not an http:// or https:// URL")),
            Some(_) => {}
        }
    }
    if entry.stream && entry.provider != "openai" {
        problems.push(format!(
            "{label}: stream = true is for provider \"openai\" (OpenAI-compatible servers)"
        ));
    }
    if entry.batch && !BATCH_PROVIDERS.contains(&entry.provider.as_str()) {
        problems.push(format!(
            "{label}: batch = true needs provider \"openai\" (the OpenAI Batch API), \"anthropic\" (Message Batches) or \"bedrock\" (batch inference); {} batches are not supported, so its calls would be paid at live prices",
            entry.provider
        ));
    }
    bedrock_batch_problems(entry, label, problems);
    if entry.provider == "anthropic" {
        if cfg!(not(feature = "anthropic")) {
            problems.push(format!(
                "{label}: this build has no Anthropic client (build with the `anthropic` feature)"
            ));
        }
        if let Some(url) = entry.base_url.as_deref()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!(
                "{label}: base_url {url:?} is not an http:// or https:// URL"
            ));
        }
        if entry.api_key_env.is_none() && env(ANTHROPIC_KEY).is_none_or(|v| v.trim().is_empty()) {
            problems.push(format!(
                "{label}: the environment variable {ANTHROPIC_KEY} (the default api_key_env of provider anthropic) is not set"
            ));
        }
    }
    if entry.provider == "openai" && cfg!(not(feature = "openai")) {
        problems.push(format!(
            "{label}: this build has no OpenAI-compatible client (build with the `openai` feature)"
        ));
    }
    if entry.provider == "bedrock" && cfg!(not(feature = "bedrock")) {
        problems.push(format!(
            "{label}: this build has no Bedrock support (build with the `bedrock` feature)"
        ));
    }
    if let Some(variable) = &entry.api_key_env
        && env(variable).is_none_or(|v| v.trim().is_empty())
    {
        problems.push(format!(
            "{label}: the environment variable {variable} (api_key_env) is not set"
        ));
    }
    if entry.concurrency == Some(0) {
        problems.push(format!("{label}: concurrency must be at least 1"));
    }
    if entry.requests_per_minute == Some(0) {
        problems.push(format!("{label}: requests_per_minute must be at least 1"));
    }
    if entry.timeout_secs == 0 {
        problems.push(format!("{label}: timeout_secs must be at least 1"));
    }
}

/// How the clients of a benchmark are assembled.
#[derive(Clone)]
pub struct ClientOptions {
    /// Every call is charged to it.
    pub budget: Arc<Budget>,
    /// The response cache, if any, and what a miss does.
    pub cache: Option<(Arc<dyn BlobStore>, CacheMode)>,
    /// Calls at once for models that do not set their own.
    pub concurrency: usize,
    /// Retries of transient errors.
    pub retry: RetryPolicy,
    /// Where every call that misses the cache is recorded, if anywhere (the call ledger).
    pub recorder: Option<Arc<dyn CallRecorder>>,
    /// Never reach a provider: every model answers from the cache alone (a replay of a
    /// bundle, where no key need be set).
    pub offline: bool,
    /// Batch mode: the batcher, and whether every model that can be batched is (`run
    /// --batch`) or only those marked `batch = true`.
    pub batching: Option<Batching>,
}

/// How a benchmark batches ([`ClientOptions::batching`]).
#[derive(Clone, Debug)]
pub struct Batching {
    /// Gathers calls into batches and collects them.
    pub batcher: Arc<Batcher>,
    /// Batch every model whose provider has a batch interface, not only those marked
    /// `batch = true`.
    pub all: bool,
}

impl Batching {
    /// Whether `entry`'s calls go into batches.
    pub fn batches(&self, entry: &ModelEntry) -> bool {
        (self.all || entry.batch) && entry.can_batch()
    }
}

impl ClientOptions {
    /// Options for checking models outside a benchmark: no cap, no cache, no ledger, one call
    /// at a time.
    pub fn check_only() -> Self {
        Self {
            budget: Arc::new(Budget::unlimited()),
            cache: None,
            concurrency: 1,
            retry: RetryPolicy::default(),
            recorder: None,
            offline: false,
            batching: None,
        }
    }

    /// The client stack of one model: charged at `prices`, cached under `namespace` (not at
    /// all without one), `concurrency` calls at once (these options' default without one).
    pub fn stack(
        &self,
        prices: Prices,
        namespace: Option<String>,
        concurrency: Option<usize>,
    ) -> ClientStack {
        let mut stack = ClientStack::new()
            .prices(prices)
            .budget(Arc::clone(&self.budget))
            .retry(self.retry.clone())
            .concurrency(concurrency.unwrap_or(self.concurrency));
        if let (Some(namespace), Some((blobs, mode))) = (namespace, &self.cache) {
            stack = stack.cache(StackCache {
                blobs: Arc::clone(blobs),
                namespace,
                mode: *mode,
            });
        }
        if let Some(recorder) = &self.recorder {
            stack = stack.recorder(Arc::clone(recorder));
        }
        stack
    }
}

/// One model's clients: the full stack for the benchmark, and a lean one for the preflight.
pub struct ModelClients {
    /// Ledger → cache → concurrency limit → rate limit → retry → budget → provider.
    pub benchmark: Arc<dyn LlmClient>,
    /// Ledger → cache → budget → provider, without retries: a preflight failure should show
    /// at once.
    pub preflight: Arc<dyn LlmClient>,
}

impl ModelsFile {
    /// Calls at once to each server, across its models: its `[[servers]]` entry's, or the
    /// largest concurrency among its models (`default` for those without one).
    pub fn server_concurrency(&self, default: usize) -> std::collections::BTreeMap<String, usize> {
        let mut limits = std::collections::BTreeMap::new();
        for entry in &self.models {
            if let Some(key) = server_of(entry) {
                let n = entry.concurrency.unwrap_or(default).max(1);
                let limit = limits.entry(key).or_insert(n);
                *limit = (*limit).max(n);
            }
        }
        for server in &self.servers {
            limits.insert(server_key(&server.base_url), server.concurrency.max(1));
        }
        limits
    }

    fn server_slots(
        &self,
        default: usize,
    ) -> std::collections::BTreeMap<String, Arc<tokio::sync::Semaphore>> {
        self.server_concurrency(default)
            .into_iter()
            .map(|(key, n)| (key, Arc::new(tokio::sync::Semaphore::new(n))))
            .collect()
    }

    /// The catalog entities.
    pub fn catalog(&self) -> Vec<Model> {
        self.models
            .iter()
            .filter_map(|m| m.catalog_model().ok())
            .collect()
    }

    /// Builds every model's clients and adds them to `providers`, keyed by catalog id.
    pub async fn clients(
        &self,
        options: &ClientOptions,
        mut providers: Providers,
    ) -> Result<(Providers, Vec<(ModelEntry, ModelClients)>), Error> {
        let slots = self.server_slots(options.concurrency);
        let mut built = Vec::new();
        for entry in &self.models {
            let batched = options.batching.as_ref().is_some_and(|b| b.batches(entry));
            let (provider, batch_api) = if options.offline {
                (
                    Arc::new(Offline(entry.id.clone())) as Arc<dyn LlmClient>,
                    None,
                )
            } else if batched {
                with_batch_api(entry).await?
            } else {
                (provider_client(entry).await?, None)
            };
            let mut retry = options.retry.clone();
            retry.attempt_timeout = Some(entry.attempt_timeout());
            let stack = ClientOptions {
                retry,
                ..options.clone()
            }
            .stack(
                entry.prices,
                (entry.provider != "simulated").then(|| entry.endpoint()),
                entry.concurrency,
            )
            .requests_per_minute(entry.requests_per_minute);
            let stack = match server_of(entry).and_then(|key| slots.get(&key)) {
                Some(slots) => stack.server_slots(Arc::clone(slots)),
                None => stack,
            };
            let mut benchmark = stack.build(Arc::clone(&provider));
            if let Some(batching) = &options.batching {
                benchmark = batching.batcher.track(benchmark);
                if let Some(api) = batch_api {
                    // A round too small to batch runs live through the ordinary stack; the
                    // cache sits in front of the lane.
                    let live = stack.clone().without_cache().build(Arc::clone(&provider));
                    let lane = batching.batcher.lane(
                        entry.id.clone(),
                        entry.endpoint(),
                        api,
                        entry.prices,
                        live,
                    );
                    benchmark = stack.build_batched(lane);
                }
            }
            let clients = ModelClients {
                benchmark,
                preflight: stack.build_preflight(provider),
            };
            let id = ModelId::new(&entry.id)
                .map_err(|e| Error::Invalid(format!("model id {:?}: {e}", entry.id)))?;
            providers = providers.with_model(id, Arc::clone(&clients.benchmark));
            built.push((entry.clone(), clients));
        }
        Ok((providers, built))
    }
}

#[cfg(feature = "openai")]
pub(crate) fn openai_client(entry: &ModelEntry) -> Result<OpenAiLlm, Error> {
    OpenAiLlm::new(OpenAiConfig {
        api_key_env: entry.api_key_env.clone(),
        structured: entry.structured,
        token_limit_field: entry.token_limit_field,
        timeout: Duration::from_secs(entry.timeout_secs),
        stream: entry.stream,
        first_token_timeout: Duration::from_secs(entry.first_token_timeout_secs),
        ..OpenAiConfig::new(entry.base_url.clone().unwrap_or_default())
    })
    .with_context(|| format!("model {}", entry.id))
}

/// A model's client, and its provider's batch interface when it is batched.
type Provider = (Arc<dyn LlmClient>, Option<Arc<dyn BatchApi>>);

/// A batched model's client and its provider's batch interface.
async fn with_batch_api(entry: &ModelEntry) -> Result<Provider, Error> {
    match entry.provider.as_str() {
        #[cfg(feature = "openai")]
        "openai" => {
            let llm = openai_client(entry)?;
            let api = socratic_openai::OpenAiBatchApi::new(llm.clone())
                .with_context(|| format!("model {}", entry.id))?;
            Ok((Arc::new(llm), Some(Arc::new(api))))
        }
        #[cfg(feature = "anthropic")]
        "anthropic" => {
            let llm = anthropic_client(entry)?;
            let api = socratic_anthropic::AnthropicBatchApi::new(llm.clone());
            Ok((Arc::new(llm), Some(Arc::new(api))))
        }
        #[cfg(feature = "bedrock")]
        "bedrock" => {
            let sdk = socratic_aws::sdk_config(&bedrock_settings(entry)).await;
            let (Some(role), Some(uri)) = (&entry.batch_role_arn, &entry.batch_s3_uri) else {
                return Err(Error::Invalid(format!(
                    "model {}: Bedrock batch inference needs batch_role_arn and batch_s3_uri",
                    entry.id
                )));
            };
            let mut config = socratic_aws::BedrockBatchConfig::new(role.clone(), uri)
                .map_err(|e| Error::Invalid(format!("model {}: batch_s3_uri: {e}", entry.id)))?;
            if let Some(min) = entry.batch_min_records {
                config.min_records = min;
            }
            // The records' bucket is reached at S3's own endpoint, not Bedrock's override.
            let s3 = socratic_aws::sdk_config(&socratic_aws::AwsSettings {
                region: entry.region.clone(),
                ..socratic_aws::AwsSettings::default()
            })
            .await;
            Ok((
                Arc::new(socratic_aws::BedrockLlm::from_conf(&sdk)),
                Some(Arc::new(socratic_aws::BedrockBatchApi::from_conf(
                    &sdk, &s3, config,
                ))),
            ))
        }
        other => Err(Error::Invalid(format!(
            "model {}: provider {other:?} has no batch interface in this build",
            entry.id
        ))),
    }
}

/// The AWS settings of a Bedrock model: its region and endpoint override.
#[cfg(feature = "bedrock")]
fn bedrock_settings(entry: &ModelEntry) -> socratic_aws::AwsSettings {
    socratic_aws::AwsSettings {
        region: entry.region.clone(),
        endpoint_url: entry.base_url.clone(),
        ..socratic_aws::AwsSettings::default()
    }
}

/// The batch interface of `entry`'s provider, if it has one (for `socratic batches --cancel`).
pub(crate) async fn batch_api(entry: &ModelEntry) -> Result<Option<Arc<dyn BatchApi>>, Error> {
    if !entry.can_batch() {
        return Ok(None);
    }
    Ok(with_batch_api(entry).await?.1)
}

#[cfg(feature = "anthropic")]
pub(crate) fn anthropic_client(
    entry: &ModelEntry,
) -> Result<socratic_anthropic::AnthropicLlm, Error> {
    socratic_anthropic::AnthropicLlm::new(socratic_anthropic::AnthropicConfig {
        base_url: entry
            .base_url
            .clone()
            .unwrap_or_else(|| ANTHROPIC_API.to_owned()),
        api_key_env: entry
            .api_key_env
            .clone()
            .unwrap_or_else(|| ANTHROPIC_KEY.to_owned()),
        timeout: Duration::from_secs(entry.timeout_secs),
        ..socratic_anthropic::AnthropicConfig::new()
    })
    .with_context(|| format!("model {}", entry.id))
}

async fn provider_client(entry: &ModelEntry) -> Result<Arc<dyn LlmClient>, Error> {
    Ok(match entry.provider.as_str() {
        #[cfg(feature = "openai")]
        "openai" => Arc::new(openai_client(entry)?),
        #[cfg(feature = "anthropic")]
        "anthropic" => Arc::new(anthropic_client(entry)?),
        #[cfg(feature = "bedrock")]
        "bedrock" => Arc::new(socratic_aws::BedrockLlm::from_conf(
            &socratic_aws::sdk_config(&bedrock_settings(entry)).await,
        )),
        "simulated" => Arc::new(SimulatedLlm::new()),
        other => {
            return Err(Error::Invalid(format!(
                "model {}: unknown provider {other:?}",
                entry.id
            )));
        }
    })
}

/// The provider of a model in a replay: never called, as the cache answers first; a request
/// it does get is a miss, refused.
struct Offline(String);

#[async_trait::async_trait]
impl LlmClient for Offline {
    async fn converse(
        &self,
        _request: &ConverseRequest,
    ) -> Result<socratic_core::llm::ConverseResponse, socratic_core::llm::LlmError> {
        Err(socratic_core::llm::LlmError::Validation {
            message: format!("model {} is not called in a replay", self.0),
        })
    }
}

/// Sends every model one minimal request, all at once, so a wrong key, base URL or model id
/// fails in seconds, naming the model. Returns one line per model that failed.
pub async fn preflight(models: &[(ModelEntry, ModelClients)]) -> Vec<String> {
    let checks = models.iter().map(|(entry, clients)| async move {
        let mut request = ConverseRequest::new(
            entry.model.clone(),
            Role::Tutor,
            vec![Message::user("Reply with the single word OK.")],
        );
        request.max_tokens = 16;
        match clients.preflight.converse(&request).await {
            Ok(_) => None,
            Err(error) => Some(format!(
                "model {} ({}, model id {}): {error}",
                entry.id,
                entry.endpoint(),
                entry.model
            )),
        }
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Sends every model of `file` one request, outside any benchmark (no cap, no cache, no
/// ledger): one line per model that failed.
pub async fn check_models(file: &ModelsFile) -> Result<Vec<String>, Error> {
    let (_, clients) = file
        .clients(&ClientOptions::check_only(), Providers::new())
        .await?;
    Ok(preflight(&clients).await)
}
