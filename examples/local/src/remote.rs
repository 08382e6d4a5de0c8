//! `push`: a results directory into a deployed stack's table and bucket.

use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use socratic_core::id::ManifestId;
use socratic_local::push::{self, PushOptions, PushProgress, StackData};

use crate::Status;
use crate::output::outln;

pub(crate) async fn push(
    out: &Path,
    manifest: Option<ManifestId>,
    data: StackData,
    dry_run: bool,
) -> Status {
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
