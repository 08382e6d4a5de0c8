//! The admin API and the pipeline's workers in one process on loopback: `POST /manifests`, then
//! poll `GET /runs` or `GET /manifests/{id}`. By default on the simulated models, with its data
//! in the SQLite database and blob files of `--data` (`server-data`), so it survives a restart
//! and resumes unfinished work; `--memory` keeps everything in memory instead. With `--aws`,
//! on the table, bucket and queues named in the environment (see
//! `socratic_aws::AwsSettings`; run-judged events go to `SOCRATIC_EVENTS_QUEUE_URL`), with
//! Bedrock models (provider `bedrock`) as well as the simulated ones.
//!
//! ```sh
//! SOCRATIC_API_KEY=dev-key cargo run -p socratic-server
//! curl -s -H 'x-api-key: dev-key' -d @examples/local/manifest.json localhost:8080/manifests
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use clap::Parser;
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::assembly::Assembly;
use socratic_core::blob::BlobStore;
use socratic_core::defaults::install_catalog;
use socratic_core::llm::{ClientStack, RetryPolicy};
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::runner::{Runner, RunnerConfig};
use socratic_memory::{MemoryBackend, MemoryBlobStore};
use socratic_sim::SimulatedLlm;
use socratic_sim::simulated::PROVIDER;
use socratic_sqlite::ResultsDir;

/// Serve the admin API with local workers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; loopback by default. Port 0 picks a free port; the address
    /// listened on is printed.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The API key clients must send in `x-api-key`; a random one is made and printed if unset.
    #[arg(long, env = "SOCRATIC_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Workers per pipeline stage.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// The directory holding the server's database (`socratic.db`) and blob files; one
    /// process at a time.
    #[arg(long, default_value = "server-data")]
    data: PathBuf,
    /// Keep everything in memory: nothing survives the process.
    #[arg(long, conflicts_with = "aws")]
    memory: bool,
    /// Use the AWS resources named in the environment instead of local backends.
    #[arg(long)]
    aws: bool,
}

/// The ports, a runner, and the backend they run on, which holds the data directory's lock
/// (SQLite) until it is dropped: on SQLite, memory or AWS.
async fn assemble(args: &Args) -> anyhow::Result<(Ports, Runner, Option<Box<dyn Assembly>>)> {
    // Every model client is layered the same way: retries of transient errors, and at most
    // `--workers` calls at once per model.
    let stack = ClientStack::new()
        .retry(RetryPolicy::default())
        .concurrency(args.workers);
    let simulated = stack.build(Arc::new(SimulatedLlm::new()));
    if !args.aws {
        let (backend, blobs): (Box<dyn Assembly>, Arc<dyn BlobStore>) = if args.memory {
            (
                Box::new(MemoryBackend::new()),
                Arc::new(MemoryBlobStore::new()),
            )
        } else {
            let results = ResultsDir::acquire(&args.data)?;
            let blobs = results.blobs()?;
            (Box::new(results), Arc::new(blobs))
        };
        let providers = Providers::new().with(PROVIDER, simulated);
        let ports = backend.ports(blobs, providers, PipelineConfig::default());
        install_catalog(&ports.repository, &SimulatedLlm::catalog())
            .await
            .context("installing the catalog")?;
        // This process holds the directory, so whatever a killed server had in hand is free.
        let recovered = backend.recover().await?;
        tracing::info!(data = %args.data.display(), recovered, memory = args.memory, "opened the server's data");
        let runner = backend.runner(ports.clone(), args.workers, RunnerConfig::default());
        return Ok((ports, runner, Some(backend)));
    }
    let mut settings = socratic_aws::AwsSettings::from_env();
    // Workers here consume run-judged events from SQS, not from EventBridge.
    settings.event_bus = None;
    let sdk = socratic_aws::sdk_config(&settings).await;
    let bedrock = stack.build(Arc::new(socratic_aws::BedrockLlm::from_conf(&sdk)));
    let providers = Providers::new()
        .with(PROVIDER, simulated)
        .with("bedrock", bedrock);
    let ports = socratic_aws::lambda::ports_from_settings(
        &settings,
        &sdk,
        providers,
        PipelineConfig::default(),
    )?;
    let [dialogue, judge, events] = socratic_aws::lambda::sqs_consumers(&settings, &sdk)?;
    let runner = Runner::builder(ports.clone())
        .stage_lanes(dialogue, judge, events, args.workers)
        .build();
    Ok((ports, runner, None))
}

/// Checks the key first, so a caller without it makes the server read nothing; then reads the
/// body up to the API's limit, answering 413 past it and 400 when the body cannot be read.
async fn serve(State(api): State<Arc<AdminApi>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(rejection) = api.check_key(&parts.headers) {
        return to_axum(rejection);
    }
    let limit = api.max_body_bytes();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|size| *size > limit) {
        return to_axum(api.body_too_large(Some(size)));
    }
    let bytes = match to_bytes(body, limit).await {
        Ok(bytes) => bytes.to_vec(),
        Err(error) => {
            let over_limit = error
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return to_axum(if over_limit {
                api.body_too_large(None)
            } else {
                AdminApi::bad_request("the request body could not be read")
            });
        }
    };
    to_axum(api.handle(http::Request::from_parts(parts, bytes)).await)
}

fn to_axum(response: http::Response<Vec<u8>>) -> Response {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::from(body))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let api_key = args.api_key.clone().unwrap_or_else(|| {
        let key = ulid::Ulid::new().to_string();
        tracing::info!(%key, "no SOCRATIC_API_KEY set; generated an API key for this process");
        key
    });
    // A key set but empty would let an empty header in: refuse to start instead.
    AdminApi::check_api_key(&api_key).context("--api-key / SOCRATIC_API_KEY")?;

    // `_backend` holds the data directory's lock until the server stops.
    let (ports, runner, _backend) = assemble(&args).await?;
    let api = Arc::new(AdminApi::new(ports, ApiConfig::new(api_key)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(async move {
        runner
            .run_until(async {
                let _ = stopped.await;
            })
            .await;
    });

    let app = axum::Router::new().fallback(serve).with_state(api);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    // The one line on standard output: where it listens (`--listen 127.0.0.1:0` picks a port).
    #[allow(clippy::print_stdout)]
    {
        println!("listening on {address}");
    }
    tracing::info!(%address, "serving the admin API");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let _ = stop.send(());
    workers.await?;
    Ok(())
}
