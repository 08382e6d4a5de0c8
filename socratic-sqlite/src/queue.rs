//! The queue ports on the `messages` table: one table for every queue of a database, so a
//! stage's store writes and its queue's messages live in one file.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use socratic_core::queue::{
    Delivery, MessageId, OutgoingMessage, QueueConsumer, QueueError, QueueProducer, Receipt,
    ReceiveOptions, check_nack_delay,
};

use crate::activity::{POLL, ms};
use crate::db::{Database, Savepoint, now_ms};

/// What one look at a queue's table did.
struct Taken {
    deliveries: Vec<Delivery>,
    /// When the next hidden message becomes visible, if none was delivered.
    next_visible: Option<i64>,
    /// Messages moved to the dead-letter queue.
    dead_lettered: usize,
}

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
        self.call_with((), move |conn, ()| f(conn)).await
    }

    /// Runs `f` on the database thread with `input`, which comes back to be freed here.
    async fn call_with<I: Send + 'static, R: Send + 'static>(
        &self,
        input: I,
        f: impl FnOnce(&mut Connection, &I) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, QueueError> {
        let db = self.db.clone();
        self.db
            .call_with(input, f)
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
        self.db.activity(&self.name).changed(released);
        Ok(released)
    }

    fn take(
        conn: &mut Connection,
        name: &str,
        config: &SqliteQueueConfig,
        max: usize,
        visibility: Duration,
    ) -> rusqlite::Result<Taken> {
        let now = now_ms();
        let tx = Savepoint::begin(conn)?;
        let mut dead_lettered = 0;
        let mut visible: Vec<(i64, String, String, u32)> = {
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
        if let (Some(max_attempts), Some(dead_letter)) = (config.max_attempts, &config.dead_letter)
        {
            let mut exhausted = 0;
            for (seq, _, _, attempts) in &visible {
                if *attempts >= max_attempts {
                    tx.prepare_cached(
                        "UPDATE messages SET queue = ?2, attempts = 0, receipt = NULL, \
                         visible_at = ?3 WHERE seq = ?1",
                    )?
                    .execute(params![seq, dead_letter, now])?;
                    exhausted += 1;
                }
            }
            dead_lettered = exhausted;
            if exhausted > 0 {
                visible.retain(|(_, _, _, attempts)| *attempts < max_attempts);
            }
        }
        let mut deliveries = Vec::with_capacity(visible.len());
        {
            let mut update = tx.prepare_cached(
                "UPDATE messages SET attempts = ?2, visible_at = ?3, receipt = ?4 WHERE seq = ?1",
            )?;
            for (seq, id, body, attempts) in visible {
                // The message's sequence number first, so settling it finds the row by its
                // key; the ULID makes each delivery's receipt its own.
                let receipt = format!("{seq}.{}", ulid::Ulid::new());
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
            tx.prepare_cached("SELECT min(visible_at) FROM messages WHERE queue = ?1")?
                .query_row([name], |r| r.get::<_, Option<i64>>(0))
                .optional()?
                .flatten()
        } else {
            None
        };
        tx.release()?;
        Ok(Taken {
            deliveries,
            next_visible,
            dead_lettered,
        })
    }

    async fn enqueue(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<MessageId>, QueueError> {
        let ids = self
            .call_with((self.name.clone(), messages), |conn, (name, messages)| {
                let now = now_ms();
                let tx = Savepoint::begin(conn)?;
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
                tx.release()?;
                Ok(ids)
            })
            .await?;
        self.db.activity(&self.name).changed(ids.len());
        Ok(ids)
    }

    async fn settle(
        &self,
        receipt: &Receipt,
        requeue_after: Option<Duration>,
    ) -> Result<(), QueueError> {
        let receipt = receipt.0.clone();
        let Some(seq) = receipt
            .split_once('.')
            .and_then(|(seq, _)| seq.parse::<i64>().ok())
        else {
            return Err(QueueError::StaleReceipt);
        };
        let changed = self
            .call_with(receipt, move |conn, receipt| match requeue_after {
                None => conn
                    .prepare_cached("DELETE FROM messages WHERE seq = ?1 AND receipt = ?2")?
                    .execute(params![seq, receipt]),
                Some(delay) => conn
                    .prepare_cached(
                        "UPDATE messages SET receipt = NULL, visible_at = ?3 \
                         WHERE seq = ?1 AND receipt = ?2",
                    )?
                    .execute(params![seq, receipt, now_ms() + ms(delay)]),
            })
            .await?;
        if changed == 0 {
            return Err(QueueError::StaleReceipt);
        }
        if let Some(delay) = requeue_after {
            self.db
                .activity(&self.name)
                .changed(usize::from(delay.is_zero()));
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
        options.check()?;
        let visibility = options
            .visibility_timeout
            .unwrap_or(self.config.visibility_timeout);
        let deadline = tokio::time::Instant::now() + options.wait;
        let activity = self.db.activity(&self.name);
        loop {
            // Register for wake-ups before looking, so a send in between is not missed.
            let arrived = activity.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let generation = activity.generation();
            let next_visible = if activity.known_empty(now_ms()) {
                Some(activity.next_visible.load(Ordering::SeqCst))
            } else {
                let max = options.max_messages;
                let taken = self
                    .call_with(
                        (self.name.clone(), self.config.clone()),
                        move |conn, (name, config)| Self::take(conn, name, config, max, visibility),
                    )
                    .await?;
                if taken.dead_lettered > 0
                    && let Some(dead_letter) = &self.config.dead_letter
                {
                    self.db.activity(dead_letter).changed(taken.dead_lettered);
                }
                if !taken.deliveries.is_empty() {
                    return Ok(taken.deliveries);
                }
                activity.looked_empty(generation, taken.next_visible, now_ms());
                taken.next_visible
            };
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
        check_nack_delay(delay)?;
        self.settle(receipt, Some(delay)).await
    }

    fn max_attempts(&self) -> Option<u32> {
        // Without a dead-letter queue, messages are retried for ever.
        self.config
            .max_attempts
            .filter(|_| self.config.dead_letter.is_some())
    }
}
