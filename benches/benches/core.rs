//! Micro-benchmarks of the hot pure functions: content hashing, judge-output validation and
//! the statistics behind a leaderboard.

#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use socratic_core::canonical::content_hash;
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::entity::Verdict;
use socratic_core::stats;

fn hashing(c: &mut Criterion) {
    let defaults = Defaults::load().unwrap();
    c.bench_function("content_hash(rubric)", |b| {
        b.iter(|| content_hash(&defaults.rubric).unwrap())
    });
    c.bench_function("content_hash(8 scenarios)", |b| {
        b.iter(|| content_hash(&defaults.scenario_set(ScenarioSet::Starter)).unwrap())
    });
}

fn validation(c: &mut Criterion) {
    let rubric = Defaults::load().unwrap().rubric;
    let output = json!({
        "scores": {"pedagogical_stance": 5, "conceptual_fidelity": 4, "persona_adaptation": 4, "dialectical_progress": 3},
        "flags": {"ends_with_question": true, "reveals_answer": false},
        "violations": ["closed_question"],
        "rationale": "Asks what would happen."
    });
    c.bench_function("Verdict::from_output", |b| {
        b.iter(|| Verdict::from_output(&output, &rubric).unwrap())
    });
}

fn statistics(c: &mut Criterion) {
    let scores: Vec<f64> = (0..30).map(|i| 1.0 + f64::from(i % 5)).collect();
    c.bench_function("t_interval_mean(30 scenarios)", |b| {
        b.iter(|| stats::t_interval_mean(&scores))
    });
    c.bench_function("bootstrap_mean(30 scenarios, 2000 resamples)", |b| {
        b.iter(|| stats::bootstrap_mean(&scores, 2000, 7))
    });
    let diffs: Vec<f64> = (0..16).map(|i| f64::from(i % 3) - 0.5).collect();
    c.bench_function("sign_flip_p_value(16, exact)", |b| {
        b.iter(|| stats::sign_flip_p_value(&diffs, 0, 7))
    });
    let diffs: Vec<f64> = (0..40).map(|i| f64::from(i % 3) - 0.5).collect();
    c.bench_function("sign_flip_p_value(40, 20000 flips)", |b| {
        b.iter(|| stats::sign_flip_p_value(&diffs, 20_000, 7))
    });
}

criterion_group!(benches, hashing, validation, statistics);
criterion_main!(benches);
