//! The queue ports on the `messages` table: one table for every queue of a database, so a
//! stage's store writes and its queue's messages live in one file.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use socratic_core::queue::{
    Delivery, MAX_DELAY, MessageId, OutgoingMessage, QueueConsumer, QueueError, QueueProducer,
    Receipt, ReceiveOptions,
};

use crate::db::{Database, now_ms};

/// The longest a receive sleeps between looks at the table, so a message sent by another
/// process is noticed even though its send wakes nobody here.
const POLL: Duration = Duration::from_millis(100);

/// How a [`SqliteQueue`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteQueueConfig {
    /// How long a received message stays hidden unless the receive says otherwise.
    pub visibility_timeout: Duration,
    /// Deliveries before a message moves to the dead-letter queue; `None` retries forever.
    pub max_attempts: Option<u32>,
    /// The queue that receives messages out of attempts.
    pub dead_letter: Option<String>,
}

impl Default for SqliteQueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_attempts: None,
            dead_letter: None,
        }
    }
}

/// A named queue in a SQLite [`Database`], implementing both [`QueueProducer`] and
/// [`QueueConsumer`] with SQS semantics: at-least-once delivery, visibility timeouts, attempt
/// counts and a dead-letter queue that receives a message on the receive after its last
/// allowed attempt. Messages and their visibility survive a restart.
///
/// Cloning shares the queue.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    db: Database,
    name: String,
    config: SqliteQueueConfig,
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl SqliteQueue {
    /// The queue `name` in `db`. Queues are created on first use.
    pub fn new(db: &Database, name: impl Into<String>, config: SqliteQueueConfig) -> Self {
        Self {
            db: db.clone(),
            name: name.into(),
            config,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dead-letter queue, if configured: a plain queue with no dead-letter queue of its own.
    pub fn dead_letter(&self) -> Option<SqliteQueue> {
        self.config
            .dead_letter
            .as_ref()
            .map(|name| SqliteQueue::new(&self.db, name.clone(), SqliteQueueConfig::default()))
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, QueueError> {
        let db = self.db.clone();
        self.db
            .call(f)
            .await
            .map_err(|message| QueueError::Unavailable { message })?
            .map_err(|e| QueueError::Unavailable {
                message: db.describe(&e),
            })
    }

    /// Messages in the queue, visible or in flight.
    pub async fn len(&self) -> Result<usize, QueueError> {
        let name = self.name.clone();
        self.call(move |conn| {
            conn.query_row(
                "SELECT count(*) FROM messages WHERE queue = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
        })
        .await
        .map(|n| usize::try_from(n).unwrap_or(0))
    }

    /// Whether the queue holds no message at all.
    pub async fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len().await? == 0)
    }

    /// Every body in the queue, in arrival order (for diagnostics).
    pub async fn bodies(&self) -> Result<Vec<String>, QueueError> {
        let name = self.name.clone();
        self.call(move |conn| {
            let mut statement =
                conn.prepare("SELECT body FROM messages WHERE queue = ?1 ORDER BY seq")?;
            let rows = statement.query_map([name], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    /// Makes every in-flight message visible again now, keeping its attempt count.
    ///
    /// For a process that holds its database alone and starts after a crash: the messages the
    /// dead process had received would otherwise stay hidden for their whole visibility
    /// timeout. Never call it while another consumer may be working on them.
    pub async fn release_in_flight(&self) -> Result<usize, QueueError> {
        let name = self.name.clone();
        let released = self
            .call(move |conn| {
                conn.execute(
                    "UPDATE messages SET receipt = NULL, visible_at = ?2 \
                     WHERE queue = ?1 AND receipt IS NOT NULL",
                    params![name, now_ms()],
                )
            })
            .await?;
        self.db.arrived().notify_waiters();
        Ok(released)
    }

    fn take(
        conn: &mut Connection,
        name: &str,
        config: &SqliteQueueConfig,
        max: usize,
        visibility: Duration,
    ) -> rusqlite::Result<(Vec<Delivery>, Option<i64>)> {
        let now = now_ms();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let (Some(max_attempts), Some(dead_letter)) = (config.max_attempts, &config.dead_letter)
        {
            tx.execute(
                "UPDATE messages SET queue = ?3, attempts = 0, receipt = NULL, visible_at = ?2 \
                 WHERE queue = ?1 AND visible_at <= ?2 AND attempts >= ?4",
                params![name, now, dead_letter, max_attempts],
            )?;
        }
        let visible: Vec<(i64, String, String, u32)> = {
            let mut statement = tx.prepare_cached(
                "SELECT seq, id, body, attempts FROM messages \
                 WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, seq LIMIT ?3",
            )?;
            let rows = statement
                .query_map(params![name, now, i64::try_from(max).unwrap_or(10)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut deliveries = Vec::with_capacity(visible.len());
        {
            let mut update = tx.prepare_cached(
                "UPDATE messages SET attempts = ?2, visible_at = ?3, receipt = ?4 WHERE seq = ?1",
            )?;
            for (seq, id, body, attempts) in visible {
                let receipt = ulid::Ulid::new().to_string();
                let attempt = attempts + 1;
                update.execute(params![seq, attempt, now + ms(visibility), receipt])?;
                deliveries.push(Delivery {
                    message_id: MessageId(id),
                    receipt: Receipt(receipt),
                    body,
                    attempt,
                });
            }
        }
        let next_visible = if deliveries.is_empty() {
            tx.query_row(
                "SELECT min(visible_at) FROM messages WHERE queue = ?1",
                [name],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten()
        } else {
            None
        };
        tx.commit()?;
        Ok((deliveries, next_visible))
    }

    async fn enqueue(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<MessageId>, QueueError> {
        let name = self.name.clone();
        let ids = self
            .call(move |conn| {
                let now = now_ms();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut ids = Vec::with_capacity(messages.len());
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO messages (queue, id, body, visible_at, attempts) \
                         VALUES (?1, ?2, ?3, ?4, 0)",
                    )?;
                    for message in messages {
                        let id = ulid::Ulid::new().to_string();
                        let visible_at = now + ms(message.delay.unwrap_or_default());
                        insert.execute(params![name, id, message.body, visible_at])?;
                        ids.push(MessageId(id));
                    }
                }
                tx.commit()?;
                Ok(ids)
            })
            .await?;
        self.db.arrived().notify_waiters();
        Ok(ids)
    }

    async fn settle(
        &self,
        receipt: &Receipt,
        requeue_after: Option<Duration>,
    ) -> Result<(), QueueError> {
        let receipt = receipt.0.clone();
        let changed = self
            .call(move |conn| match requeue_after {
                None => conn.execute("DELETE FROM messages WHERE receipt = ?1", [receipt]),
                Some(delay) => conn.execute(
                    "UPDATE messages SET receipt = NULL, visible_at = ?2 WHERE receipt = ?1",
                    params![receipt, now_ms() + ms(delay)],
                ),
            })
            .await?;
        if changed == 0 {
            return Err(QueueError::StaleReceipt);
        }
        if requeue_after.is_some() {
            self.db.arrived().notify_waiters();
        }
        Ok(())
    }
}

#[async_trait]
impl QueueProducer for SqliteQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError> {
        message.check()?;
        let mut ids = self.enqueue(vec![message]).await?;
        ids.pop().ok_or_else(|| QueueError::Unavailable {
            message: "the message was not stored".to_owned(),
        })
    }

    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError> {
        let checks: Vec<Result<(), QueueError>> =
            messages.iter().map(OutgoingMessage::check).collect();
        let valid: Vec<OutgoingMessage> = messages
            .into_iter()
            .zip(&checks)
            .filter(|(_, c)| c.is_ok())
            .map(|(m, _)| m)
            .collect();
        let mut ids = self.enqueue(valid).await?.into_iter();
        Ok(checks
            .into_iter()
            .map(|check| {
                check.and_then(|()| {
                    ids.next().ok_or_else(|| QueueError::Unavailable {
                        message: "the message was not stored".to_owned(),
                    })
                })
            })
            .collect())
    }
}

#[async_trait]
impl QueueConsumer for SqliteQueue {
    async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<Delivery>, QueueError> {
        if !(1..=10).contains(&options.max_messages) {
            return Err(QueueError::InvalidRequest {
                message: format!("max_messages must be 1 to 10, got {}", options.max_messages),
            });
        }
        let visibility = options
            .visibility_timeout
            .unwrap_or(self.config.visibility_timeout);
        let deadline = tokio::time::Instant::now() + options.wait;
        loop {
            // Register for wake-ups before looking, so a send in between is not missed.
            let arrived = self.db.arrived().notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (name, config, max) =
                (self.name.clone(), self.config.clone(), options.max_messages);
            let (deliveries, next_visible) = self
                .call(move |conn| Self::take(conn, &name, &config, max, visibility))
                .await?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let until_visible = next_visible.map_or(POLL, |at| {
                Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
            });
            let wake = (now + until_visible.min(POLL)).min(deadline);
            let _ = tokio::time::timeout_at(wake, arrived).await;
        }
    }

    async fn ack(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.settle(receipt, None).await
    }

    async fn nack(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        if delay > MAX_DELAY {
            return Err(QueueError::InvalidRequest {
                message: "nack delay longer than 15 minutes".to_owned(),
            });
        }
        self.settle(receipt, Some(delay)).await
    }
}
