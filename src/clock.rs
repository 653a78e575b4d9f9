//! brace's monotonic clock: time since the first call, never 0. State machines (breakers,
//! ejection, buckets) take readings of it as arguments, so tests step time by hand.

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the first reading, plus one.
pub fn now_ms() -> u64 {
    ms_at(Instant::now())
}

/// Milliseconds since the first reading, plus one, at `t`: one reading of the clock serves
/// both an `Instant` and this scale.
pub fn ms_at(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_millis() as u64 + 1
}

/// Microseconds since the first reading, plus one.
pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64 + 1
}
