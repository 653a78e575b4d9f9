//! One backend's adaptive concurrency limit: how many requests brace lets it hold at once,
//! learnt from the latency it answers with (TCP Vegas, as Netflix's concurrency-limits
//! applies it to servers).
//!
//! - **Baseline.** The lowest latency seen is the backend's no-queue latency. It falls at once
//!   to a lower sample; it rises (slowly, 5% of the gap per window) only in windows where
//!   brace was not holding the backend at its limit: a backend that got slower (a deploy) is
//!   re-learnt, while brace's own queueing can never talk it up. No periodic re-measurement,
//!   so no dip in admitted traffic (Envoy's `adaptive_concurrency` drops to its minimum for
//!   that, and its users see 503s).
//! - **Queue estimate.** Little's law: with `n` in flight, a median latency `rtt` and the
//!   baseline `b`, about `n × (1 − b/rtt)` requests are waiting inside the backend.
//! - **Each window** (`window`, once the backend has answered in it): a queue above
//!   `beta = 6·log10(limit)` cuts the limit in proportion (`limit × b/rtt + alpha`), reacting
//!   within one window; below `alpha = 3·log10(limit)` while requests found the backend full,
//!   it grows by `log10(limit)` (by `beta` with no queue at all); between, it holds. A window
//!   where more than a tenth of the answers are failures cuts it by 10%. The median is used, so
//!   one slow request (a GC pause, a cold cache) moves nothing.
//! - **Between windows** a request that finds every backend full may raise a backend's limit
//!   by one at once, as long as that backend's last window showed no queueing
//!   ([`Limiter::grow`]): a burst on an idle backend is admitted, not queued, and only a
//!   backend that slows down stops the growth.
//!
//! The request path reads one atomic (`limit`) per candidate; a finished attempt locks the
//! window for a few stores, and one of them per window does the arithmetic.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;

/// Samples kept per window for the median; later ones replace a random earlier one.
const SAMPLES: usize = 64;

/// Latency above the baseline by less than this is not queueing: scheduling, the network and
/// the clock's resolution move a sample by that much, and a backend answering within a
/// millisecond of its best needs no protection.
const SLACK_US: f64 = 1_000.0;

/// The limits a limiter works within (from `[upstream.NAME.adaptive]`).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
    pub window_ms: u64,
}

pub struct Limiter {
    /// The limit in force, what `Pool::pick` compares the in-flight count with.
    limit: AtomicU32,
    /// The last window showed the backend queueing: no growth on demand.
    congested: AtomicBool,
    /// Requests found this backend at its limit during the current window.
    bound: AtomicBool,
    /// Answers per second in the last window, for sizing the pool's queue.
    rate: AtomicU32,
    /// The most requests in flight when one was sent, in this window.
    peak: AtomicU32,
    /// The median time to answer of the successful answers in the last window that had any
    /// (µs; 0 = none yet): what `upstream::slow` compares across a pool.
    median_us: AtomicU32,
    window: Mutex<Window>,
}

/// What the current window has seen, and the estimate carried across windows.
struct Window {
    start_ms: u64,
    samples: [u32; SAMPLES],
    /// Successful answers in the window (may exceed `SAMPLES`).
    ok: u32,
    failures: u32,
    /// No-queue latency in µs; 0 = none yet.
    baseline_us: f64,
    /// The limit with its fraction.
    limit: f64,
}

/// One window's verdict, for the caller's metrics and events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    pub limit: u32,
    pub grew: bool,
}

impl Limiter {
    pub fn new(initial: u32) -> Limiter {
        Limiter {
            limit: AtomicU32::new(initial),
            congested: AtomicBool::new(false),
            bound: AtomicBool::new(false),
            rate: AtomicU32::new(0),
            peak: AtomicU32::new(0),
            median_us: AtomicU32::new(0),
            window: Mutex::new(Window {
                start_ms: 0,
                samples: [0; SAMPLES],
                ok: 0,
                failures: 0,
                baseline_us: 0.0,
                limit: f64::from(initial),
            }),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Relaxed)
    }

    /// Answers per second in the last window.
    pub fn rate(&self) -> u32 {
        self.rate.load(Relaxed)
    }

    /// The median time to answer in the last window with successful answers (µs; 0 = none).
    pub fn median_us(&self) -> u32 {
        self.median_us.load(Relaxed)
    }

    /// True when the last window showed requests waiting inside the backend.
    pub fn congested(&self) -> bool {
        self.congested.load(Relaxed)
    }

    /// A request was sent with `in_flight` now in flight (counting it).
    pub fn sent(&self, in_flight: u32) {
        if in_flight >= self.limit() {
            self.full();
        }
        if in_flight > self.peak.load(Relaxed) {
            self.peak.fetch_max(in_flight, Relaxed);
        }
    }

    /// A request found this backend at its limit.
    pub fn full(&self) {
        if !self.bound.load(Relaxed) {
            self.bound.store(true, Relaxed);
        }
    }

    /// Raises the limit by one when the backend showed no queueing in its last window (and
    /// the limit is below `max`); true when it did.
    pub fn grow(&self, b: &Bounds) -> bool {
        if self.congested() {
            return false;
        }
        let Ok(mut w) = self.window.lock() else {
            return false;
        };
        let cur = self.limit();
        if cur >= b.max {
            return false;
        }
        w.limit = f64::from(cur + 1);
        self.limit.store(cur + 1, Relaxed);
        true
    }

    /// Records one finished attempt (`ok` false for the backend's failure) of `us`
    /// microseconds at `now` (ms). Returns the new limit when this closed a window.
    pub fn observe(&self, b: &Bounds, ok: bool, us: u64, now: u64) -> Option<Update> {
        let Ok(mut w) = self.window.lock() else {
            return None;
        };
        if w.start_ms == 0 {
            w.start_ms = now;
        }
        if ok {
            let us = us.min(u64::from(u32::MAX)) as u32;
            let n = w.ok as usize;
            if n < SAMPLES {
                w.samples[n] = us;
            } else {
                let i = fastrand::usize(..=n);
                if i < SAMPLES {
                    w.samples[i] = us;
                }
            }
            w.ok = w.ok.saturating_add(1);
        } else {
            w.failures = w.failures.saturating_add(1);
        }
        let elapsed = now.saturating_sub(w.start_ms);
        if elapsed < b.window_ms {
            return None;
        }
        let bound = self.bound.swap(false, Relaxed);
        let before = w.limit;
        let peak = self.peak.swap(0, Relaxed);
        if w.ok > 0 {
            let n = (w.ok as usize).min(SAMPLES);
            let kept = &mut w.samples[..n];
            kept.sort_unstable();
            self.median_us.store(kept[n / 2], Relaxed);
        }
        let (limit, congested) = w.close(bound, peak, b);
        let answers = u64::from(w.ok + w.failures);
        self.rate
            .store((answers * 1000 / elapsed.max(1)) as u32, Relaxed);
        w.start_ms = now;
        w.ok = 0;
        w.failures = 0;
        w.limit = limit;
        let rounded = (limit.round() as u32).clamp(b.min, b.max);
        self.limit.store(rounded, Relaxed);
        self.congested.store(congested, Relaxed);
        Some(Update {
            limit: rounded,
            grew: limit > before,
        })
    }
}

impl Window {
    /// The window's verdict: the next limit, and whether the backend is queueing.
    fn close(&mut self, bound: bool, peak: u32, b: &Bounds) -> (f64, bool) {
        let (min, max) = (f64::from(b.min), f64::from(b.max));
        let limit = self.limit;
        let answers = self.ok + self.failures;
        if answers > 0 && self.failures * 10 > answers {
            return ((limit * 0.9).clamp(min, max), true);
        }
        if self.ok == 0 {
            return (limit, false);
        }
        let kept = &mut self.samples[..(self.ok as usize).min(SAMPLES)];
        kept.sort_unstable();
        let fastest = f64::from(kept[0]).max(1.0);
        let rtt = f64::from(kept[kept.len() / 2]).max(1.0);
        if self.baseline_us == 0.0 || fastest < self.baseline_us {
            self.baseline_us = fastest;
        } else if !bound {
            self.baseline_us += (fastest - self.baseline_us) * 0.05;
        }
        let base = self.baseline_us + SLACK_US;
        // While held at the limit the backend had `limit` in flight; otherwise its peak.
        let in_flight = if bound {
            limit
        } else {
            f64::from(peak).min(limit)
        };
        let queue = in_flight * (1.0 - base / rtt).max(0.0);
        let log = limit.log10().max(1.0);
        let (alpha, beta) = (3.0 * log, 6.0 * log);
        let next = if queue > beta {
            (limit * base / rtt + alpha).min(limit)
        } else if queue < alpha && bound {
            limit + if queue <= log { beta } else { log }
        } else {
            limit
        };
        (next.clamp(min, max), queue >= alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        min: 2,
        max: 1000,
        window_ms: 100,
    };

    /// A backend of `workers` workers, `service_ms` each, holding `in_flight` requests: every
    /// answer waits behind the queue (Little's law), as the capacity test backend does.
    fn latency_us(workers: u32, service_ms: u64, in_flight: u32) -> u64 {
        service_ms * 1000 * u64::from(in_flight.max(workers)) / u64::from(workers)
    }

    /// Feeds answers 10 ms apart until a window closes: `in_flight` at its peak, `held` when
    /// requests found the backend full, answer `k` taking `us(k)` µs.
    fn window(l: &Limiter, t: &mut u64, in_flight: u32, held: bool, us: impl Fn(u64) -> u64) {
        l.sent(in_flight);
        if held {
            l.full();
        }
        for k in 0..20 {
            *t += 10;
            if l.observe(&B, true, us(k), *t).is_some() {
                return;
            }
        }
        panic!("no window closed");
    }

    /// `windows` windows of a backend held at the limiter's own limit (demand above capacity).
    fn saturate(l: &Limiter, t: &mut u64, windows: u32, workers: u32, service_ms: u64) {
        for _ in 0..windows {
            let limit = l.limit();
            window(l, t, limit, true, |k| {
                latency_us(workers, service_ms, limit) + k
            });
        }
    }

    fn light(l: &Limiter, t: &mut u64, windows: u32, us: u64) {
        for _ in 0..windows {
            window(l, t, 1, false, |_| us);
        }
    }

    #[test]
    fn an_overloaded_backend_is_held_near_its_capacity() {
        // 4 workers of 50 ms: anything above 4 in flight only queues. It crashes above 16.
        let l = Limiter::new(10);
        let mut t = 1;
        light(&l, &mut t, 5, 50_000);
        saturate(&l, &mut t, 100, 4, 50);
        let limit = l.limit();
        assert!((5..=11).contains(&limit), "limit {limit}");
        assert!(l.congested());
    }

    #[test]
    fn a_high_starting_limit_falls_within_one_window_of_queueing() {
        let l = Limiter::new(40);
        let mut t = 1;
        light(&l, &mut t, 1, 50_000);
        saturate(&l, &mut t, 1, 4, 50);
        assert!(l.limit() <= 16, "limit {} after one window", l.limit());
    }

    #[test]
    fn the_limit_grows_while_the_backend_does_not_queue() {
        // 100 workers: up to 100 in flight adds no latency.
        let l = Limiter::new(10);
        let mut t = 1;
        saturate(&l, &mut t, 30, 100, 20);
        assert!(l.limit() >= 90, "limit {}", l.limit());
        assert!(l.limit() <= 130, "limit {}", l.limit());
    }

    #[test]
    fn sub_millisecond_jitter_is_not_queueing() {
        // A local backend answering in 20 to 400 µs (a busy proxy's own scheduling in it):
        // the limit grows with demand instead of queueing requests in front of it.
        let l = Limiter::new(10);
        let mut t = 1;
        for w in 0..20u64 {
            let limit = l.limit();
            window(&l, &mut t, limit, true, |k| 20 + (k * 37 + w * 11) % 380);
            assert!(!l.congested());
        }
        assert!(l.limit() > 50, "limit {}", l.limit());
    }

    #[test]
    fn one_slow_answer_moves_nothing() {
        let l = Limiter::new(20);
        let mut t = 1;
        for _ in 0..3 {
            window(&l, &mut t, 10, false, |_| 10_000);
        }
        let before = l.limit();
        // A GC pause: one answer of 2 s in the window.
        window(&l, &mut t, 10, false, |k| {
            if k == 0 {
                2_000_000
            } else {
                10_000
            }
        });
        assert_eq!(l.limit(), before);
    }

    #[test]
    fn failures_cut_and_the_limit_never_falls_below_min() {
        let l = Limiter::new(10);
        let mut t = 1;
        for _ in 0..100 {
            t += 100;
            l.observe(&B, false, 1_000, t);
        }
        assert_eq!(l.limit(), B.min);
        assert!(l.congested(), "a failing backend does not grow on demand");
    }

    #[test]
    fn growth_on_demand_stops_when_the_backend_queues() {
        let l = Limiter::new(4);
        assert!(l.grow(&B));
        assert_eq!(l.limit(), 5);
        let mut t = 1;
        light(&l, &mut t, 1, 50_000);
        saturate(&l, &mut t, 1, 1, 50);
        assert!(l.congested());
        assert!(!l.grow(&B));
    }

    #[test]
    fn the_baseline_follows_a_slower_deploy_only_when_not_held() {
        let l = Limiter::new(10);
        let mut t = 1;
        light(&l, &mut t, 1, 10_000);
        // Held at the limit at twice the latency (a slower version): the baseline stays, so
        // the limit cannot be talked up by brace's own queueing.
        for _ in 0..20 {
            let limit = l.limit();
            window(&l, &mut t, limit, true, |_| 20_000);
        }
        assert!(l.limit() <= 10, "held {}", l.limit());
        // Not held: the new latency is re-learnt as the baseline, so nothing counts as queued.
        light(&l, &mut t, 200, 20_000);
        assert!(!l.congested());
        assert!(l.grow(&B));
    }
}
