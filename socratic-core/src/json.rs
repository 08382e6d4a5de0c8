//! JSON serialisation through a per-thread buffer.
//!
//! `serde_json::to_vec` grows its buffer by doubling: a 40 KB artifact is copied about a dozen
//! times on its way, and each large growth takes fresh pages from the kernel. Serialising into
//! a buffer kept by the thread, then copying the result out once at its final size, does
//! neither. The pipeline writes several such documents per model call.

use std::cell::RefCell;

use serde::Serialize;

/// A kept buffer larger than this is given back after use, so that one huge document does
/// not stay resident on every thread.
const KEPT_CAPACITY: usize = 1 << 20;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `value` as compact JSON, as `serde_json::to_vec` writes it.
///
/// # Errors
/// As `serde_json::to_vec`: a map with keys that are not strings, or a `Serialize`
/// implementation that fails.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    BUFFER.with(|cell| {
        // A serialiser that serialises again from inside (none of ours does) gets a fresh one.
        let Ok(mut buffer) = cell.try_borrow_mut() else {
            return serde_json::to_vec(value);
        };
        buffer.clear();
        let written = serde_json::to_writer(&mut *buffer, value);
        let bytes = written.map(|()| buffer.as_slice().to_vec());
        if buffer.capacity() > KEPT_CAPACITY {
            *buffer = Vec::new();
        }
        bytes
    })
}

/// `value` as compact JSON text, as `serde_json::to_string` writes it.
///
/// # Errors
/// As [`to_vec`].
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let bytes = to_vec(value)?;
    // serde_json writes only UTF-8.
    String::from_utf8(bytes).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_serde_json_writes() {
        let value = serde_json::json!({"b": [1, 2.5, null], "a": "é \"quoted\" \n", "c": {}});
        assert_eq!(to_vec(&value).unwrap(), serde_json::to_vec(&value).unwrap());
        assert_eq!(
            to_string(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn each_result_is_its_own_and_sized_to_fit() {
        let long = "x".repeat(10_000);
        let first = to_vec(&long).unwrap();
        let second = to_vec("short").unwrap();
        assert_eq!(first.len(), 10_002);
        assert_eq!(first.capacity(), first.len());
        assert_eq!(second, b"\"short\"");
    }

    #[test]
    fn a_document_larger_than_the_kept_buffer_is_written_whole() {
        let huge = "y".repeat(KEPT_CAPACITY * 2);
        let bytes = to_vec(&huge).unwrap();
        assert_eq!(bytes.len(), huge.len() + 2);
        BUFFER.with(|cell| assert!(cell.borrow().capacity() <= KEPT_CAPACITY));
    }

    #[test]
    fn errors_are_serde_jsons() {
        let map: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert!(to_vec(&map).is_err());
    }
}
