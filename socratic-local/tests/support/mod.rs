//! What the library's tests share: options for a results directory, and a benchmark run to
//! its summary.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::path::Path;

use socratic_local::{Benchmark, BenchmarkOptions, Finished, Outcome};

/// The default offline benchmark in the results directory `out`.
pub fn options(out: &Path) -> BenchmarkOptions {
    BenchmarkOptions {
        out: out.to_owned(),
        ..BenchmarkOptions::default()
    }
}

/// The benchmark of `options` run to its summary.
pub async fn run(options: BenchmarkOptions) -> Box<Finished> {
    finished(
        Benchmark::open(options)
            .await
            .unwrap()
            .run(&())
            .await
            .unwrap(),
    )
}

/// A finished outcome; a test fails on an interrupted one.
pub fn finished(outcome: Outcome) -> Box<Finished> {
    match outcome {
        Outcome::Finished(finished) => finished,
        Outcome::Interrupted(i) | Outcome::Detached(i) => panic!("stopped: {i:?}"),
    }
}
