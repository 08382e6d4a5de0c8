//! `socratic batches`: the batches a results directory's benchmarks submitted to providers'
//! batch interfaces, and cancelling those still running.

use std::path::Path;
use std::sync::Arc;

use socratic_core::llm::{BatchApi, BatchRecord};
use socratic_sqlite::{BatchRecords, CallLedger, ResultsDir};

use crate::error::{Context, Error};
use crate::models::ModelsFile;

/// One batch with the benchmark it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLine {
    /// The manifest whose calls it holds (`None` before one was planned).
    pub manifest: Option<String>,
    /// The batch.
    pub record: BatchRecord,
}

/// The batches of the results directory `dir`, oldest first; only `manifest`'s with one.
/// Read without the directory's lock: a benchmark may be running there.
pub async fn list(dir: &Path, manifest: Option<&str>) -> Result<Vec<BatchLine>, Error> {
    let filed = records(dir)?
        .filed(manifest)
        .await
        .with_context(|| format!("reading the batches of {}", dir.display()))?;
    Ok(filed
        .into_iter()
        .map(|(manifest, record)| BatchLine { manifest, record })
        .collect())
}

/// What cancelling one batch came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    /// The batch.
    pub line: BatchLine,
    /// The provider's refusal, if it refused.
    pub error: Option<String>,
}

/// Asks the providers to cancel the open batches of `dir` (only `manifest`'s with one), each
/// through its model's entry in `models`. What a batch answered before it stopped is
/// collected by the next `run`, which sends the rest again.
pub async fn cancel(
    dir: &Path,
    manifest: Option<&str>,
    models: &ModelsFile,
) -> Result<Vec<Cancelled>, Error> {
    let mut done = Vec::new();
    for line in list(dir, manifest).await? {
        let Some(provider_id) = line
            .record
            .provider_id
            .clone()
            .filter(|_| line.record.state.is_open())
        else {
            continue;
        };
        let error = match api(models, &line.record.model).await? {
            Some(api) => api.cancel(&provider_id).await.err().map(|e| e.to_string()),
            None => Some(format!(
                "model {} is not a batched model of {}",
                line.record.model,
                models.path.display()
            )),
        };
        done.push(Cancelled { line, error });
    }
    Ok(done)
}

fn records(dir: &Path) -> Result<BatchRecords, Error> {
    let db = ResultsDir::read(dir)?;
    Ok(BatchRecords::new(&CallLedger::new(&db)))
}

/// The batch interface of `model` in `models`, if it has one.
async fn api(models: &ModelsFile, model: &str) -> Result<Option<Arc<dyn BatchApi>>, Error> {
    match models.models.iter().find(|e| e.id == model) {
        Some(entry) => crate::models::batch_api(entry).await,
        None => Ok(None),
    }
}
