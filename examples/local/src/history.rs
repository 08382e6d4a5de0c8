//! `list`, `show`, `compare`, `report` and `calibrate`: what a results directory holds.

use std::path::Path;
use std::process::ExitCode;

use socratic_core::id::{ManifestId, RunId};
use socratic_core::report;
use socratic_local::history::History;
use socratic_local::text;

use crate::Status;

pub(crate) async fn list(out: &Path) -> Status {
    let lines = History::open(out)?.manifests().await?;
    if lines.is_empty() {
        println!("{} holds no benchmark yet", out.display());
    } else {
        print!("{}", text::list_table(&lines));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn show(out: &Path, run: &RunId) -> Status {
    let record = History::open(out)?.run(run).await?;
    print!("{}", text::transcript(&record));
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn compare(out: &Path, a: ManifestId, b: ManifestId) -> Status {
    let compared = History::open(out)?.compare(a, b).await?;
    print!("{}", text::comparison_table(&compared.comparison));
    println!("comparison: {}", compared.page.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn report(out: &Path, manifest: Option<ManifestId>) -> Status {
    let rendered = socratic_local::rerender(out, manifest).await?;
    println!("{}", report::leaderboard_text(&rendered.summary));
    println!("report: {}", rendered.report.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn calibrate(
    out: &Path,
    labels: Option<&Path>,
    manifest: Option<ManifestId>,
) -> Status {
    let calibrated = socratic_local::calibrate(out, labels, manifest).await?;
    print!("{}", text::calibration_table(&calibrated.calibration));
    println!("written: {}", calibrated.file.display());
    Ok(ExitCode::SUCCESS)
}
