//! Per-backend circuit breaker: closed (traffic flows) → open (blocked) → half-open (a few
//! trial calls) → closed, or open again with a doubled period.
//!
//! A small state machine over atomics that takes the time as an argument, so it is unit-tested
//! by stepping `now`. The request path does one atomic load in `admits` (during selection) and
//! one `fetch_sub` in `acquire` when a half-open trial permit is taken. Outcomes are counted in
//! a rolling window of ten buckets (`window / 10` each), so the window slides in tenths. Only
//! a transition does a compare-and-swap on the state; whoever wins it reports it.

use crate::config::{BreakerConfig, BreakerMode};
use crate::upstream::outcome::Outcome;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::*};

const BUCKETS: usize = 10;

crate::label_set! {
    /// The `to` label of transitions; `as u8` is the state gauge's value.
    pub enum BreakerState {
        Closed => "closed",
        HalfOpen => "half_open",
        Open => "open",
    }
}

impl BreakerState {
    fn from_u8(v: u8) -> BreakerState {
        match v {
            1 => BreakerState::HalfOpen,
            2 => BreakerState::Open,
            _ => BreakerState::Closed,
        }
    }
}

crate::label_set! {
    pub enum TripReason {
        ConsecutiveFailures => "consecutive_failures",
        FailureRatio => "failure_ratio",
        SlowCalls => "slow_calls",
        ProbeFailed => "probe_failed",
        ProbeSucceeded => "probe_succeeded",
        /// The open period ran out: the breaker moves to half-open.
        OpenElapsed => "open_elapsed",
    }
}

/// A state change (or, in shadow mode, a trip that was only counted).
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: TripReason,
    /// True in shadow mode: nothing changed, the trip was only counted.
    pub shadow: bool,
    /// The window's figures when it happened: (calls, failures, slow calls).
    pub window: (u32, u32, u32),
    /// For a trip: how long the breaker stays open, in ms.
    pub open_ms: u64,
}

#[derive(Default)]
struct Bucket {
    /// The bucket's slot number (now / bucket_ms); counts belong to it.
    slot: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

#[derive(Default)]
pub struct Breaker {
    state: AtomicU8,
    open_until_ms: AtomicU64,
    /// Trips since the breaker was last closed by successful probes: doubles the open period.
    trips: AtomicU32,
    consecutive: AtomicU32,
    permits: AtomicU32,
    probe_successes: AtomicU32,
    buckets: [Bucket; BUCKETS],
}

impl Breaker {
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Acquire))
    }

    pub fn open_until(&self) -> u64 {
        self.open_until_ms.load(Relaxed)
    }

    /// Whether selection may choose this backend now (read-only).
    pub fn admits(&self, now: u64) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => now >= self.open_until(),
            BreakerState::HalfOpen => self.permits.load(Relaxed) > 0,
        }
    }

    /// Takes the right to send one request: moves an expired open breaker to half-open and
    /// takes a trial permit there. Returns false when the backend must not be used, and the
    /// transition to half-open when this call made it.
    pub fn acquire(&self, cfg: &BreakerConfig, now: u64) -> (bool, Option<Transition>) {
        let mut transition = None;
        if self.state() == BreakerState::Open {
            if now < self.open_until() {
                return (false, None);
            }
            if self
                .state
                .compare_exchange(
                    BreakerState::Open as u8,
                    BreakerState::HalfOpen as u8,
                    AcqRel,
                    Acquire,
                )
                .is_ok()
            {
                self.probe_successes.store(0, Relaxed);
                self.permits.store(cfg.half_open_requests, Release);
                transition = Some(Transition {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                    reason: TripReason::OpenElapsed,
                    shadow: false,
                    window: (0, 0, 0),
                    open_ms: 0,
                });
            }
        }
        match self.state() {
            BreakerState::Closed => (true, transition),
            BreakerState::Open => (false, transition),
            BreakerState::HalfOpen => {
                let ok = self
                    .permits
                    .fetch_update(AcqRel, Acquire, |p| p.checked_sub(1))
                    .is_ok();
                (ok, transition)
            }
        }
    }

    fn window(&self, cfg: &BreakerConfig, now: u64) -> (u32, u32, u32) {
        let bucket_ms = (cfg.window.as_millis() as u64 / BUCKETS as u64).max(1);
        let current = now / bucket_ms;
        let mut sum = (0, 0, 0);
        for b in &self.buckets {
            let slot = b.slot.load(Acquire);
            if slot + (BUCKETS as u64) > current && slot <= current {
                sum.0 += b.calls.load(Relaxed);
                sum.1 += b.failures.load(Relaxed);
                sum.2 += b.slow.load(Relaxed);
            }
        }
        sum
    }

    fn count(&self, cfg: &BreakerConfig, now: u64, failure: bool, slow: bool) {
        let bucket_ms = (cfg.window.as_millis() as u64 / BUCKETS as u64).max(1);
        let slot = now / bucket_ms;
        let b = &self.buckets[(slot % BUCKETS as u64) as usize];
        let old = b.slot.load(Acquire);
        if old != slot && b.slot.compare_exchange(old, slot, AcqRel, Acquire).is_ok() {
            // This bucket last held a slot a whole window ago: start it over. Counts that race
            // with the reset may be lost; the window is an estimate.
            b.calls.store(0, Relaxed);
            b.failures.store(0, Relaxed);
            b.slow.store(0, Relaxed);
        }
        b.calls.fetch_add(1, Relaxed);
        if failure {
            b.failures.fetch_add(1, Relaxed);
        }
        if slow {
            b.slow.fetch_add(1, Relaxed);
        }
    }

    fn reset_window(&self) {
        for b in &self.buckets {
            b.calls.store(0, Relaxed);
            b.failures.store(0, Relaxed);
            b.slow.store(0, Relaxed);
        }
        self.consecutive.store(0, Relaxed);
    }

    /// Records the outcome of a call that `acquire` let through; returns a transition if it
    /// caused one.
    pub fn on_outcome(
        &self,
        cfg: &BreakerConfig,
        outcome: Outcome,
        elapsed_ms: u64,
        now: u64,
    ) -> Option<Transition> {
        if outcome.blames_nobody() {
            return None;
        }
        let failure = outcome.fails(&cfg.failure_on);
        let slow =
            cfg.slow_call_ratio > 0.0 && elapsed_ms >= cfg.slow_call_duration.as_millis() as u64;
        match self.state() {
            BreakerState::Open => None, // a call that started before the trip
            BreakerState::HalfOpen => {
                if failure || slow {
                    self.trip(
                        cfg,
                        now,
                        TripReason::ProbeFailed,
                        (0, 0, 0),
                        BreakerState::HalfOpen,
                    )
                } else {
                    let n = self.probe_successes.fetch_add(1, AcqRel) + 1;
                    if n >= cfg.half_open_requests
                        && self
                            .state
                            .compare_exchange(
                                BreakerState::HalfOpen as u8,
                                BreakerState::Closed as u8,
                                AcqRel,
                                Acquire,
                            )
                            .is_ok()
                    {
                        self.trips.store(0, Relaxed);
                        self.reset_window();
                        return Some(Transition {
                            from: BreakerState::HalfOpen,
                            to: BreakerState::Closed,
                            reason: TripReason::ProbeSucceeded,
                            shadow: false,
                            window: (n, 0, 0),
                            open_ms: 0,
                        });
                    }
                    None
                }
            }
            BreakerState::Closed => {
                self.count(cfg, now, failure, slow);
                let consecutive = if failure {
                    self.consecutive.fetch_add(1, Relaxed) + 1
                } else {
                    self.consecutive.store(0, Relaxed);
                    0
                };
                let w = self.window(cfg, now);
                let (calls, failures, slows) = w;
                let enough = calls >= cfg.min_requests && calls > 0;
                let reason =
                    if cfg.consecutive_failures > 0 && consecutive >= cfg.consecutive_failures {
                        Some(TripReason::ConsecutiveFailures)
                    } else if enough
                        && cfg.failure_ratio > 0.0
                        && f64::from(failures) / f64::from(calls) >= cfg.failure_ratio
                    {
                        Some(TripReason::FailureRatio)
                    } else if enough
                        && cfg.slow_call_ratio > 0.0
                        && f64::from(slows) / f64::from(calls) >= cfg.slow_call_ratio
                    {
                        Some(TripReason::SlowCalls)
                    } else {
                        None
                    };
                reason.and_then(|r| self.trip(cfg, now, r, w, BreakerState::Closed))
            }
        }
    }

    fn trip(
        &self,
        cfg: &BreakerConfig,
        now: u64,
        reason: TripReason,
        window: (u32, u32, u32),
        from: BreakerState,
    ) -> Option<Transition> {
        if cfg.mode == BreakerMode::Shadow {
            self.reset_window();
            return Some(Transition {
                from,
                to: BreakerState::Open,
                reason,
                shadow: true,
                window,
                open_ms: 0,
            });
        }
        if self
            .state
            .compare_exchange(from as u8, BreakerState::Open as u8, AcqRel, Acquire)
            .is_err()
        {
            return None; // another outcome made the transition
        }
        let trips = self.trips.fetch_add(1, AcqRel);
        let base = cfg.open_duration.as_millis() as u64;
        let open_ms = base
            .saturating_mul(1u64 << trips.min(20))
            .min(cfg.max_open_duration.as_millis() as u64);
        self.open_until_ms.store(now + open_ms, Release);
        self.permits.store(0, Release);
        self.reset_window();
        Some(Transition {
            from,
            to: BreakerState::Open,
            reason,
            shadow: false,
            window,
            open_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailureOn;
    use std::time::Duration;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            slow_call_duration: Duration::from_secs(2),
            slow_call_ratio: 0.8,
            open_duration: Duration::from_secs(10),
            max_open_duration: Duration::from_secs(25),
            half_open_requests: 2,
            failure_on: FailureOn::default_set(),
            mode: BreakerMode::Enforce,
        }
    }

    fn fail(b: &Breaker, c: &BreakerConfig, now: u64) -> Option<Transition> {
        b.on_outcome(c, Outcome::Http5xx, 1, now)
    }
    fn ok(b: &Breaker, c: &BreakerConfig, now: u64) -> Option<Transition> {
        b.on_outcome(c, Outcome::Success, 1, now)
    }

    #[test]
    fn trips_on_consecutive_failures_and_probes_back() {
        let (b, c) = (Breaker::default(), cfg());
        assert!(fail(&b, &c, 0).is_none());
        assert!(fail(&b, &c, 0).is_none());
        let t = fail(&b, &c, 0).unwrap();
        assert_eq!(
            (t.to, t.reason, t.open_ms),
            (BreakerState::Open, TripReason::ConsecutiveFailures, 10_000)
        );
        assert!(!b.admits(9_999) && b.admits(10_000));
        assert!(!b.acquire(&c, 9_999).0);
        // Half-open: exactly two trial permits.
        let (ok1, t) = b.acquire(&c, 10_000);
        assert!(ok1 && t.unwrap().to == BreakerState::HalfOpen);
        assert!(b.acquire(&c, 10_000).0);
        assert!(!b.acquire(&c, 10_000).0, "a third trial is refused");
        assert!(ok(&b, &c, 10_001).is_none());
        let t = ok(&b, &c, 10_002).unwrap();
        assert_eq!(
            (t.to, t.reason),
            (BreakerState::Closed, TripReason::ProbeSucceeded)
        );
        assert!(b.admits(10_003));
    }

    #[test]
    fn a_failed_probe_reopens_for_twice_as_long_capped() {
        let (b, c) = (Breaker::default(), cfg());
        for _ in 0..3 {
            fail(&b, &c, 0);
        }
        assert!(b.acquire(&c, 10_000).0);
        let t = fail(&b, &c, 10_001).unwrap();
        assert_eq!((t.reason, t.open_ms), (TripReason::ProbeFailed, 20_000));
        assert!(b.acquire(&c, 30_001).0);
        let t = fail(&b, &c, 30_002).unwrap();
        assert_eq!(t.open_ms, 25_000, "capped by max_open_duration");
    }

    #[test]
    fn trips_on_failure_ratio_only_with_enough_calls() {
        let (b, mut c) = (Breaker::default(), cfg());
        c.consecutive_failures = 0;
        for i in 0..4 {
            ok(&b, &c, i);
            assert!(fail(&b, &c, i).is_none(), "not enough calls yet");
        }
        ok(&b, &c, 5);
        let t = fail(&b, &c, 5).unwrap();
        assert_eq!(t.reason, TripReason::FailureRatio);
        assert_eq!(t.window, (10, 5, 0));
    }

    #[test]
    fn old_calls_leave_the_window() {
        let (b, mut c) = (Breaker::default(), cfg());
        c.consecutive_failures = 0;
        for _ in 0..9 {
            fail(&b, &c, 0);
        }
        // 11 s later those nine are out of the 10 s window.
        assert!(fail(&b, &c, 11_000).is_none());
        assert_eq!(b.window(&c, 11_000), (1, 1, 0));
    }

    #[test]
    fn trips_on_slow_calls() {
        let (b, mut c) = (Breaker::default(), cfg());
        c.consecutive_failures = 0;
        let mut last = None;
        for i in 0..10 {
            last = b.on_outcome(&c, Outcome::Success, 2_500, i);
        }
        assert_eq!(last.unwrap().reason, TripReason::SlowCalls);
    }

    #[test]
    fn shadow_mode_counts_and_changes_nothing() {
        let (b, mut c) = (Breaker::default(), cfg());
        c.mode = BreakerMode::Shadow;
        fail(&b, &c, 0);
        fail(&b, &c, 0);
        let t = fail(&b, &c, 0).unwrap();
        assert!(t.shadow);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admits(1) && b.acquire(&c, 1).0);
    }
}
