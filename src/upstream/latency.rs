//! One backend's latency estimate for the `ewma` balancer: linkerd2-proxy's peak-EWMA, plus
//! a silence term so a backend that accepts and never answers is avoided at once.
//!
//! - A response slower than the estimate replaces it (the peak); a faster one moves it by a
//!   weight that depends on the time since the last sample, so the estimate follows time,
//!   not request rate.
//! - With no samples the estimate decays toward zero (half-life about 7 s), so a backend
//!   avoided for being slow is tried again once it may have recovered.
//! - A backend-side failure is a 1 s sample folded in without the peak: one stray 500 barely
//!   moves a busy backend, a backend failing everything costs 10 ms within 0.1 s.
//! - While requests are in flight, the time since the backend last finished one (or since
//!   it went from idle to busy) is a lower bound: a black-holed backend's cost climbs every
//!   millisecond it says nothing, before any timeout fires.
//!
//! The cost compared by power-of-two-choices is `estimate × (in_flight + 1) / weight`.
//! Updates are plain loads and stores: two racing samples lose one, which an estimate can
//! afford; the request path takes no lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Decay time constant (linkerd2-proxy's default).
const TAU_MS: f64 = 10_000.0;
/// What a failed attempt counts as.
const FAILURE_US: f64 = 1_000_000.0;

#[derive(Default)]
pub struct Latency {
    /// The estimate in microseconds, as f64 bits.
    estimate_us: AtomicU64,
    /// When the estimate was last updated (brace's clock, ms).
    stamp_ms: AtomicU64,
    /// When the backend last finished a request or went from idle to busy (ms).
    progress_ms: AtomicU64,
}

impl Latency {
    /// The stored estimate and the weight its age leaves it: `stored × weight` is the
    /// estimate now.
    fn stored_and_weight(&self, now: u64) -> (f64, f64) {
        let est = f64::from_bits(self.estimate_us.load(Relaxed));
        let age = now.saturating_sub(self.stamp_ms.load(Relaxed)) as f64;
        (est, (-age / TAU_MS).exp())
    }

    fn decayed(&self, now: u64) -> f64 {
        let (est, w) = self.stored_and_weight(now);
        est * w
    }

    /// Called when a request is sent and the backend had none in flight.
    pub fn busy(&self, now: u64) {
        self.progress_ms.store(now, Relaxed);
    }

    /// Records one finished attempt: `ok` is false for a backend-side failure.
    pub fn observe(&self, ok: bool, seconds: f64, now: u64) {
        let sample = seconds * 1e6;
        let (stored, w) = self.stored_and_weight(now);
        let next = if ok && sample > stored * w {
            sample
        } else if ok {
            stored * w + sample * (1.0 - w)
        } else {
            // At least 1 ms of weight, so back-to-back failures on one millisecond count.
            let w = w.min((-1.0 / TAU_MS).exp());
            stored * w + sample.max(FAILURE_US) * (1.0 - w)
        };
        self.estimate_us.store(next.to_bits(), Relaxed);
        self.stamp_ms.store(now, Relaxed);
        self.progress_ms.store(now, Relaxed);
    }

    /// The estimate in microseconds, at least the silence so far when `in_flight > 0`.
    pub fn estimate_us(&self, in_flight: i64, now: u64) -> f64 {
        let est = self.decayed(now);
        if in_flight > 0 {
            let silent = now.saturating_sub(self.progress_ms.load(Relaxed)) as f64 * 1000.0;
            est.max(silent)
        } else {
            est
        }
    }

    /// The balancer's cost: the estimate (at least 1 µs, so load still counts when no
    /// estimate exists yet) times the requests it would wait behind.
    pub fn cost(&self, in_flight: i64, weight: u32, now: u64) -> f64 {
        let est = self.estimate_us(in_flight, now).max(1.0);
        est * (in_flight.max(0) as f64 + 1.0) / f64::from(weight.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_sample_is_taken_at_once_and_decays_without_samples() {
        let l = Latency::default();
        l.observe(true, 0.002, 1_000);
        assert!((l.estimate_us(0, 1_000) - 2_000.0).abs() < 1.0);
        l.observe(true, 2.0, 1_001);
        assert!(l.estimate_us(0, 1_001) > 1_999_000.0, "peak taken");
        // Ten seconds without a sample: down to about 37%.
        let later = l.estimate_us(0, 11_001);
        assert!((700_000.0..760_000.0).contains(&later), "{later}");
    }

    #[test]
    fn a_sample_weighs_the_old_estimate_by_its_age_once() {
        let l = Latency::default();
        l.observe(true, 0.001, 1_000);
        // Ten seconds later, a 0 µs sample: the old 1,000 µs keeps e^-1 of its weight.
        l.observe(true, 0.0, 11_000);
        let est = l.estimate_us(0, 11_000);
        assert!((est - 367.9).abs() < 1.0, "{est}");
    }

    #[test]
    fn fast_samples_pull_the_estimate_down_by_time_not_count() {
        let l = Latency::default();
        l.observe(true, 1.0, 1_000);
        for t in 1_001..=1_010 {
            l.observe(true, 0.001, t);
        }
        let est = l.estimate_us(0, 1_010);
        assert!(
            est > 990_000.0,
            "10 ms of fast samples barely move it: {est}"
        );
        for t in (2_000..=30_000).step_by(1_000) {
            l.observe(true, 0.001, t);
        }
        assert!(l.estimate_us(0, 30_000) < 100_000.0);
    }

    #[test]
    fn failures_raise_the_estimate_within_a_fraction_of_a_second() {
        let l = Latency::default();
        l.observe(true, 0.001, 1_000);
        l.observe(false, 0.0005, 1_001);
        assert!(
            l.estimate_us(0, 1_001) < 2_000.0,
            "one stray failure barely counts"
        );
        for t in 1_002..1_100 {
            l.observe(false, 0.0005, t);
        }
        assert!(l.estimate_us(0, 1_100) > 9_000.0);
    }

    #[test]
    fn silence_while_busy_is_a_lower_bound() {
        let l = Latency::default();
        l.observe(true, 0.001, 1_000);
        l.busy(2_000);
        assert!(l.estimate_us(1, 2_000) < 2_000.0);
        assert!((l.estimate_us(1, 2_500) - 500_000.0).abs() < 1.0);
        assert!(l.estimate_us(0, 2_500) < 1_000.0, "idle: no silence term");
        assert!(
            (l.cost(3, 1, 2_500) - 2_000_000.0).abs() < 4.0,
            "× (in flight + 1)"
        );
    }
}
