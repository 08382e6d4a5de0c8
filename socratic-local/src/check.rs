//! A benchmark directory checked without calling a model: its catalog, models file and
//! manifest, then the manifest planned against them in memory.

use std::path::Path;
use std::sync::Arc;

use socratic_core::blob::BlobStore;
use socratic_core::entity::{ManifestRequest, from_json};
use socratic_core::pipeline::{PipelineConfig, PlanError, Providers, plan};
use socratic_memory::{LocalPipeline, MemoryBlobStore};
use socratic_sim::SimulatedLlm;
use socratic_sim::simulated::PROVIDER;

use crate::catalog::{self, CatalogError};
use crate::error::{Context, Error};
use crate::models::{self, ClientOptions};

/// What a benchmark directory holds, once it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    /// Rubrics.
    pub rubrics: usize,
    /// Prompts.
    pub prompts: usize,
    /// Scenarios.
    pub scenarios: usize,
    /// Runs its manifest plans.
    pub runs: usize,
}

/// Checks the benchmark directory `dir` (as `socratic init` makes it). Every problem of every
/// file is reported at once, as [`Error::Catalog`], each naming its file and field.
pub async fn check(dir: &Path) -> Result<CheckReport, Error> {
    let mut problems = Vec::new();
    let loaded = catalog::load(dir)
        .map_err(|e| problems.extend(e.problems))
        .ok();
    let models_path = dir.join("models.toml");
    let models_file = if models_path.is_file() {
        models::load_from_env(&models_path)
            .map_err(|e| problems.extend(e.problems.iter().map(|p| format!("models.toml: {p}"))))
            .ok()
    } else {
        None
    };
    let request = match std::fs::read_to_string(dir.join("manifest.json")) {
        Err(e) => {
            problems.push(format!("manifest.json: cannot read it: {e}"));
            None
        }
        Ok(text) => from_json::<ManifestRequest>("manifest", &text)
            .map_err(|e| problems.extend(catalog::describe("manifest.json", e)))
            .ok(),
    };
    if let (Some(loaded), Some(request), true) = (&loaded, &request, problems.is_empty()) {
        let mut providers = Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new()));
        let mut catalog_models = SimulatedLlm::catalog();
        if let Some(file) = &models_file {
            providers = file
                .clients(&ClientOptions::check_only(), providers)
                .await?
                .0;
            catalog_models.extend(file.catalog());
        }
        let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
        let pipeline = LocalPipeline::new(blobs, providers, PipelineConfig::default());
        pipeline
            .install_catalog(&catalog_models)
            .await
            .context("installing the catalog")?;
        loaded
            .install(&pipeline.ports.repository)
            .await
            .context("installing the catalog directory")?;
        match plan(&pipeline.ports, request).await {
            Ok(planned) => {
                return Ok(CheckReport {
                    rubrics: loaded.rubrics.len(),
                    prompts: loaded.prompts.len(),
                    scenarios: loaded.scenarios.len(),
                    runs: planned.runs.len(),
                });
            }
            Err(PlanError::Invalid(found)) => problems.extend(
                found
                    .0
                    .iter()
                    .map(|p| format!("manifest.json: {}: {}", p.field, p.message)),
            ),
            Err(e) => return Err(e).context("planning the manifest"),
        }
    }
    Err(Error::Catalog(CatalogError {
        dir: dir.to_owned(),
        problems,
    }))
}
