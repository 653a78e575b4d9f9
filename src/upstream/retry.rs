//! The retry budget: retries may add at most `budget_percent` on top of the requests a pool
//! is serving, and `min_retries_per_second` are always allowed so a quiet pool can still retry
//! (Envoy's retry budget, linkerd's `ttl`-less variant).
//!
//! Approximation: counts are kept per whole second of brace's clock, not as a sliding window;
//! at the start of a second the allowance starts over. Two atomics per pool, no lock.

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::Duration;

crate::label_set! {
    /// What failed, as the `reason` label of `brace_upstream_retries_total`.
    pub enum RetryReason {
        ConnectError => "connect_error",
        Timeout => "timeout",
        Error => "error",
        Status502 => "502",
        Status503 => "503",
        Status504 => "504",
    }
}

/// Waits before retry `tries`: [`backoff_delay`] with a random factor.
pub async fn backoff(base: Duration, tries: u32) {
    if base.is_zero() {
        return;
    }
    tokio::time::sleep(backoff_delay(base, tries, fastrand::f64())).await;
}

/// `base * 2^(tries-1)` (doubling stops after 6), times `0.5 + jitter` for `jitter` in 0..1.
pub fn backoff_delay(base: Duration, tries: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1 << tries.saturating_sub(1).min(6));
    exp.mul_f64(0.5 + jitter)
}

#[derive(Default)]
pub struct RetryBudget {
    /// (second << 32) | requests in that second
    requests: AtomicU64,
    /// (second << 32) | retries in that second
    retries: AtomicU64,
}

fn bump(slot: &AtomicU64, second: u64) -> u64 {
    let mut cur = slot.load(Relaxed);
    loop {
        let (s, n) = (cur >> 32, cur & 0xffff_ffff);
        let next = if s == second {
            (s << 32) | (n + 1).min(0xffff_ffff)
        } else {
            (second << 32) | 1
        };
        match slot.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
            Ok(_) => return next & 0xffff_ffff,
            Err(v) => cur = v,
        }
    }
}

fn read(slot: &AtomicU64, second: u64) -> u64 {
    let cur = slot.load(Relaxed);
    if cur >> 32 == second {
        cur & 0xffff_ffff
    } else {
        0
    }
}

impl RetryBudget {
    /// Counts a first attempt.
    pub fn note_request(&self, now_ms: u64) {
        bump(&self.requests, now_ms / 1000);
    }

    /// Takes one retry from the budget if it allows one.
    pub fn try_retry(&self, now_ms: u64, budget_percent: u32, min_per_second: u32) -> bool {
        let second = now_ms / 1000;
        let allowed = (read(&self.requests, second) * u64::from(budget_percent) / 100)
            .max(u64::from(min_per_second));
        if read(&self.retries, second) >= allowed {
            return false;
        }
        bump(&self.retries, second) <= allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_a_share_of_requests_with_a_floor() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.note_request(5_000);
        }
        // 20% of 100 = 20 > floor 3.
        let granted = (0..50).filter(|_| b.try_retry(5_500, 20, 3)).count();
        assert_eq!(granted, 20);
        // A new second starts over: no requests yet, so the floor applies.
        let granted = (0..50).filter(|_| b.try_retry(6_000, 20, 3)).count();
        assert_eq!(granted, 3);
    }

    #[test]
    fn backoff_doubles_per_try_up_to_64_times_with_jitter_around_it() {
        let base = Duration::from_millis(10);
        let ms = |tries, jitter| backoff_delay(base, tries, jitter).as_millis();
        assert_eq!([ms(1, 0.5), ms(2, 0.5), ms(3, 0.5)], [10, 20, 40]);
        assert_eq!([ms(7, 0.5), ms(8, 0.5), ms(30, 0.5)], [640, 640, 640]);
        assert_eq!([ms(1, 0.0), ms(1, 0.999)], [5, 14]);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_sleeps_on_the_runtime_clock_and_zero_does_not_sleep() {
        let t0 = tokio::time::Instant::now();
        backoff(Duration::ZERO, 3).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
        backoff(Duration::from_millis(100), 2).await;
        let slept = t0.elapsed();
        assert!(
            (Duration::from_millis(100)..Duration::from_millis(300)).contains(&slept),
            "{slept:?}"
        );
    }
}
