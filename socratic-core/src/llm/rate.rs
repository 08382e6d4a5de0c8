//! A requests-per-minute limit.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{ConverseRequest, ConverseResponse, LlmClient, LlmError};

/// Starts at most `per_minute` calls a minute, evenly spaced, so a provider's
/// requests-per-minute quota is not hit in bursts.
#[derive(Debug)]
pub struct RateLimitLlm<C> {
    inner: C,
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl<C: LlmClient> RateLimitLlm<C> {
    /// Wraps `inner`; `per_minute` of 0 is taken as 1.
    pub fn new(inner: C, per_minute: u32) -> Self {
        Self {
            inner,
            interval: Duration::from_secs(60) / per_minute.max(1),
            next: Mutex::new(None),
        }
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for RateLimitLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let start = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + self.interval);
            start
        };
        tokio::time::sleep_until(start).await;
        self.inner.converse(request).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::llm::{Message, Role};

    struct Instant0;

    #[async_trait]
    impl LlmClient for Instant0 {
        async fn converse(&self, _: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
            Ok(crate::llm::ok_answer())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_to_the_rate() {
        let client = Arc::new(RateLimitLlm::new(Instant0, 120));
        let started = Instant::now();
        let calls = (0..5).map(|_| {
            let client = Arc::clone(&client);
            async move {
                let request = ConverseRequest::new("m", Role::Tutor, vec![Message::user("hi")]);
                client.converse(&request).await
            }
        });
        futures::future::join_all(calls).await;
        // Five calls at two a second: the last starts two seconds after the first.
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
