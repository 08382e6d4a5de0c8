//! Micro-benchmarks of the hot functions: content hashing, judge-output validation and the
//! statistics behind a leaderboard, and what the throughput profile found hot in the pipeline
//! (docs/performance.md, "Micro-benchmarks").

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use socratic_core::answer_key::GoalTimeline;
use socratic_core::canonical::content_hash;
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::entity::Turn;
use socratic_core::entity::{Model, Prompt, Rubric, Scenario, Verdict};
use socratic_core::llm::LlmClient;
use socratic_core::pipeline::{JudgeBrief, Sampling, judge_request};
use socratic_core::queue::{OutgoingMessage, QueueConsumer, QueueProducer, ReceiveOptions};
use socratic_core::report::ReportRuns;
use socratic_core::repository::{RunFilter, RunRecord, from_item, to_item};
use socratic_core::runner::RunnerConfig;
use socratic_core::stats;
use socratic_core::store::{Item, PutMode, Store, StoreExt};
use socratic_memory::{MemoryQueue, MemoryStore, QueueConfig};
use socratic_sim::SimulatedLlm;

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

/// A stored run of the simulated models, and the store and catalog it came from.
struct Sample {
    record: RunRecord,
    scenario: Scenario,
    rubric: Rubric,
    prompt: Prompt,
    judge: Model,
    turn_item: Item,
}

fn sample(runtime: &tokio::runtime::Runtime) -> Sample {
    runtime.block_on(async {
        let times = std::sync::Arc::default();
        let local = socratic_benches::pipeline(Duration::ZERO, 8, times).await;
        let runner = local.runner(8, RunnerConfig::default());
        let summary = runner
            .run_manifest(&socratic_benches::manifest(8))
            .await
            .unwrap();
        let repo = &local.ports.repository;
        let runs = repo
            .list_runs(&RunFilter::Manifest(summary.manifest), 1, None)
            .await
            .unwrap();
        let record = repo.run_record(&runs.items[0].id).await.unwrap().unwrap();
        let defaults = Defaults::load().unwrap();
        let scenario = defaults
            .scenarios
            .iter()
            .find(|s| s.id == record.run.value.scenario)
            .unwrap()
            .clone();
        let turn_item = local
            .store
            .snapshot()
            .into_iter()
            .find(|i| i.key.sk.starts_with("TURN#"))
            .unwrap();
        let judge = SimulatedLlm::catalog()
            .into_iter()
            .find(|m| m.id.as_str() == socratic_sim::simulated::JUDGE)
            .unwrap();
        Sample {
            record,
            scenario,
            rubric: defaults.rubric,
            prompt: defaults.judge_prompt,
            judge,
            turn_item,
        }
    })
}

fn pipeline_functions(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = sample(&runtime);
    let turns = &s.record.turns;
    c.bench_function("GoalTimeline::of(3 turns)", |b| {
        b.iter(|| GoalTimeline::of(&s.scenario, turns))
    });
    let at = s.record.run.value.created_at;
    c.bench_function("Timestamp to_string", |b| b.iter(|| at.to_string()));
    let sampling = Sampling {
        temperature: 0.0,
        max_tokens: 512,
    };
    let request = || {
        judge_request(
            &s.judge,
            sampling,
            &s.prompt,
            &s.rubric,
            &s.scenario,
            turns,
            3,
        )
    };
    c.bench_function("judge_request(turn 3 of 3)", |b| b.iter(request));
    let brief = JudgeBrief::new(&s.prompt, &s.rubric, &s.scenario);
    c.bench_function("JudgeBrief::request(turn 3 of 3)", |b| {
        b.iter(|| brief.request(&s.judge, sampling, &s.scenario, turns, 3))
    });
    let judge_request = request();
    c.bench_function("raw judge request as JSON", |b| {
        b.iter(|| serde_json::to_vec(&judge_request).unwrap())
    });
    let llm = SimulatedLlm::new();
    c.bench_function("simulated judge call", |b| {
        b.iter(|| runtime.block_on(llm.converse(&judge_request)).unwrap())
    });
    c.bench_function("ReportRuns::run", |b| {
        b.iter_batched(
            ReportRuns::new,
            |mut runs| {
                runs.run(
                    &s.record.run.value,
                    turns,
                    &s.record.judgments,
                    s.record.summary.as_ref(),
                );
                runs
            },
            BatchSize::SmallInput,
        )
    });
    let store = MemoryStore::new();
    let key = s.turn_item.key.clone();
    c.bench_function("MemoryStore put(turn item)", |b| {
        b.iter(|| {
            runtime
                .block_on(store.put(s.turn_item.clone(), PutMode::Overwrite))
                .unwrap()
        })
    });
    c.bench_function("MemoryStore get(turn item)", |b| {
        b.iter(|| runtime.block_on(store.get(&key)).unwrap())
    });
    // Every entity the pipeline writes and reads back goes this way.
    let turn = s.record.turns[0].clone();
    c.bench_function(
        "a turn written and read back (to_item, put, get, from_item)",
        |b| {
            b.iter(|| {
                let item = to_item(&turn, 1).unwrap();
                let key = item.key.clone();
                runtime
                    .block_on(store.put(item, PutMode::Overwrite))
                    .unwrap();
                let read = runtime.block_on(store.get(&key)).unwrap().unwrap();
                from_item::<Turn>(&read).unwrap()
            })
        },
    );
    // A job sent, received and acknowledged behind 10,000 waiting ones (a 10,000-run manifest's
    // dialogue jobs, just planned).
    let queue = MemoryQueue::new(QueueConfig::default());
    runtime.block_on(async {
        for n in 0..10_000 {
            queue
                .send(OutgoingMessage::new(format!("waiting {n}")))
                .await
                .unwrap();
        }
    });
    let one = ReceiveOptions {
        max_messages: 1,
        wait: Duration::ZERO,
        visibility_timeout: None,
    };
    c.bench_function("MemoryQueue send, receive, ack (10,000 waiting)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                queue.send(OutgoingMessage::new("job")).await.unwrap();
                let got = queue.receive(&one).await.unwrap();
                queue.ack(&got[0].receipt).await.unwrap();
            })
        })
    });
    // As the manifest's finished-run counter is incremented: once per run, on an item that
    // holds a whole entity.
    c.bench_function("MemoryStore increment(counter on a turn item)", |b| {
        b.iter(|| {
            runtime
                .block_on(store.increment(&key, "finished", 1))
                .unwrap()
        })
    });
}

criterion_group!(benches, hashing, validation, statistics, pipeline_functions);
criterion_main!(benches);
