//! Hedged requests' state in a pool: the budget that bounds them and the pool's measured time
//! to answer, whose percentile (`hedge = { after = "p95" }`) says when a hedge goes out.
//!
//! - **Budget**: a token bucket in thousandths. Each request on a hedging route adds
//!   `max_extra_percent × 10` (5% → 50, a twentieth of a hedge); a hedge takes 1,000. So over
//!   any stretch hedges add at most that share of the route's requests, plus a burst of
//!   [`BURST`] saved while no hedge was needed. It starts empty: no hedge before the pool has
//!   served requests enough to pay for one.
//! - **Time to answer**: a log-scaled histogram (four buckets per doubling, from 1 µs to about
//!   an hour) of successful attempts' times from request header sent to response header,
//!   in two generations of [`GENERATION_MS`]: a percentile reads the current generation and
//!   the one before, so it follows the last 10 to 20 seconds. With fewer than [`MIN_SAMPLES`]
//!   samples there is no percentile, and no hedge. Recording is one atomic add; a percentile
//!   is recomputed at most every [`RECOMPUTE_MS`].
//!
//! Shared with the pool this one replaced (same name), so a reload keeps what was measured.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

crate::label_set! {
    /// The `result` label of `brace_upstream_hedges_total`.
    pub enum HedgeResult {
        /// A hedge went out.
        Sent => "sent",
        /// It answered before the first attempt, and carried the request.
        Won => "won",
    }
}

/// Hedges a pool may save up while none is needed.
pub const BURST: u64 = 10;
/// A generation of the time-to-answer histogram.
pub const GENERATION_MS: u64 = 10_000;
/// Samples needed before a percentile is trusted.
pub const MIN_SAMPLES: u64 = 20;
/// How long a computed percentile is reused.
pub const RECOMPUTE_MS: u64 = 100;
pub(crate) const BUCKETS: usize = 128;

pub struct Hedging {
    /// Thousandths of a hedge.
    tokens: AtomicU64,
    generations: [Generation; 2],
    /// (percentile in tenths << 48) | (computed at, ms since the first reading, 48 bits)
    cached_at: AtomicU64,
    cached_us: AtomicU64,
}

struct Generation {
    /// The generation's number (`now / GENERATION_MS`) + 1; 0 = never used.
    epoch: AtomicU64,
    counts: [AtomicU64; BUCKETS],
}

impl Default for Generation {
    fn default() -> Self {
        Generation {
            epoch: AtomicU64::new(0),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Default for Hedging {
    fn default() -> Self {
        Hedging {
            tokens: AtomicU64::new(0),
            generations: Default::default(),
            cached_at: AtomicU64::new(0),
            cached_us: AtomicU64::new(0),
        }
    }
}

/// The bucket of `us` microseconds: four per doubling (from 4 µs; less counts as 4).
pub(crate) fn bucket(us: u64) -> usize {
    let us = us.max(4);
    let log = 63 - us.leading_zeros() as usize;
    let quarter = (us >> (log - 2)) & 3;
    (log * 4 + quarter as usize).min(BUCKETS - 1)
}

/// The largest time in bucket `i` (an upper bound: a hedge goes out a little late, never early).
pub(crate) fn upper_us(i: usize) -> u64 {
    let (log, quarter) = ((i / 4).max(2), (i % 4) as u64);
    ((4 + quarter + 1) << (log - 2)) - 1
}

impl Hedging {
    /// A request on a hedging route: its share of a hedge goes into the budget.
    pub fn note_request(&self, max_extra_percent: u32) {
        let add = u64::from(max_extra_percent) * 10;
        let _ = self
            .tokens
            .fetch_update(Relaxed, Relaxed, |t| Some((t + add).min(BURST * 1000)));
    }

    /// Takes one hedge from the budget if it holds one.
    pub fn try_hedge(&self) -> bool {
        self.tokens
            .fetch_update(Relaxed, Relaxed, |t| t.checked_sub(1000))
            .is_ok()
    }

    /// A successful attempt's time to answer.
    pub fn record(&self, answered: Duration, now_ms: u64) {
        let epoch = now_ms / GENERATION_MS + 1;
        let g = &self.generations[(epoch & 1) as usize];
        let seen = g.epoch.load(Relaxed);
        if seen != epoch
            && g.epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            // A new generation starts empty (a sample racing this reset may be lost).
            for c in &g.counts {
                c.store(0, Relaxed);
            }
        }
        let us = u64::try_from(answered.as_micros()).unwrap_or(u64::MAX);
        g.counts[bucket(us)].fetch_add(1, Relaxed);
    }

    /// The time to answer at `tenths` (950 = p95) over the last 10 to 20 seconds, or `None`
    /// with fewer than [`MIN_SAMPLES`] samples (not kept: the next call looks again).
    pub fn percentile(&self, tenths: u16, now_ms: u64) -> Option<Duration> {
        const MASK: u64 = (1 << 48) - 1;
        let at = self.cached_at.load(Relaxed);
        if at >> 48 == u64::from(tenths) && now_ms.saturating_sub(at & MASK) < RECOMPUTE_MS {
            return Some(Duration::from_micros(self.cached_us.load(Relaxed)));
        }
        let us = self.compute(tenths, now_ms)?;
        self.cached_us.store(us, Relaxed);
        self.cached_at
            .store((u64::from(tenths) << 48) | (now_ms & MASK), Relaxed);
        Some(Duration::from_micros(us))
    }

    fn compute(&self, tenths: u16, now_ms: u64) -> Option<u64> {
        let epoch = now_ms / GENERATION_MS + 1;
        let [a, b] = self.generations.each_ref().map(|g| {
            let e = g.epoch.load(Relaxed);
            e == epoch || e + 1 == epoch
        });
        let count = |i: usize| {
            let c = |live: bool, g: &Generation| if live { g.counts[i].load(Relaxed) } else { 0 };
            c(a, &self.generations[0]) + c(b, &self.generations[1])
        };
        let total: u64 = (0..BUCKETS).map(count).sum();
        if total < MIN_SAMPLES {
            return None;
        }
        // The first bucket at or under which `tenths` of the samples lie.
        let want = (total * u64::from(tenths)).div_ceil(1000);
        let mut seen = 0;
        for i in 0..BUCKETS {
            seen += count(i);
            if seen >= want {
                return Some(upper_us(i));
            }
        }
        Some(upper_us(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_four_per_doubling_and_bound_their_values() {
        for us in [4, 5, 7, 8, 100, 999, 1_000, 4_096, 50_000, 3_600_000_000] {
            let i = bucket(us);
            assert!(
                upper_us(i) >= us,
                "{us} in bucket {i} up to {}",
                upper_us(i)
            );
            assert!(
                i == 8 || upper_us(i - 1) < us,
                "{us}: bucket {i} is not the first"
            );
            // At most a quarter of a doubling above: the bound is within 25%.
            assert!(upper_us(i) as f64 <= us as f64 * 1.25 + 1.0, "{us}");
        }
    }

    #[test]
    fn the_budget_pays_a_share_of_requests_and_saves_a_burst() {
        let h = Hedging::default();
        assert!(!h.try_hedge(), "it starts empty");
        for _ in 0..19 {
            h.note_request(5);
        }
        assert!(!h.try_hedge(), "19 requests pay for 0.95 of a hedge at 5%");
        h.note_request(5);
        assert!(h.try_hedge());
        assert!(!h.try_hedge());
        // 1,000 requests at 5% would pay for 50: only a burst of 10 is kept.
        for _ in 0..1000 {
            h.note_request(5);
        }
        let granted = (0..50).filter(|_| h.try_hedge()).count();
        assert_eq!(granted, BURST as usize);
        // Over any stretch: at most 5% of requests plus the burst.
        let mut sent = 0;
        for _ in 0..10_000 {
            h.note_request(5);
            sent += usize::from(h.try_hedge());
        }
        assert_eq!(sent, 500);
    }

    #[test]
    fn the_percentile_follows_the_last_two_generations_and_needs_samples() {
        let h = Hedging::default();
        let ms = Duration::from_millis;
        for _ in 0..(MIN_SAMPLES - 1) {
            h.record(ms(2), 1_000);
        }
        assert_eq!(h.percentile(950, 1_000), None, "too few samples");
        // 95 answers at 2 ms and 5 at 100 ms: p95 is about 2 ms, p99 about 100 ms.
        let h = Hedging::default();
        for i in 0..100 {
            h.record(if i < 95 { ms(2) } else { ms(100) }, 1_000);
        }
        let p99 = h.percentile(990, 1_000).unwrap();
        assert!(p99 >= ms(100) && p99 <= ms(125), "{p99:?}");
        let p95 = h.percentile(950, 1_000).unwrap();
        assert!(p95 >= ms(2) && p95 <= ms(3), "{p95:?}");
        // The answer is reused for RECOMPUTE_MS (one percentile is kept), then recomputed.
        for _ in 0..1000 {
            h.record(ms(50), 1_050);
        }
        assert_eq!(h.percentile(950, 1_050), Some(p95));
        let later = h.percentile(950, 1_000 + RECOMPUTE_MS).unwrap();
        assert!(later >= ms(50) && later <= ms(63), "{later:?}");
        // Two generations on, the old samples are gone: too few again.
        assert_eq!(h.percentile(950, 1_000 + 2 * GENERATION_MS), None);
        h.record(ms(7), 1_000 + 2 * GENERATION_MS);
        assert_eq!(
            h.percentile(950, 1_000 + 2 * GENERATION_MS + RECOMPUTE_MS),
            None
        );
    }

    #[test]
    fn each_percentile_is_its_own_and_an_empty_pool_has_none() {
        let h = Hedging::default();
        assert_eq!(h.percentile(950, 5), None);
        for i in 0..200u64 {
            h.record(Duration::from_micros(1000 + i * 100), 5);
        }
        let p50 = h.percentile(500, 5).unwrap();
        let p99 = h.percentile(990, 5).unwrap();
        assert!(p50 < p99, "{p50:?} {p99:?}");
        // Asking another percentile at once recomputes rather than reusing the last answer.
        assert_eq!(h.percentile(500, 6).unwrap(), p50);
    }
}
