//! `push`, `run --remote` and `pull`: local results up to a deployed stack, and benchmarks run
//! by a deployed admin API down into a local results directory.

use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use socratic_core::id::ManifestId;

use crate::Status;
use crate::output::outln;

#[cfg(feature = "aws")]
pub(crate) async fn push(
    out: &Path,
    manifest: Option<ManifestId>,
    data: socratic_local::push::StackData,
    dry_run: bool,
) -> Status {
    use socratic_local::push::{self, PushOptions, PushProgress};
    let target = push::aws_target(&data).await?;
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} runs {msg}") {
        bar.set_style(style);
    }
    let progress = |step: PushProgress| match step {
        PushProgress::Manifest { id, runs } => {
            bar.suspend(|| eprintln!("pushing benchmark {id}: {runs} runs"));
            bar.set_length(runs as u64);
            bar.set_position(0);
        }
        PushProgress::Runs { done, .. } => bar.set_position(done as u64),
    };
    let options = PushOptions { manifest, dry_run };
    let pushed = push::push(out, &target, &options, &progress).await;
    bar.finish_and_clear();
    let pushed = pushed?;
    let benchmarks = match pushed.manifests.len() {
        1 => "1 benchmark".to_owned(),
        n => format!("{n} benchmarks"),
    };
    if dry_run {
        outln!(
            "dry run: {benchmarks} ({} runs) would write {} items and {} blobs to {}; {} items and {} blobs are there already; no conflict",
            pushed.runs,
            pushed.items_created,
            pushed.blobs_created,
            target.name,
            pushed.items_unchanged,
            pushed.blobs_unchanged
        );
    } else if pushed.is_noop() {
        outln!(
            "{} already holds {benchmarks} ({} runs): nothing to do",
            target.name,
            pushed.runs
        );
    } else {
        outln!(
            "pushed {benchmarks} ({} runs) to {}: {} items and {} blobs written, {} items and {} blobs there already",
            pushed.runs,
            target.name,
            pushed.items_created,
            pushed.blobs_created,
            pushed.items_unchanged,
            pushed.blobs_unchanged
        );
    }
    for id in &pushed.manifests {
        outln!("manifest {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A bar of runs finished, drawn on standard error when it is a terminal.
fn runs_bar(quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `socratic run --remote API_URL`: the benchmark sent to a deployed admin API, followed to
/// its summary, and pulled into `--out`.
#[cfg(feature = "remote")]
pub(crate) async fn run(args: crate::RunArgs, url: &str) -> Status {
    use socratic_local::remote::{self, RemoteApi};
    let api = RemoteApi::from_env(url)?;
    let (out, quiet) = (args.out.clone(), args.quiet);
    let every = std::time::Duration::from_secs_f64(args.poll_seconds.max(0.1));
    let submitted = remote::submit(&api, args.options(None)).await?;
    outln!(
        "{} manifest {} at {url}: {} runs{}",
        if submitted.created {
            "submitted"
        } else {
            "found the same"
        },
        submitted.manifest,
        submitted.runs,
        match submitted.catalog_sent {
            0 => String::new(),
            n => format!(", {n} catalog entities sent"),
        }
    );
    let bar = runs_bar(quiet);
    let seen = |p: &remote::RemoteProgress| {
        bar.set_length(p.runs);
        bar.set_position(p.finished);
    };
    let followed = remote::follow(&api, &submitted.manifest, every, &seen).await;
    bar.finish_and_clear();
    followed?;
    pulled(remote::pull(&api, &submitted.manifest, &out).await?)
}

/// `socratic pull MANIFEST_ID --remote API_URL`.
#[cfg(feature = "remote")]
pub(crate) async fn pull(id: &ManifestId, url: &str, out: &Path) -> Status {
    use socratic_local::remote::{self, RemoteApi};
    let api = RemoteApi::from_env(url)?;
    pulled(remote::pull(&api, id, out).await?)
}

#[cfg(feature = "remote")]
fn pulled(pulled: socratic_local::remote::Pulled) -> Status {
    outln!("pulled manifest {}: {} runs", pulled.manifest, pulled.runs);
    outln!("  report:      {}", pulled.report.display());
    Ok(ExitCode::SUCCESS)
}
