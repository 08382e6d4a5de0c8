//! Per-entry results of a batch send (`SendMessageBatch`, `PutEvents`), filled in as entries
//! are checked locally and answered by the service.

use socratic_core::queue::{MessageId, OutgoingMessage, QueueError};

/// The messages that pass `check`, with their positions, `size` at a time (the service's
/// largest batch), and the results with every failed check recorded: an invalid entry fails
/// alone and is never sent.
pub(crate) fn checked_batches(
    messages: &[OutgoingMessage],
    size: usize,
    check: impl Fn(&OutgoingMessage) -> Result<(), QueueError>,
) -> (EntryResults, Vec<Vec<(usize, &OutgoingMessage)>>) {
    let mut results = EntryResults::new(messages.len());
    let mut valid = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        match check(message) {
            Ok(()) => valid.push((i, message)),
            Err(e) => results.set(i, Err(e)),
        }
    }
    let batches = valid.chunks(size).map(<[_]>::to_vec).collect();
    (results, batches)
}

/// One slot per message, in the caller's order.
pub(crate) struct EntryResults(Vec<Option<Result<MessageId, QueueError>>>);

impl EntryResults {
    /// No entry answered yet.
    pub(crate) fn new(len: usize) -> Self {
        Self((0..len).map(|_| None).collect())
    }

    /// Records the result of entry `index`.
    pub(crate) fn set(&mut self, index: usize, result: Result<MessageId, QueueError>) {
        if let Some(slot) = self.0.get_mut(index) {
            *slot = Some(result);
        }
    }

    /// Every result; an entry the service did not answer counts as unavailable (retryable).
    pub(crate) fn finish(self) -> Vec<Result<MessageId, QueueError>> {
        self.0
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(QueueError::Unavailable {
                        message: "no result for entry".to_owned(),
                    })
                })
            })
            .collect()
    }
}
