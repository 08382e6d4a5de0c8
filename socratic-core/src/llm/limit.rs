//! A per-model concurrency limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{ConverseRequest, ConverseResponse, LlmClient, LlmError};

/// Lets at most `per_model` calls to the same model run at once; further calls wait. Put it
/// outside [`RetryLlm`](super::RetryLlm) so a call waiting out a backoff keeps its slot and a
/// throttled model is not hammered by the others.
#[derive(Debug)]
pub struct ConcurrencyLimitLlm<C> {
    inner: C,
    per_model: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl<C: LlmClient> ConcurrencyLimitLlm<C> {
    /// Wraps `inner`, allowing `per_model` (at least 1) concurrent calls per model.
    pub fn new(inner: C, per_model: usize) -> Self {
        Self {
            inner,
            per_model: per_model.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn semaphore(&self, model: &str) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry(model.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_model))),
        )
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for ConcurrencyLimitLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let semaphore = self.semaphore(&request.model);
        let _permit = semaphore
            .acquire_owned()
            .await
            .map_err(|_| LlmError::Unavailable {
                message: "concurrency limiter closed".to_owned(),
            })?;
        self.inner.converse(request).await
    }
}

/// Lets at most as many calls run at once as `slots` has permits, across every client that
/// shares `slots`: the models one server serves. A local server (Ollama, llama.cpp) answers
/// one request or a few at a time; calls beyond that would wait in its queue with their
/// timeouts running, so they wait here instead, and a call's timeout starts when the server
/// can take it.
#[derive(Debug)]
pub struct SharedLimitLlm<C> {
    inner: C,
    slots: Arc<Semaphore>,
}

impl<C: LlmClient> SharedLimitLlm<C> {
    /// Wraps `inner`, taking one of `slots`' permits for each call.
    pub fn new(inner: C, slots: Arc<Semaphore>) -> Self {
        Self { inner, slots }
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for SharedLimitLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let _permit =
            Arc::clone(&self.slots)
                .acquire_owned()
                .await
                .map_err(|_| LlmError::Unavailable {
                    message: "server concurrency limiter closed".to_owned(),
                })?;
        self.inner.converse(request).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::llm::{Message, Role};

    #[derive(Default)]
    struct Counting {
        current: AtomicUsize,
        peak: Mutex<HashMap<String, usize>>,
        per_model: Mutex<HashMap<String, usize>>,
    }

    #[async_trait]
    impl LlmClient for Counting {
        async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
            self.current.fetch_add(1, Ordering::SeqCst);
            {
                let mut now = self.per_model.lock().unwrap();
                let n = now.entry(request.model.clone()).or_default();
                *n += 1;
                let mut peak = self.peak.lock().unwrap();
                let p = peak.entry(request.model.clone()).or_default();
                *p = (*p).max(*n);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            *self
                .per_model
                .lock()
                .unwrap()
                .get_mut(&request.model)
                .unwrap() -= 1;
            self.current.fetch_sub(1, Ordering::SeqCst);
            Ok(crate::llm::ok_answer())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_model_exceeds_its_limit_and_models_do_not_block_each_other() {
        let client = ConcurrencyLimitLlm::new(Counting::default(), 3);
        let calls = (0..40).map(|i| {
            let request = ConverseRequest::new(
                if i % 2 == 0 { "a" } else { "b" },
                Role::Tutor,
                vec![Message::user("x")],
            );
            let client = &client;
            async move { client.converse(&request).await }
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        let peak = client.inner.peak.lock().unwrap().clone();
        assert_eq!(peak.get("a"), Some(&3));
        assert_eq!(peak.get("b"), Some(&3));
    }
}
