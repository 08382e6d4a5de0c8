//! Opaque cursors: hex-encoded JSON of the last position returned.

use serde_json::Value;
use socratic_core::store::Cursor;

/// Encodes a position.
pub(crate) fn encode(position: &[&str]) -> Cursor {
    Cursor(hex::encode(Value::from(position.to_vec()).to_string()))
}

/// Decodes a position of `parts` strings, or `None` if the cursor was not issued here.
pub(crate) fn decode(cursor: &Cursor, parts: usize) -> Option<Vec<String>> {
    let bytes = hex::decode(&cursor.0).ok()?;
    let position: Vec<String> = serde_json::from_slice(&bytes).ok()?;
    (position.len() == parts).then_some(position)
}
