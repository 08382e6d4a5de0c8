//! `list`, `show`, `compare`, `report`, `label` and `calibrate`: what a results directory
//! holds.

use std::path::Path;
use std::process::ExitCode;

use socratic_core::id::{ManifestId, RunId};
use socratic_core::report;
use socratic_local::history::History;
use socratic_local::text;
use socratic_local::{LabelOptions, LabelServer};

use crate::output::{out, outln};
use crate::{LabelArgs, Status};

pub(crate) async fn list(out: &Path) -> Status {
    let lines = History::open(out)?.manifests().await?;
    if lines.is_empty() {
        outln!("{} holds no benchmark yet", out.display());
    } else {
        out!("{}", text::list_table(&lines));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn batches(
    out: &Path,
    manifest: Option<ManifestId>,
    cancel: bool,
    models: Option<&Path>,
) -> Status {
    let manifest = manifest.map(|m| m.to_string());
    if cancel {
        let models = socratic_local::models::load_from_env(models.unwrap_or(Path::new("")))?;
        let cancelled = socratic_local::batches::cancel(out, manifest.as_deref(), &models).await?;
        if cancelled.is_empty() {
            outln!("no open batch to cancel");
        }
        let mut refused = false;
        for c in &cancelled {
            let id = c.line.record.provider_id.as_deref().unwrap_or("-");
            match &c.error {
                None => outln!("cancelling {id} ({})", c.line.record.model),
                Some(error) => {
                    refused = true;
                    eprintln!("cannot cancel {id} ({}): {error}", c.line.record.model);
                }
            }
        }
        return Ok(if refused {
            ExitCode::from(crate::EXIT_ERROR)
        } else {
            ExitCode::SUCCESS
        });
    }
    let lines = socratic_local::batches::list(out, manifest.as_deref()).await?;
    if lines.is_empty() {
        outln!("{} holds no batch", out.display());
    } else {
        out!("{}", text::batch_table(&lines));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn show(out: &Path, run: &RunId, json: bool) -> Status {
    let history = History::open(out)?;
    if json {
        let document = history.curated_run(run).await?;
        outln!("{}", String::from_utf8_lossy(&document));
    } else {
        out!("{}", text::transcript(&history.run(run).await?));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn compare(out: &Path, a: ManifestId, b: ManifestId) -> Status {
    let compared = History::open(out)?.compare(a, b).await?;
    out!("{}", text::comparison_table(&compared.comparison));
    outln!("comparison: {}", compared.page.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn report(out: &Path, manifest: Option<ManifestId>) -> Status {
    let rendered = socratic_local::rerender(out, manifest).await?;
    outln!("{}", report::leaderboard_text(&rendered.summary));
    outln!("report: {}", rendered.report.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn calibrate(
    out: &Path,
    labels: Option<&Path>,
    manifest: Option<ManifestId>,
) -> Status {
    let calibrated = socratic_local::calibrate(out, labels, manifest).await?;
    out!("{}", text::calibration_table(&calibrated.calibration));
    outln!("written: {}", calibrated.file.display());
    outln!("report: {}", calibrated.report.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn label(args: LabelArgs) -> Status {
    if let Some(file) = &args.export {
        let count = socratic_local::export_labels(&args.out, args.manifest_id, file).await?;
        outln!("{count} label(s) written to {}", file.display());
        return Ok(ExitCode::SUCCESS);
    }
    let server = LabelServer::open(LabelOptions {
        out: args.out.clone(),
        manifest: args.manifest_id,
        turns: args.turns,
        seed: args.seed,
        rater: args.rater,
        port: args.port,
    })
    .await?;
    if let Some(port) = server.taken_port() {
        outln!(
            "port {port} is in use; serving on {} instead",
            server.address().port()
        );
    }
    outln!(
        "manifest {}: {} turn(s) sampled with seed {} (another rater gets the same turns with --seed {})",
        server.manifest(),
        server.turns(),
        server.seed(),
        server.seed()
    );
    outln!("open {}", server.url());
    outln!("every score is saved as it is chosen; press Ctrl-C to stop");
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    outln!(
        "stopped; `socratic calibrate --out {}` measures the judges against the labels",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
