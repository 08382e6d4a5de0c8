//! The batcher against a provider fake: rounds, resumption without resubmission, requeues,
//! the cap, and typed errors.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::blob::BlobStore;
use socratic_core::llm::{
    BatchApi, BatchError, BatchJournal, BatchOptions, BatchPoll, BatchRecord, BatchRequest,
    BatchState, Batcher, Budget, ConverseRequest, ConverseResponse, LlmClient, LlmError,
    MemoryBatchJournal, Message, Prices, Role, StopReason, Usage, answer_key, request_hash,
};
use socratic_memory::MemoryBlobStore;

const NAMESPACE: &str = "fake https://batch.example";

fn answer(request: &ConverseRequest) -> ConverseResponse {
    ConverseResponse {
        text: format!("answer to {}", request.messages[0].text),
        structured: None,
        stop_reason: StopReason::EndTurn,
        usage: Usage {
            input_tokens: 100,
            output_tokens: 10,
            ..Usage::default()
        },
        latency: Duration::ZERO,
        cached: false,
        batched: false,
    }
}

/// A provider that answers every batch after `running` polls.
#[derive(Default)]
struct Fake {
    running: usize,
    /// Batches submitted: local id and custom ids.
    submitted: Mutex<Vec<(String, Vec<String>)>>,
    batches: Mutex<HashMap<String, Vec<BatchRequest>>>,
    by_local: Mutex<HashMap<String, String>>,
    polls: Mutex<HashMap<String, usize>>,
    /// Custom ids whose first answer is a transient error, and those left out once.
    fail_once: Mutex<HashSet<String>>,
    drop_once: Mutex<HashSet<String>>,
    /// An extra output line for a custom id nobody sent.
    stray_line: bool,
    refuse: bool,
    /// The most requests a batch may hold (0: no limit).
    most: usize,
}

impl Fake {
    fn submissions(&self) -> Vec<Vec<String>> {
        self.submitted
            .lock()
            .unwrap()
            .iter()
            .map(|(_, ids)| ids.clone())
            .collect()
    }

    /// A batch the provider holds, as if submitted by an earlier process.
    fn accept(&self, local_id: &str, provider_id: &str, requests: Vec<BatchRequest>) {
        self.batches
            .lock()
            .unwrap()
            .insert(provider_id.to_owned(), requests);
        self.by_local
            .lock()
            .unwrap()
            .insert(local_id.to_owned(), provider_id.to_owned());
    }
}

#[async_trait]
impl BatchApi for Fake {
    fn provider(&self) -> &str {
        "fake"
    }

    fn max_requests(&self) -> usize {
        if self.most == 0 {
            usize::MAX
        } else {
            self.most
        }
    }

    async fn submit(
        &self,
        local_id: &str,
        requests: &[BatchRequest],
    ) -> Result<String, BatchError> {
        if self.refuse {
            return Err(BatchError::Submit {
                provider: "fake".into(),
                local_id: local_id.into(),
                model: "m".into(),
                message: "400 invalid_request_error: bad input file".into(),
                retryable: false,
            });
        }
        let id = format!("batch_{}", self.submitted.lock().unwrap().len());
        self.submitted.lock().unwrap().push((
            local_id.to_owned(),
            requests.iter().map(|r| r.custom_id.clone()).collect(),
        ));
        self.accept(local_id, &id, requests.to_vec());
        Ok(id)
    }

    async fn find(&self, local_id: &str) -> Result<Option<String>, BatchError> {
        Ok(self.by_local.lock().unwrap().get(local_id).cloned())
    }

    async fn poll(
        &self,
        provider_id: &str,
        sent: &[BatchRequest],
    ) -> Result<BatchPoll, BatchError> {
        let expected: BTreeSet<&String> = sent.iter().map(|r| &r.custom_id).collect();
        let polls = {
            let mut polls = self.polls.lock().unwrap();
            let n = polls.entry(provider_id.to_owned()).or_default();
            *n += 1;
            *n
        };
        if polls <= self.running {
            return Ok(BatchPoll::Running {
                status: "in_progress".into(),
            });
        }
        if self.stray_line {
            return Err(BatchError::UnknownCustomId {
                batch: provider_id.into(),
                line: 1,
                custom_id: "stray".into(),
            });
        }
        let requests = self.batches.lock().unwrap()[provider_id].clone();
        let mut results = BTreeMap::new();
        for r in requests {
            assert!(expected.contains(&r.custom_id));
            if self.drop_once.lock().unwrap().remove(&r.custom_id) {
                continue;
            }
            let result = if self.fail_once.lock().unwrap().remove(&r.custom_id) {
                Err(LlmError::Unavailable {
                    message: "server_error".into(),
                })
            } else {
                Ok(answer(&r.request))
            };
            results.insert(r.custom_id, result);
        }
        Ok(BatchPoll::Ended {
            status: "completed".into(),
            results,
        })
    }

    async fn cancel(&self, _provider_id: &str) -> Result<(), BatchError> {
        Ok(())
    }
}

fn prices() -> Prices {
    Prices {
        input: 2.0,
        output: 8.0,
        batch_input: Some(1.0),
        batch_output: Some(4.0),
        ..Prices::default()
    }
}

fn request(i: usize) -> ConverseRequest {
    let mut request = ConverseRequest::new("m", Role::Tutor, vec![Message::user(format!("q{i}"))]);
    request.max_tokens = 50;
    request
}

/// A client that must never be called: every round here is big enough to batch.
struct NoLive;

#[async_trait]
impl LlmClient for NoLive {
    async fn converse(&self, _request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        panic!("no call may run live");
    }
}

struct Setup {
    fake: Arc<Fake>,
    journal: Arc<MemoryBatchJournal>,
    budget: Arc<Budget>,
    cache: Arc<MemoryBlobStore>,
}

impl Setup {
    fn new(fake: Fake, budget: Budget) -> Self {
        Self {
            fake: Arc::new(fake),
            journal: Arc::new(MemoryBatchJournal::new()),
            budget: Arc::new(budget),
            cache: Arc::new(MemoryBlobStore::new()),
        }
    }

    fn client(&self) -> Arc<dyn LlmClient> {
        let batcher = Batcher::new(
            Arc::clone(&self.journal) as Arc<dyn BatchJournal>,
            Arc::clone(&self.budget),
            Some(Arc::clone(&self.cache) as Arc<dyn BlobStore>),
            BatchOptions {
                gather: Duration::from_millis(50),
                poll: Duration::from_millis(20),
            },
        );
        batcher.lane(
            "m",
            NAMESPACE,
            Arc::clone(&self.fake) as Arc<dyn BatchApi>,
            prices(),
            Arc::new(NoLive),
        )
    }
}

async fn ask_all(
    client: &Arc<dyn LlmClient>,
    range: std::ops::Range<usize>,
) -> Vec<Result<ConverseResponse, LlmError>> {
    let calls = range.map(|i| {
        let client = Arc::clone(client);
        async move { client.converse(&request(i)).await }
    });
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn concurrent_calls_form_one_batch_answered_at_batch_prices_and_cached() {
    let setup = Setup::new(
        Fake {
            running: 2,
            ..Fake::default()
        },
        Budget::unlimited(),
    );
    let client = setup.client();
    let answers = ask_all(&client, 0..6).await;
    assert_eq!(setup.fake.submissions().len(), 1, "one batch for the round");
    assert_eq!(setup.fake.submissions()[0].len(), 6);
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        assert_eq!(answer.text, format!("answer to q{i}"));
        assert!(answer.batched);
    }
    // 100 input and 10 output tokens at $1 and $4 per million: the batch prices.
    let each = (100.0 * 1.0 + 10.0 * 4.0) / 1e6;
    assert!((setup.budget.spent() - 6.0 * each).abs() < 1e-12);
    assert_eq!(setup.journal.costs().len(), 6);
    let records = setup.journal.all().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, BatchState::Collected);
    assert_eq!(records[0].status, "completed");
    // Every answer is in the response cache under its custom id.
    for i in 0..6 {
        let id = request_hash(NAMESPACE, &request(i)).unwrap();
        let stored = setup.cache.get(&answer_key(&id).unwrap()).await.unwrap();
        let cached: ConverseResponse = serde_json::from_slice(&stored).unwrap();
        assert_eq!(cached.text, format!("answer to q{i}"));
    }
}

#[tokio::test]
async fn failed_and_missing_requests_go_into_the_next_round_and_no_others() {
    let fake = Fake::default();
    let failing = request_hash(NAMESPACE, &request(1)).unwrap();
    let missing = request_hash(NAMESPACE, &request(4)).unwrap();
    fake.fail_once.lock().unwrap().insert(failing.clone());
    fake.drop_once.lock().unwrap().insert(missing.clone());
    let setup = Setup::new(fake, Budget::unlimited());
    let answers = ask_all(&setup.client(), 0..6).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let submissions = setup.fake.submissions();
    assert_eq!(submissions.len(), 2);
    assert_eq!(submissions[0].len(), 6);
    let second: BTreeSet<_> = submissions[1].iter().cloned().collect();
    assert_eq!(second, BTreeSet::from([failing, missing]));
    let records = setup.journal.all().await.unwrap();
    assert!(
        records[0].status.contains("2 request(s) requeued"),
        "{}",
        records[0].status
    );
    // Paid once per answer: 6, not 8.
    assert_eq!(setup.journal.costs().len(), 6);
}

#[tokio::test]
async fn a_restart_waits_for_the_batches_it_had_submitted_and_never_resubmits_them() {
    let setup = Setup::new(Fake::default(), Budget::unlimited());
    let requests: Vec<BatchRequest> = (0..3)
        .map(|i| BatchRequest {
            custom_id: request_hash(NAMESPACE, &request(i)).unwrap(),
            request: request(i),
        })
        .collect();
    // An earlier process recorded one batch as accepted, and one whose acceptance it never
    // learned (killed between the two writes), which the provider did accept.
    let first = BatchRecord {
        local_id: "01LOCALONE".into(),
        model: "m".into(),
        provider: "fake".into(),
        provider_id: Some("batch_earlier".into()),
        requests: requests[..2].to_vec(),
        state: BatchState::Submitted,
        status: "in_progress".into(),
    };
    let second = BatchRecord {
        local_id: "01LOCALTWO".into(),
        provider_id: None,
        requests: requests[2..].to_vec(),
        state: BatchState::Submitting,
        ..first.clone()
    };
    setup
        .fake
        .accept("01LOCALONE", "batch_earlier", first.requests.clone());
    setup
        .fake
        .accept("01LOCALTWO", "batch_found", second.requests.clone());
    setup.journal.put(&first).await.unwrap();
    setup.journal.put(&second).await.unwrap();

    let answers = ask_all(&setup.client(), 0..3).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert!(setup.fake.submissions().is_empty(), "nothing sent again");
    let records = setup.journal.all().await.unwrap();
    assert!(records.iter().all(|r| r.state == BatchState::Collected));
    assert_eq!(records[1].provider_id.as_deref(), Some("batch_found"));
}

#[tokio::test]
async fn a_batch_the_provider_never_accepted_is_abandoned_and_its_requests_sent_again() {
    let setup = Setup::new(Fake::default(), Budget::unlimited());
    let record = BatchRecord {
        local_id: "01NEVERSENT".into(),
        model: "m".into(),
        provider: "fake".into(),
        provider_id: None,
        requests: vec![BatchRequest {
            custom_id: request_hash(NAMESPACE, &request(0)).unwrap(),
            request: request(0),
        }],
        state: BatchState::Submitting,
        status: String::new(),
    };
    setup.journal.put(&record).await.unwrap();
    let answers = ask_all(&setup.client(), 0..1).await;
    assert!(answers[0].is_ok());
    assert_eq!(setup.fake.submissions().len(), 1);
    let records = setup.journal.all().await.unwrap();
    assert_eq!(records[0].state, BatchState::Abandoned);
    assert_eq!(records[1].state, BatchState::Collected);
}

#[tokio::test]
async fn the_cap_refuses_a_batch_whose_worst_case_does_not_fit_and_nothing_is_sent() {
    // One request's worst case fits; six do not.
    let one = socratic_core::llm::worst_case_cost(&prices().batch().unwrap(), &request(0));
    let setup = Setup::new(Fake::default(), Budget::new(one * 3.0));
    let answers = ask_all(&setup.client(), 0..6).await;
    for answer in answers {
        assert!(
            matches!(answer, Err(LlmError::BudgetExhausted { .. })),
            "{answer:?}"
        );
    }
    assert!(setup.fake.submissions().is_empty());
    assert!(setup.journal.all().await.unwrap().is_empty());
    assert_eq!(setup.budget.spent(), 0.0);
}

#[tokio::test]
async fn a_refused_submit_is_a_typed_error_and_the_batch_is_recorded_abandoned() {
    let setup = Setup::new(
        Fake {
            refuse: true,
            ..Fake::default()
        },
        Budget::unlimited(),
    );
    let answers = ask_all(&setup.client(), 0..2).await;
    for answer in answers {
        let error = answer.unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("fake refused batch"), "{error}");
        assert!(error.to_string().contains("bad input file"), "{error}");
    }
    let records = setup.journal.all().await.unwrap();
    assert_eq!(records[0].state, BatchState::Abandoned);
    assert_eq!(setup.budget.spent(), 0.0);
}

#[tokio::test]
async fn an_output_line_for_an_unknown_custom_id_fails_the_calls_and_keeps_the_batch_open() {
    let setup = Setup::new(
        Fake {
            stray_line: true,
            ..Fake::default()
        },
        Budget::unlimited(),
    );
    let answers = ask_all(&setup.client(), 0..2).await;
    for answer in answers {
        let error = answer.unwrap_err();
        assert!(error.to_string().contains("custom id \"stray\""), "{error}");
    }
    // Still open: paid for, and collectable once the provider's output is fixed.
    let records = setup.journal.all().await.unwrap();
    assert_eq!(records[0].state, BatchState::Submitted);
    assert!(
        records[0].status.contains("did not send"),
        "{}",
        records[0].status
    );
}

#[tokio::test]
async fn a_round_larger_than_the_provider_takes_goes_into_several_batches() {
    let setup = Setup::new(
        Fake {
            most: 4,
            ..Fake::default()
        },
        Budget::unlimited(),
    );
    let answers = ask_all(&setup.client(), 0..10).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let sizes: Vec<usize> = setup.fake.submissions().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(setup.journal.costs().len(), 10);
}
