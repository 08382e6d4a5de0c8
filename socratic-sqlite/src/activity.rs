//! What this process knows of each queue between looks at its table: kept per database, so
//! every queue handle of a process shares it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The longest a receive sleeps between looks at the table, so a message sent by another
/// process is noticed even though its send wakes nobody here.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// A duration in whole milliseconds.
pub(crate) fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What this process knows of a queue between looks at its table, so that idle receivers do
/// not query an empty queue again and again. Sends, nacks and releases in this process bump
/// the generation; a look that found nothing records the generation it saw and when the next
/// hidden message becomes visible. Messages sent by another process are noticed within
/// [`POLL`], since a recorded look expires after it.
#[derive(Debug)]
pub(crate) struct Activity {
    pub(crate) arrived: Notify,
    generation: AtomicU64,
    empty_at: AtomicU64,
    looked_at: AtomicI64,
    pub(crate) next_visible: AtomicI64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            arrived: Notify::new(),
            generation: AtomicU64::new(0),
            empty_at: AtomicU64::new(u64::MAX),
            looked_at: AtomicI64::new(0),
            next_visible: AtomicI64::new(0),
        }
    }
}

impl Activity {
    /// Something changed; wake a receiver per message that may have become visible.
    pub(crate) fn changed(&self, visible: usize) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for _ in 0..visible {
            self.arrived.notify_one();
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn looked_empty(&self, generation: u64, next_visible: Option<i64>, now: i64) {
        self.looked_at.store(now, Ordering::SeqCst);
        self.next_visible
            .store(next_visible.unwrap_or(i64::MAX), Ordering::SeqCst);
        self.empty_at.store(generation, Ordering::SeqCst);
    }

    /// Whether a recent look found nothing, nothing changed since, and nothing hidden is due.
    pub(crate) fn known_empty(&self, now: i64) -> bool {
        self.empty_at.load(Ordering::SeqCst) == self.generation()
            && now < self.next_visible.load(Ordering::SeqCst)
            && now - self.looked_at.load(Ordering::SeqCst) < ms(POLL)
    }
}
