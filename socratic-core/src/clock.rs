//! Time and id generation, injected into every stage so tests can pin them.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant with millisecond precision, serialised as RFC 3339 with exactly three
/// fractional digits (`2026-11-29T01:28:07.123Z`), so that its text sorts like its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses the RFC 3339 form.
    pub fn parse(text: &str) -> Result<Self, time::error::Parse> {
        let at = OffsetDateTime::parse(text, &Rfc3339)?;
        let millis = at.unix_timestamp_nanos() / 1_000_000;
        Ok(Self(i64::try_from(millis).unwrap_or(i64::MAX)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            // Written digit by digit: every stored item and artifact has timestamps, and
            // seven padded integer formats cost ten times as much.
            Ok(at) if (0..=9999).contains(&at.year()) => {
                let mut text = *b"0000-00-00T00:00:00.000Z";
                let fields = [
                    (0, 4, at.year().unsigned_abs()),
                    (5, 2, u32::from(u8::from(at.month()))),
                    (8, 2, u32::from(at.day())),
                    (11, 2, u32::from(at.hour())),
                    (14, 2, u32::from(at.minute())),
                    (17, 2, u32::from(at.second())),
                    (20, 3, u32::from(at.millisecond())),
                ];
                for (start, width, mut value) in fields {
                    for digit in text[start..start + width].iter_mut().rev() {
                        *digit = b'0' + (value % 10) as u8;
                        value /= 10;
                    }
                }
                f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
            Ok(at) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
                at.millisecond()
            ),
            Err(_) => write!(f, "@{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw)
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {raw:?}: {e}")))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Timestamp(i64::try_from(nanos).unwrap_or(i64::MAX))
    }
}

/// A clock that starts at a fixed instant and advances by a fixed step on every reading, for
/// reproducible tests.
#[derive(Debug)]
pub struct SteppingClock {
    next: AtomicU64,
    step: u64,
}

impl SteppingClock {
    /// Starts at `start` and advances `step_millis` per call to [`Clock::now`].
    pub fn new(start: Timestamp, step_millis: u64) -> Self {
        Self {
            next: AtomicU64::new(u64::try_from(start.0).unwrap_or(0)),
            step: step_millis,
        }
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> Timestamp {
        let millis = self.next.fetch_add(self.step, Ordering::Relaxed);
        Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
    }
}

/// A source of new ULIDs.
pub trait IdGenerator: Send + Sync {
    /// A fresh ULID, monotonic within this generator.
    fn next_ulid(&self, now: Timestamp) -> ulid::Ulid;
}

/// ULIDs from the operating system's randomness, monotonic within one generator.
#[derive(Default)]
pub struct UlidGenerator {
    inner: Mutex<ulid::Generator>,
}

impl fmt::Debug for UlidGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UlidGenerator").finish_non_exhaustive()
    }
}

impl IdGenerator for UlidGenerator {
    fn next_ulid(&self, now: Timestamp) -> ulid::Ulid {
        let millis = u64::try_from(now.0).unwrap_or(0);
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
        let mut generator = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        generator
            .generate_from_datetime(at)
            .unwrap_or_else(|_| ulid::Ulid::from_parts(millis, rand_bits(millis)))
    }
}

/// Deterministic ULIDs (timestamp from the clock, a counter as the random part), for tests.
#[derive(Debug, Default)]
pub struct SequentialIds {
    counter: AtomicU64,
}

impl IdGenerator for SequentialIds {
    fn next_ulid(&self, now: Timestamp) -> ulid::Ulid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        ulid::Ulid::from_parts(u64::try_from(now.0).unwrap_or(0), u128::from(n))
    }
}

// Only reached when the monotonic generator overflows within one millisecond.
fn rand_bits(seed: u64) -> u128 {
    u128::from(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) << 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_fixed_width_and_round_trip() {
        let at = Timestamp::from_millis(1_764_379_687_123);
        assert_eq!(at.to_string(), "2025-11-29T01:28:07.123Z");
        assert_eq!(Timestamp::parse("2025-11-29T01:28:07.123Z").unwrap(), at);
        let json = serde_json::to_string(&at).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), at);
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn digit_by_digit_formatting_matches_the_calendar() {
        // From the epoch to the year 9999 in uneven steps, against `time`'s own formatting.
        let last = 253_402_300_799_999_i64;
        let mut millis = 0_i64;
        while millis <= last {
            let at =
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap();
            let expected = at
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap();
            assert_eq!(Timestamp::from_millis(millis).to_string(), expected);
            millis += 7_777_777_777;
        }
        assert_eq!(
            Timestamp::from_millis(last).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn stepping_clock_and_sequential_ids_are_reproducible() {
        let clock = SteppingClock::new(Timestamp::from_millis(1000), 5);
        assert_eq!(clock.now(), Timestamp::from_millis(1000));
        assert_eq!(clock.now(), Timestamp::from_millis(1005));
        let ids = SequentialIds::default();
        let a = ids.next_ulid(Timestamp::from_millis(1000));
        let b = ids.next_ulid(Timestamp::from_millis(1000));
        assert!(a < b);
        assert_eq!(a.timestamp_ms(), 1000);
    }

    #[test]
    fn ulid_generator_is_monotonic() {
        let ids = UlidGenerator::default();
        let now = Timestamp::from_millis(1_764_379_687_123);
        let a = ids.next_ulid(now);
        let b = ids.next_ulid(now);
        assert!(a < b);
    }
}
