//! Fault tests: duplicate and shuffled deliveries, workers that crash at random await points,
//! throttled models, failing writes, and poison messages.

#![allow(clippy::unwrap_used)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::entity::{Model, ModelConfig, RunStatus};
use socratic_core::id::RunId;
use socratic_core::pipeline::{Job, Ports, StageError, plan};
use socratic_core::queue::{QueueConsumer, QueueProducer};
use socratic_core::repository::RunFilter;
use socratic_core::runner::{JobHandler, RunnerConfig, StageHandler};
use socratic_core::stats::SplitMix64;
use socratic_core::store::{Item, Key, Page, PutMode, Query, Store, StoreError, TxOp};
use socratic_memory::MemoryStore;
use socratic_sim::SimulatedLlm;
use socratic_sim::chaos::{DuplicatingProducer, FaultRates, FaultyLlm, ShufflingConsumer};
use socratic_sim::simulated::{PROVIDER, SOCRATIC_TUTOR};
use support::{
    Harness, Options, YieldingStore, default_request, fast_config, leaderboard, model, outcome,
};

/// Drops the handler's future after a random number of polls for a share of messages: the
/// worker "crashes" mid-handler and the message comes back after its visibility timeout.
struct Crashy {
    rng: Mutex<SplitMix64>,
    share: f64,
}

struct CrashAfter<'a> {
    inner: Pin<Box<dyn Future<Output = Result<(), StageError>> + Send + 'a>>,
    polls_left: usize,
}

impl Future for CrashAfter<'_> {
    type Output = Result<(), StageError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls_left == 0 {
            return Poll::Ready(Err(StageError::Abandoned));
        }
        self.polls_left -= 1;
        self.inner.as_mut().poll(cx)
    }
}

#[async_trait]
impl JobHandler for Crashy {
    async fn handle(&self, ports: &Ports, body: &str) -> Result<(), StageError> {
        let crash_after = {
            let mut rng = self.rng.lock().unwrap();
            (rng.next_f64() < self.share).then(|| 1 + rng.below(40))
        };
        let work = StageHandler.handle(ports, body);
        match crash_after {
            None => work.await,
            Some(polls) => {
                CrashAfter {
                    inner: work,
                    polls_left: polls,
                }
                .await
            }
        }
    }
}

fn chaos_config() -> RunnerConfig {
    RunnerConfig {
        visibility_timeout: Some(Duration::from_millis(150)),
        ..fast_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_converges_on_the_clean_result() {
    let clean = Harness::new(Options::default()).await;
    let clean_summary = clean
        .runner(4, fast_config())
        .run_manifest(&default_request())
        .await
        .unwrap();
    let clean_outcome = outcome(&clean.ports, &clean_summary).await;

    for seed in [1u64, 2] {
        let queues = support::Queues::new(Duration::from_millis(150), 1000);
        let dup = |q: &socratic_memory::MemoryQueue, s: u64| {
            Arc::new(DuplicatingProducer::new(q.clone(), seed * 10 + s)) as Arc<dyn QueueProducer>
        };
        let throttled = FaultyLlm::new(
            SimulatedLlm::new(),
            FaultRates {
                throttle: 0.2,
                ..FaultRates::default()
            },
            seed,
        );
        let mut harness = Harness::new(Options {
            llm: Arc::new(throttled),
            store: Some(Arc::new(YieldingStore(MemoryStore::new()))),
            producers: Some((
                dup(&queues.dialogue, 1),
                dup(&queues.judge, 2),
                dup(&queues.events, 3),
            )),
            ..Options::default()
        })
        .await;
        harness.queues = queues.clone();
        let shuffle = |q: &socratic_memory::MemoryQueue, s: u64| {
            Arc::new(ShufflingConsumer::new(q.clone(), seed * 100 + s)) as Arc<dyn QueueConsumer>
        };
        let crashy: Arc<dyn JobHandler> = Arc::new(Crashy {
            rng: Mutex::new(SplitMix64::new(seed)),
            share: 0.3,
        });
        let runner = socratic_core::runner::Runner::builder(harness.ports.clone())
            .stage_lanes(
                shuffle(&queues.dialogue, 4),
                shuffle(&queues.judge, 5),
                shuffle(&queues.events, 6),
                4,
            )
            .handler("dialogue", Arc::clone(&crashy))
            .handler("judge", Arc::clone(&crashy))
            .handler("curate", crashy)
            .config(chaos_config())
            .build();
        let summary = tokio::time::timeout(
            Duration::from_secs(120),
            runner.run_manifest(&default_request()),
        )
        .await
        .expect("chaos run finishes")
        .unwrap();
        // Let duplicates still in flight settle, then compare everything.
        harness.drain(&runner).await;
        support::assert_counts_match_runs(&harness.ports, &summary.manifest).await;
        assert_eq!(
            leaderboard(&summary),
            leaderboard(&clean_summary),
            "seed {seed}: same leaderboard"
        );
        let chaotic = outcome(&harness.ports, &summary).await;
        assert_eq!(
            chaotic, clean_outcome,
            "seed {seed}: same turns, judgments and summaries"
        );
        assert!(
            queues.dead_letters().is_empty(),
            "seed {seed}: nothing dead-lettered"
        );
        let stats = runner.stats();
        assert!(
            stats.values().map(|s| s.retried).sum::<u64>() > 0,
            "seed {seed}: throttles were retried: {stats:?}"
        );
        assert!(
            stats.values().map(|s| s.abandoned).sum::<u64>() > 0,
            "seed {seed}: workers crashed: {stats:?}"
        );
    }
}

/// Applies or drops the n-th write and reports it failed: a crash around a write.
struct FailNthWrite {
    inner: MemoryStore,
    countdown: AtomicI64,
    apply_before_failing: bool,
}

impl FailNthWrite {
    async fn write<F: Future<Output = Result<(), StoreError>>>(
        &self,
        op: F,
    ) -> Result<(), StoreError> {
        if self.countdown.fetch_sub(1, Ordering::SeqCst) == 1 {
            if self.apply_before_failing {
                op.await?;
            }
            return Err(StoreError::Unavailable {
                message: "injected crash around a write".into(),
            });
        }
        op.await
    }
}

#[async_trait]
impl Store for FailNthWrite {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
        self.write(self.inner.put(item, mode)).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        self.write(self.inner.transact(ops)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_around_any_write_converges_on_the_clean_result() {
    let mut request = default_request();
    request.scenarios.truncate(1);
    request.tutors.truncate(1);
    request.turns = 2;
    // The clean run counts its writes: every one of them gets a crash below.
    let counting = Arc::new(FailNthWrite {
        inner: MemoryStore::new(),
        countdown: AtomicI64::new(i64::MAX),
        apply_before_failing: false,
    });
    let clean = Harness::new(Options {
        store: Some(Arc::clone(&counting) as Arc<dyn Store>),
        ..Options::default()
    })
    .await;
    let before = counting.countdown.load(Ordering::SeqCst);
    let clean_summary = clean
        .runner(2, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    let clean_outcome = outcome(&clean.ports, &clean_summary).await;
    let clean_writes = before - counting.countdown.load(Ordering::SeqCst);

    let mut n = 1;
    loop {
        let mut tripped = false;
        for apply_before_failing in [false, true] {
            let store = Arc::new(FailNthWrite {
                inner: MemoryStore::new(),
                countdown: AtomicI64::new(i64::MAX),
                apply_before_failing,
            });
            let harness = Harness::new(Options {
                store: Some(Arc::clone(&store) as Arc<dyn Store>),
                ..Options::default()
            })
            .await;
            store.countdown.store(n, Ordering::SeqCst);
            // The caller of plan retries like any client would.
            let planned = loop {
                match plan(&harness.ports, &request).await {
                    Ok(p) => break p,
                    Err(e) => assert!(
                        matches!(e, socratic_core::pipeline::PlanError::Backend(ref s) if s.is_retryable()),
                        "{e}"
                    ),
                }
            };
            let runner = harness.runner(2, fast_config());
            let id = planned.manifest.id;
            let done = runner.run_until(async {
                while runner.summary(&id).await.ok().flatten().is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            tokio::time::timeout(Duration::from_secs(30), done)
                .await
                .unwrap_or_else(|_| panic!("write {n} ({apply_before_failing}): stuck"));
            let summary = runner.summary(&id).await.unwrap().unwrap();
            support::assert_counts_match_runs(&harness.ports, &id).await;
            assert_eq!(
                leaderboard(&summary),
                leaderboard(&clean_summary),
                "write {n} ({apply_before_failing})"
            );
            assert_eq!(
                outcome(&harness.ports, &summary).await,
                clean_outcome,
                "write {n} ({apply_before_failing})"
            );
            tripped |= store.countdown.load(Ordering::SeqCst) <= 0;
        }
        if !tripped {
            break; // n is past the last write of a whole benchmark
        }
        n += 1;
    }
    assert!(
        clean_writes > 5 && n > clean_writes,
        "a crash at each of the benchmark's {clean_writes} writes; {} were exercised",
        n - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_end_in_the_dead_letter_queue_and_fail_their_run() {
    let harness = Harness::new(Options::default()).await;
    let ghost = Model {
        id: model("ghost"),
        provider: PROVIDER.into(),
        provider_model_id: "no-such-model".into(),
        name: "A model the provider rejects".into(),
        prices: Default::default(),
        active: true,
        tags: vec![],
    };
    harness.ports.repository.put_catalog(&ghost).await.unwrap();
    let mut request = default_request();
    request.scenarios.truncate(2);
    request.tutors = vec![
        ModelConfig {
            model: model(SOCRATIC_TUTOR),
            temperature: 0.7,
        },
        ModelConfig {
            model: model("ghost"),
            temperature: 0.7,
        },
    ];

    let unknown_run = RunId::from_ulid(ulid::Ulid::from_parts(1, 1));
    harness
        .ports
        .dialogue_jobs
        .send(Job::Dialogue { run: unknown_run }.message())
        .await
        .unwrap();
    harness
        .ports
        .judge_jobs
        .send(socratic_core::queue::OutgoingMessage::new("{not json"))
        .await
        .unwrap();

    let runner = harness.runner(2, fast_config());
    let summary = runner.run_manifest(&request).await.unwrap();
    harness.drain(&runner).await;
    support::assert_counts_match_runs(&harness.ports, &summary.manifest).await;

    assert_eq!(summary.failed_runs, 2);
    let last = summary.leaderboard.last().unwrap();
    assert_eq!(
        (last.model.as_str(), last.failed_runs, last.overall),
        ("ghost", 2, None)
    );
    let runs = harness
        .ports
        .repository
        .list_runs(&RunFilter::Status(RunStatus::Failed), 10, None)
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 2);
    for run in &runs.items {
        let failure = run.failure.as_ref().unwrap();
        assert_eq!(failure.stage, socratic_core::entity::Stage::Dialogue);
        assert!(
            failure.reason.contains("model not found: no-such-model"),
            "{}",
            failure.reason
        );
    }
    let dead = harness.queues.dead_letters();
    assert!(
        dead.iter().any(|b| b.contains(&unknown_run.to_string())),
        "unknown run dead-lettered: {dead:?}"
    );
    assert!(
        dead.iter().any(|b| b == "{not json"),
        "malformed message dead-lettered: {dead:?}"
    );
    for run in &runs.items {
        assert!(
            dead.iter().any(|b| b.contains(&run.id.to_string())),
            "the failed run's job is dead-lettered: {dead:?}"
        );
    }
    assert!(harness.queues.dialogue.is_empty() && harness.queues.judge.is_empty());
}
