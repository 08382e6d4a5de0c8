//! `init`, `check` and `models`: a benchmark directory and a models file, before any run.

use std::path::Path;
use std::process::ExitCode;

use socratic_local::{Error, models, text};

use crate::Status;
use crate::output::{out, outln};

pub(crate) fn init(dir: &Path) -> Status {
    let written = socratic_local::catalog::init(dir)?;
    outln!("wrote a starter benchmark in {}:", dir.display());
    for path in written {
        outln!("  {}", path.display());
    }
    outln!(
        "next: socratic check {0} && socratic run --catalog {0}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn check(dir: &Path) -> Status {
    let report = socratic_local::check(dir).await?;
    outln!(
        "{}: ok: {} rubric(s), {} prompt(s), {} scenario(s); the manifest plans {} run(s)",
        dir.display(),
        report.rubrics,
        report.prompts,
        report.scenarios,
        report.runs
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn models(path: &Path, no_check: bool) -> Status {
    let file = models::load_from_env(path)?;
    out!("{}", text::models_table(&file));
    if no_check {
        return Ok(ExitCode::SUCCESS);
    }
    let failures = models::check_models(&file).await?;
    if !failures.is_empty() {
        return Err(Error::Invalid(format!(
            "preflight failed:\n  - {}",
            failures.join("\n  - ")
        )));
    }
    outln!("every model answered");
    Ok(ExitCode::SUCCESS)
}
