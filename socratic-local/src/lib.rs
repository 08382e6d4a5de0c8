//! The local deployment of `socratic` as a library: everything the `socratic` command line
//! does, for any Rust program to embed.
//!
//! A *results directory* holds a SQLite database (`socratic.db`: every entity, the stage
//! queues and the call ledger) and the files the pipeline writes (raw artifacts, curated runs,
//! the response cache and each manifest's `summary.json`, `leaderboard.csv` and
//! `report.html`). One process holds it at a time, so a killed benchmark resumes where it
//! stopped and nothing paid for is paid again; readers need no lock.
//!
//! - [`Benchmark`]: opens a results directory with [`BenchmarkOptions`], then
//!   [`estimate`](Benchmark::estimate) and [`run`](Benchmark::run) it (or re-judge a finished
//!   one), reporting [`Progress`] and ending with an [`Outcome`].
//! - [`models`]: the models file (`--models`): which real models may be called, at what
//!   price, and their client stacks.
//! - [`catalog`]: a benchmark directory of your own (rubrics, prompts, scenarios), and the
//!   starter that [`catalog::init`] writes; [`check()`] checks one without calling a model.
//! - [`history`]: what a results directory holds: its benchmarks, a run's transcript, two
//!   benchmarks compared; [`rerender()`] writes a finished benchmark's report again;
//!   [`calibrate()`] measures judges against human labels.
//! - [`label`]: a page on the loopback address where people score a sample of a finished
//!   benchmark's turns, blind, for [`calibrate()`].
//! - [`bundle`]: one finished benchmark as one file: [`bundle::export()`],
//!   [`bundle::import()`], and [`bundle::replay()`] byte for byte with no model call.
//! - [`text`]: the tables the command line prints.
//!
//! A service that runs the default benchmark on a schedule needs nothing else:
//!
//! ```no_run
//! use socratic_local::{Benchmark, BenchmarkOptions, Outcome};
//!
//! # async fn nightly() -> Result<(), socratic_local::Error> {
//! let options = BenchmarkOptions {
//!     out: "results".into(),
//!     ..BenchmarkOptions::default()
//! };
//! let benchmark = Benchmark::open(options).await?;
//! println!("estimated ${:.4}", benchmark.estimate().await?.cost_usd);
//! if let Outcome::Finished(finished) = benchmark.run(&()).await? {
//!     println!("{}", socratic_core::report::leaderboard_text(&finished.summary));
//! }
//! # Ok(())
//! # }
//! ```

pub mod batches;
pub mod benchmark;
pub mod bundle;
pub mod calibrate;
pub mod catalog;
pub mod check;
mod error;
pub mod given_cache;
pub mod history;
pub mod label;
pub mod models;
pub mod push;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;
pub mod rerender;
pub mod text;

pub use benchmark::{
    Benchmark, BenchmarkOptions, CacheChoice, Finished, Interrupted, Outcome, Overrides, Planned,
    Progress, Rejudge, ResultFiles, Resumed,
};
pub use calibrate::calibrate;
pub use check::{CheckReport, check};
pub use error::Error;
pub use label::{LabelOptions, LabelServer, export_labels};
pub use rerender::{Rerendered, rerender};
use std::path::Path;

/// `SUBJECT has N problem(s):` and one indented line per problem: how everything wrong with an
/// input is reported at once.
pub fn problem_list(subject: &str, problems: &[String]) -> String {
    format!(
        "{subject} has {} problem(s):\n{}",
        problems.len(),
        indented(problems.iter().cloned())
    )
}

/// One `  - line` per line.
fn indented(lines: impl Iterator<Item = String>) -> String {
    lines
        .map(|line| format!("  - {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Puts `file` at `at` too: a hard link where the file system has them (a large report then
/// takes its disk once), else a copy. Never a copy onto itself: `at` is replaced, not
/// written through.
pub(crate) fn publish(file: &Path, at: &Path) -> Result<(), Error> {
    match std::fs::remove_file(at) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(at)(e)),
    }
    if std::fs::hard_link(file, at).is_err() {
        std::fs::copy(file, at).map_err(Error::io(file))?;
    }
    Ok(())
}

/// Whether two paths name the same existing file or directory.
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}
