//! A finished benchmark's report written again from its summary, with its settings and runs
//! from the results directory's database when it has them.

use std::path::{Path, PathBuf};

use socratic_core::calibration::{Calibration, stored_calibration};
use socratic_core::defaults::Defaults;
use socratic_core::entity::{Manifest, ManifestSummary, Rubric};
use socratic_core::id::ManifestId;
use socratic_core::report;

use crate::error::{Context, Error};
use crate::history::History;

/// A report written again.
#[derive(Debug, Clone, PartialEq)]
pub struct Rerendered {
    /// The manifest's summary.
    pub summary: ManifestSummary,
    /// `report.html` at the top of the results directory.
    pub report: PathBuf,
}

/// Renders `report.html` and `leaderboard.csv` of manifest `id` (by default the newest
/// finished) again from its `summary.json`, into its folder under `curated/manifests/` and
/// the top of the results directory `out`, whose `summary.json` becomes its.
pub async fn rerender(out: &Path, id: Option<ManifestId>) -> Result<Rerendered, Error> {
    render(out, id, true).await
}

/// Renders manifest `id`'s report again into its folder, and at the top of `out` too when
/// `top` is set or the top already shows that manifest.
pub(crate) async fn render(
    out: &Path,
    id: Option<ManifestId>,
    top: bool,
) -> Result<Rerendered, Error> {
    let manifests = out.join("curated").join("manifests");
    let id = match id {
        Some(id) => id.to_string(),
        None => newest_summary(&manifests)?.ok_or_else(|| {
            Error::NotFound(format!("{} holds no finished manifest", out.display()))
        })?,
    };
    let dir = manifests.join(&id);
    let path = dir.join("summary.json");
    let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
    let summary: ManifestSummary =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let html = match details(out, &summary).await? {
        Some(details) => {
            let mut page = report::HtmlReport::new(&summary, &details.rubric)
                .manifest(&details.manifest)
                .runs(&details.runs);
            if let Some(calibration) = &details.calibration {
                page = page.calibration(calibration);
            }
            page.render()
        }
        None => {
            let defaults = Defaults::load().context("loading the embedded catalog")?;
            if defaults.rubric.id != summary.rubric {
                return Err(Error::Invalid(format!(
                    "manifest {id} was scored against rubric {}, which is not in the built-in catalog and {} has no database",
                    summary.rubric,
                    out.display()
                )));
            }
            report::report_html(&summary, &defaults.rubric)
        }
    };
    let csv = report::leaderboard_csv(&summary);
    let top = top || top_manifest(out) == Some(summary.manifest);
    for (name, text) in [("report.html", &html), ("leaderboard.csv", &csv)] {
        let file = dir.join(name);
        std::fs::write(&file, text).map_err(Error::io(&file))?;
    }
    let report = if top {
        for name in crate::benchmark::REPORT_FILES {
            crate::publish(&dir.join(name), &out.join(name))?;
        }
        out.join("report.html")
    } else {
        dir.join("report.html")
    };
    Ok(Rerendered { summary, report })
}

/// The manifest whose summary is at the top of the results directory, if any.
fn top_manifest(out: &Path) -> Option<ManifestId> {
    let bytes = std::fs::read(out.join("summary.json")).ok()?;
    serde_json::from_slice::<ManifestSummary>(&bytes)
        .ok()
        .map(|s| s.manifest)
}

/// The newest manifest folder holding a `summary.json`.
fn newest_summary(manifests: &Path) -> Result<Option<String>, Error> {
    let mut ids: Vec<String> = std::fs::read_dir(manifests)
        .map_err(Error::io(manifests))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("summary.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids.pop())
}

/// What the report shows beside the summary, from the results directory's database.
struct Details {
    manifest: Manifest,
    rubric: Rubric,
    runs: report::ReportRuns,
    calibration: Option<Calibration>,
}

/// The manifest, its rubric, runs and calibration, for the report, from the results
/// directory's database and files; `None` when the directory has no database (the report then
/// shows the summary only).
async fn details(out: &Path, summary: &ManifestSummary) -> Result<Option<Details>, Error> {
    if !out.join(socratic_sqlite::DATABASE_FILE).is_file() {
        return Ok(None);
    }
    let history = History::open(out)?;
    let repository = history.repository();
    let manifest = repository
        .get::<Manifest>(&socratic_core::keys::manifest(&summary.manifest))
        .await
        .with_context(|| format!("reading manifest {}", summary.manifest))?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "manifest {} is not in {}",
                summary.manifest,
                out.display()
            ))
        })?
        .value;
    let rubric = repository
        .require_catalog::<Rubric>(&manifest.request.rubric)
        .await
        .with_context(|| format!("reading rubric {}", manifest.request.rubric))?;
    let blobs = socratic_sqlite::ResultsBlobs::read(out)?;
    let runs = socratic_core::pipeline::report_runs(repository, &blobs, &manifest)
        .await
        .with_context(|| format!("reading the runs of manifest {}", manifest.id))?;
    let calibration = stored_calibration(repository, &manifest.id)
        .await
        .with_context(|| format!("reading the labels of manifest {}", manifest.id))?;
    Ok(Some(Details {
        manifest,
        rubric,
        runs,
        calibration,
    }))
}
