//! The admin API and the pipeline's workers in one process on loopback, on memory backends and
//! the simulated models: `POST /manifests`, then poll `GET /runs` or `GET /manifests/{id}`.
//!
//! ```sh
//! SOCRATIC_API_KEY=dev-key cargo run -p socratic-server
//! curl -s -H 'x-api-key: dev-key' -d @examples/local/manifest.json localhost:8080/manifests
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use clap::Parser;
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::blob::BlobStore;
use socratic_core::pipeline::{PipelineConfig, Providers};
use socratic_core::runner::RunnerConfig;
use socratic_memory::simulated::PROVIDER;
use socratic_memory::{LocalPipeline, MemoryBlobStore, SimulatedLlm};

/// Serve the admin API with local workers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; loopback by default.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The API key clients must send in `x-api-key`; a random one is made and printed if unset.
    #[arg(long, env = "SOCRATIC_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Workers per pipeline stage.
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

async fn serve(State(api): State<Arc<AdminApi>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Read one byte past the API's limit, so it can answer 413 itself.
    let bytes = match to_bytes(body, 2 * 1024 * 1024).await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => vec![0; 2 * 1024 * 1024 + 1],
    };
    let response = api.handle(http::Request::from_parts(parts, bytes)).await;
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
    let api_key = args.api_key.unwrap_or_else(|| {
        let key = ulid::Ulid::new().to_string();
        tracing::info!(%key, "no SOCRATIC_API_KEY set; generated an API key for this process");
        key
    });

    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let providers = Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new()));
    let pipeline = LocalPipeline::new(blobs, providers, PipelineConfig::default());
    pipeline
        .install_catalog(&SimulatedLlm::catalog())
        .await
        .context("installing the catalog")?;
    let api = Arc::new(AdminApi::new(
        pipeline.ports.clone(),
        ApiConfig::new(api_key),
    ));

    let runner = pipeline.runner(args.workers, RunnerConfig::default());
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
    tracing::info!(address = %args.listen, "serving the admin API");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let _ = stop.send(());
    workers.await?;
    Ok(())
}
