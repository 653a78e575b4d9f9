//! What each side of a canary did over the last `window`: requests, failures and a latency
//! histogram per second, in a ring of one-second buckets. Recording is a few atomic adds; a
//! summary (once a second, by the rollout's judge) sums the buckets still in the window.

use crate::upstream::hedge::{bucket, upper_us, BUCKETS};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The two sides compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Baseline = 0,
    Canary = 1,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Baseline => "baseline",
            Side::Canary => "canary",
        }
    }
}

struct Second {
    /// The second (`now_ms / 1000 + 1`) this bucket counts; 0 = never used.
    epoch: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

impl Default for Second {
    fn default() -> Self {
        Second {
            epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One side's ring.
struct Ring(Vec<Second>);

/// Both sides' recent requests.
pub struct Window {
    secs: u64,
    sides: [Ring; 2],
}

/// One side over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub failures: u64,
    /// The 99th percentile of the time to answer (an upper bound of its bucket).
    pub p99: Duration,
}

impl Summary {
    /// Failures per request, 0 without requests.
    pub fn failure_share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }
}

impl Window {
    pub fn new(window: Duration) -> Window {
        let secs = window.as_secs().max(1);
        let ring = || Ring((0..secs).map(|_| Second::default()).collect());
        Window {
            secs,
            sides: [ring(), ring()],
        }
    }

    /// One request on `side` ended at `now_ms`: `failed` (a 5xx, or brace's own 502/503/504),
    /// after `took`.
    pub fn record(&self, side: Side, failed: bool, took: Duration, now_ms: u64) {
        let epoch = now_ms / 1000 + 1;
        let ring = &self.sides[side as usize].0;
        let s = &ring[(epoch % self.secs) as usize];
        let seen = s.epoch.load(Relaxed);
        if seen != epoch
            && s.epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            // A new second starts empty (a sample racing this reset may be lost).
            s.requests.store(0, Relaxed);
            s.failures.store(0, Relaxed);
            for c in &s.latency {
                c.store(0, Relaxed);
            }
        }
        s.requests.fetch_add(1, Relaxed);
        if failed {
            s.failures.fetch_add(1, Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        s.latency[bucket(us)].fetch_add(1, Relaxed);
    }

    /// `side` over the window ending at `now_ms`.
    pub fn summary(&self, side: Side, now_ms: u64) -> Summary {
        let now = now_ms / 1000 + 1;
        let mut out = Summary::default();
        let mut hist = [0u64; BUCKETS];
        for s in &self.sides[side as usize].0 {
            let e = s.epoch.load(Relaxed);
            if e == 0 || e + self.secs <= now || e > now {
                continue;
            }
            out.requests += s.requests.load(Relaxed);
            out.failures += s.failures.load(Relaxed);
            for (h, c) in hist.iter_mut().zip(&s.latency) {
                *h += c.load(Relaxed);
            }
        }
        let total: u64 = hist.iter().sum();
        if total > 0 {
            let rank = total - total / 100; // the 99th percentile's rank, 1-based
            let mut seen = 0;
            for (i, n) in hist.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    out.p99 = Duration::from_micros(upper_us(i));
                    break;
                }
            }
        }
        out
    }

    /// Forgets everything (a rollout that resumes is judged afresh).
    pub fn clear(&self) {
        for ring in &self.sides {
            for s in &ring.0 {
                s.epoch.store(0, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_slides_and_counts_each_side() {
        let w = Window::new(Duration::from_secs(10));
        let ms = Duration::from_millis;
        for i in 0..100 {
            w.record(Side::Baseline, false, ms(10), 1_000 + i);
            w.record(
                Side::Canary,
                i % 10 == 0,
                ms(if i < 98 { 10 } else { 100 }),
                1_000 + i,
            );
        }
        let b = w.summary(Side::Baseline, 2_000);
        assert_eq!((b.requests, b.failures), (100, 0));
        assert!(b.p99 >= ms(10) && b.p99 < ms(12), "{:?}", b.p99);
        let c = w.summary(Side::Canary, 2_000);
        assert_eq!((c.requests, c.failures), (100, 10));
        assert!((c.failure_share() - 0.1).abs() < 1e-9);
        assert!(
            c.p99 >= ms(100),
            "two slow of 100 put the p99 among them: {:?}",
            c.p99
        );
        // Ten seconds on, those seconds have left the window.
        assert_eq!(w.summary(Side::Canary, 11_000).requests, 0);
        assert_eq!(w.summary(Side::Canary, 10_999).requests, 100);
        // A bucket reused a window later starts empty.
        w.record(Side::Canary, false, ms(1), 11_500);
        assert_eq!(w.summary(Side::Canary, 11_500).requests, 1);
        w.clear();
        assert_eq!(w.summary(Side::Canary, 11_500).requests, 0);
    }
}
