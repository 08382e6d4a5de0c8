//! `export`, `import` and `replay`: one benchmark as one file, and its replay.

use std::path::Path;
use std::process::ExitCode;

use socratic_core::id::ManifestId;
use socratic_local::bundle;

use crate::output::outln;
use crate::{EXIT_FAILED_RUNS, Status};

pub(crate) async fn export(
    out: &Path,
    manifest: Option<ManifestId>,
    models: Option<&Path>,
    file: &Path,
) -> Status {
    let exported = bundle::export(out, manifest, models, file).await?;
    outln!(
        "exported manifest {}: {} runs, {} cached answers, {} bytes",
        exported.manifest,
        exported.runs,
        exported.answers,
        exported.bytes
    );
    outln!("bundle: {}", exported.file.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn import(file: &Path, out: &Path) -> Status {
    let imported = bundle::import(file, out).await?;
    if imported.new_files == 0 {
        outln!(
            "manifest {} is already in {}: nothing to do",
            imported.manifest,
            imported.out.display()
        );
    } else {
        outln!(
            "imported manifest {} ({} runs) into {}",
            imported.manifest,
            imported.runs,
            imported.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn replay(
    source: &Path,
    manifest: Option<ManifestId>,
    models: Option<&Path>,
    out: &Path,
    concurrency: usize,
) -> Status {
    let replayed = bundle::replay(source, manifest, models, out, concurrency).await?;
    outln!(
        "replayed manifest {}: {} runs, {} model calls",
        replayed.manifest,
        replayed.runs,
        replayed.calls
    );
    for (name, same) in &replayed.compared {
        let verdict = if *same {
            "identical"
        } else {
            "DIFFERS from the original"
        };
        outln!("  {name}: {verdict}");
    }
    outln!("results: {}", replayed.out.display());
    if replayed.identical() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(EXIT_FAILED_RUNS))
    }
}
