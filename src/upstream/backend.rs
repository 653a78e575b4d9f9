//! One backend's earned state: health (from active checks), outlier ejection (from real
//! traffic), in-flight count and slow-start clock. All atomics: the request path only loads
//! them; transitions are compare-and-swap or come from the one health-check task per backend.
//!
//! Time is passed in as milliseconds on brace's monotonic clock ([`super::now_ms`]) so the
//! state machines are unit-tested by stepping `now`.

use super::stats::{BackendGauges, BackendStats};
use crate::config::OutlierConfig;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::Mutex;
use std::time::SystemTime;

pub struct Backend {
    pub addr: SocketAddr,
    /// `ip:port`, the `backend` label value.
    pub label: String,
    /// A setting, not identity: a reload that changes only the weight keeps the backend.
    weight: AtomicU32,
    pub stats: BackendStats,
    pub gauges: BackendGauges,
    pub health: Health,
    pub outlier: OutlierState,
    pub breaker: super::breaker::Breaker,
    /// Latency estimate for the `ewma` balancer.
    pub latency: super::latency::Latency,
    /// When the backend last became available (0 = since start): the slow-start ramp origin.
    pub available_since_ms: AtomicU64,
    /// Attempts in flight to the backend: what the balancers and the limit decide by (the
    /// `brace_upstream_in_flight` gauge reports it).
    active: AtomicU32,
    /// Its adaptive concurrency limit.
    pub limiter: super::concurrency::Limiter,
    /// Drained by an operator (`runtime::drain`): no new requests, in-flight ones finish.
    draining: AtomicBool,
    /// Until when the backend asked for no requests (`Retry-After`, `upstream::pause`).
    paused_until_ms: AtomicU64,
}

impl Backend {
    pub fn new(
        addr: SocketAddr,
        weight: u32,
        stats: BackendStats,
        gauges: BackendGauges,
        initial_limit: u32,
    ) -> Backend {
        gauges.healthy.set(1);
        gauges.limit.set(i64::from(initial_limit));
        Backend {
            label: addr.to_string(),
            addr,
            weight: AtomicU32::new(weight),
            stats,
            gauges,
            health: Health::default(),
            outlier: OutlierState::default(),
            breaker: Default::default(),
            latency: Default::default(),
            available_since_ms: AtomicU64::new(0),
            active: AtomicU32::new(0),
            limiter: super::concurrency::Limiter::new(initial_limit),
            draining: AtomicBool::new(false),
            paused_until_ms: AtomicU64::new(0),
        }
    }

    /// The backend's weight as configured now.
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }

    /// A reload gave the backend a new weight (its identity, the address, is unchanged).
    pub fn set_weight(&self, w: u32) {
        self.weight.store(w, Relaxed);
    }

    /// Available = not drained, not marked unhealthy by checks (nor waiting for its first
    /// check, see [`Health::await_first_check`]), not ejected, and its breaker admits calls.
    pub fn available(&self, now: u64) -> bool {
        !self.draining()
            && self.health.admits()
            && !self.outlier.ejected(now)
            && !self.paused(now)
            && self.breaker.admits(now)
    }

    /// True while the backend's own `Retry-After` pause lasts.
    pub fn paused(&self, now: u64) -> bool {
        self.paused_until_ms.load(Relaxed) > now
    }

    /// When the pause ends (brace-clock ms; in the past when there is none).
    pub fn paused_until(&self) -> u64 {
        self.paused_until_ms.load(Relaxed)
    }

    /// Pauses the backend until `until` (a later pause already set is kept); true when it
    /// was not paused before.
    pub fn pause(&self, now: u64, until: u64) -> bool {
        let was = self.paused_until_ms.fetch_max(until, Relaxed);
        was <= now
    }

    /// True while an operator drains the backend.
    pub fn draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// Drains (`true`) or undrains the backend; true when that changed it.
    pub fn set_draining(&self, on: bool) -> bool {
        let changed = self.draining.swap(on, Relaxed) != on;
        self.gauges.draining.set(i64::from(on));
        changed
    }

    pub fn in_flight(&self) -> i64 {
        i64::from(self.active.load(Relaxed))
    }

    /// True when one more request stays within the adaptive limit.
    pub fn has_room(&self) -> bool {
        self.active.load(Relaxed) < self.limiter.limit()
    }

    /// An attempt starts at `now`.
    pub fn started(&self, now: u64) {
        let n = self.active.fetch_add(1, Relaxed) + 1;
        if n == 1 {
            self.latency.busy(now);
        }
        self.gauges.in_flight.inc();
        self.limiter.sent(n);
    }

    /// An attempt ended (`counted`: it still counted under the limit).
    pub fn ended(&self, counted: bool) {
        if counted {
            self.active.fetch_sub(1, Relaxed);
        }
        self.gauges.in_flight.dec();
    }

    /// An attempt became a tunnel (101): it stays in flight for the gauge but no longer
    /// counts under the limit, which is about requests waiting for answers.
    pub fn tunnelled(&self) {
        self.active.fetch_sub(1, Relaxed);
    }
}

/// An opaque name for backend `addr` of pool `pool` (the sticky cookie's value,
/// `upstream::sticky`): the same on every instance, never the address itself.
pub fn backend_id(pool: &str, addr: SocketAddr) -> String {
    crate::config::fnv1a_hex(format!("{pool}\0{addr}").as_bytes())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// No check has finished yet (or the pool has no active checks): counted as available.
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unknown => "unknown",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Default)]
pub struct Health {
    status: AtomicU8,
    /// A backend added to a pool that is already serving gets nothing until its first check
    /// passes (`unknown` otherwise counts as available, so a fresh brace serves at once).
    awaiting_first: AtomicBool,
    passes: AtomicU32,
    fails: AtomicU32,
    pub next_check_ms: AtomicU64,
    /// Set while a check is running, so a backend has at most one check at a time.
    pub checking: AtomicBool,
    /// Last result, for `/api/upstreams`. Written by the checker, read by the admin API only.
    pub last: Mutex<Option<LastCheck>>,
}

#[derive(Clone, Debug)]
pub struct LastCheck {
    pub at: SystemTime,
    pub ok: bool,
    pub detail: String,
}

impl Health {
    pub fn status(&self) -> HealthStatus {
        match self.status.load(Acquire) {
            1 => HealthStatus::Healthy,
            2 => HealthStatus::Unhealthy,
            _ => HealthStatus::Unknown,
        }
    }

    /// True unless the checks say unhealthy, or no check has passed yet on a backend that
    /// must wait for one.
    pub fn admits(&self) -> bool {
        match self.status() {
            HealthStatus::Healthy => true,
            HealthStatus::Unhealthy => false,
            HealthStatus::Unknown => !self.awaiting_first.load(Relaxed),
        }
    }

    /// Makes an unknown backend wait for its first passing check (`on`), or not.
    pub fn await_first_check(&self, on: bool) {
        self.awaiting_first.store(on, Relaxed);
    }

    /// True while the backend waits for its first check.
    pub fn awaiting_first_check(&self) -> bool {
        self.status() == HealthStatus::Unknown && self.awaiting_first.load(Relaxed)
    }

    /// Records one check result; returns the new status when it changed. The first result
    /// decides at once; after that `healthy_threshold` passes or `unhealthy_threshold`
    /// failures in a row are needed to flip. Called only by the backend's one checker.
    pub fn record(
        &self,
        ok: bool,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<HealthStatus> {
        let (streak, other) = if ok {
            (&self.passes, &self.fails)
        } else {
            (&self.fails, &self.passes)
        };
        other.store(0, Relaxed);
        let n = streak.fetch_add(1, Relaxed) + 1;
        let current = self.status();
        let next = match (current, ok) {
            (HealthStatus::Unknown, true) => HealthStatus::Healthy,
            (HealthStatus::Unknown, false) => HealthStatus::Unhealthy,
            (HealthStatus::Unhealthy, true) if n >= healthy_threshold => HealthStatus::Healthy,
            (HealthStatus::Healthy, false) if n >= unhealthy_threshold => HealthStatus::Unhealthy,
            (s, _) => s,
        };
        if next != current {
            self.status.store(next as u8, Release);
            Some(next)
        } else {
            None
        }
    }
}

/// The share of picks a slow backend (`upstream::slow`) still gets: enough to keep measuring
/// it and to notice its recovery.
pub const SLOW_SHARE: f64 = 0.05;

/// Passive ejection from real traffic (Envoy's outlier detection, consecutive-failure kind).
#[derive(Default)]
pub struct OutlierState {
    consecutive: AtomicU32,
    ejected_until_ms: AtomicU64,
    pub ejections: AtomicU32,
    /// True while an ejection is in force as far as the housekeeper has seen; lets it report
    /// the end of an ejection once.
    pub reported: AtomicBool,
    /// Since when the backend has been much slower than its peers (0 = it is not;
    /// `upstream::slow`).
    pub slow_since_ms: AtomicU64,
}

impl OutlierState {
    pub fn ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Relaxed) > now
    }

    pub fn ejected_until(&self) -> u64 {
        self.ejected_until_ms.load(Relaxed)
    }

    /// Records a success: the failure streak starts over.
    pub fn success(&self) {
        if self.consecutive.load(Relaxed) != 0 {
            self.consecutive.store(0, Relaxed);
        }
    }

    /// Records a failure; returns the ejection duration when this failure ejects the backend.
    /// `may_eject` says whether the pool's `max_ejection_percent` leaves room for one more.
    pub fn failure(
        &self,
        now: u64,
        cfg: &OutlierConfig,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<u64> {
        let n = self.consecutive.fetch_add(1, Relaxed) + 1;
        if n < cfg.consecutive_failures || self.ejected(now) || !may_eject() {
            return None;
        }
        Some(self.eject(now, cfg))
    }

    /// Slow (`upstream::slow`): true while the backend is much slower than its peers.
    pub fn slow(&self) -> bool {
        self.slow_since_ms.load(Relaxed) != 0
    }

    /// Ejects the backend now; returns for how long (each ejection doubles it, up to
    /// `max_ejection`).
    pub fn eject(&self, now: u64, cfg: &OutlierConfig) -> u64 {
        let times = self.ejections.fetch_add(1, Relaxed);
        let base = cfg.base_ejection.as_millis() as u64;
        let max = cfg.max_ejection.as_millis() as u64;
        let dur = base.saturating_mul(1u64 << times.min(20)).min(max);
        self.ejected_until_ms.store(now + dur, Relaxed);
        self.consecutive.store(0, Relaxed);
        self.reported.store(true, Relaxed);
        dur
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The count the balancers decide by is the backend's own; the Prometheus gauge only
    /// reports it (issue 32: they read the gauge, which a metrics reset would have moved).
    #[test]
    fn in_flight_is_the_backends_own_count_not_the_gauge() {
        let m = crate::metrics::Metrics::new();
        let b = Backend::new(
            "127.0.0.1:1".parse().unwrap(),
            1,
            BackendStats::new(&m, "u", "127.0.0.1:1"),
            BackendGauges::new(&m, "u", "127.0.0.1:1"),
            10,
        );
        b.started(1);
        b.started(1);
        b.gauges.in_flight.set(0);
        assert_eq!(b.in_flight(), 2);
        assert!(b.has_room());
        b.ended(true);
        assert_eq!(b.in_flight(), 1);
        assert_eq!(
            b.gauges.in_flight.get(),
            -1,
            "the gauge moves with it, nothing more"
        );
    }

    #[test]
    fn health_thresholds() {
        let h = Health::default();
        assert_eq!(h.status(), HealthStatus::Unknown);
        assert_eq!(
            h.record(true, 2, 3),
            Some(HealthStatus::Healthy),
            "first result decides"
        );
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(
            h.record(true, 2, 3),
            None,
            "a pass resets the failure streak"
        );
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), Some(HealthStatus::Unhealthy));
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), Some(HealthStatus::Healthy));
    }

    #[test]
    fn ejection_doubles_and_is_capped() {
        let cfg = OutlierConfig {
            consecutive_failures: 2,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejection_percent: 100,
            latency_ratio: 3.0,
            latency_ejection_after: Duration::from_secs(30),
        };
        let o = OutlierState::default();
        assert_eq!(o.failure(0, &cfg, || true), None);
        assert_eq!(o.failure(0, &cfg, || true), Some(10_000));
        assert!(o.ejected(9_999) && !o.ejected(10_000));
        assert_eq!(o.failure(10_000, &cfg, || true), None);
        assert_eq!(o.failure(10_000, &cfg, || true), Some(20_000));
        o.success();
        assert_eq!(
            o.failure(40_000, &cfg, || true),
            None,
            "success reset the streak"
        );
        assert_eq!(
            o.failure(40_000, &cfg, || true),
            Some(25_000),
            "capped at max_ejection"
        );
        // No room in the pool: the streak is counted but nobody is ejected.
        assert_eq!(o.failure(70_000, &cfg, || false), None);
        assert_eq!(o.failure(70_000, &cfg, || false), None);
        assert!(!o.ejected(70_000));
    }
}
