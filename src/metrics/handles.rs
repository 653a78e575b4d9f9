//! The handles the request path holds: per route, pool, backend and cache route, resolved
//! once when a snapshot is built, so recording a request touches no label map; and the
//! cleanup of a backend that left the config.

use super::*;

impl Metrics {
    pub fn backend_gauges(&self, upstream: &str, backend: &str) -> BackendGauges {
        let ub = &[upstream, backend];
        BackendGauges {
            healthy: self.backend_healthy.with_label_values(ub),
            ejected: self.backend_ejected.with_label_values(ub),
            ejections: self.ejections_total.with_label_values(ub),
            checks_pass: self
                .health_checks_total
                .with_label_values(&[upstream, backend, "pass"]),
            checks_fail: self
                .health_checks_total
                .with_label_values(&[upstream, backend, "fail"]),
            in_flight: self.upstream_in_flight.with_label_values(ub),
            breaker_state: self.breaker_state.with_label_values(ub),
        }
    }

    pub fn pool_stats(&self, upstream: &str) -> PoolStats {
        PoolStats {
            retries: RETRY_REASONS.map(|r| self.retries_total.with_label_values(&[upstream, r])),
            budget_exhausted: self
                .retry_budget_exhausted_total
                .with_label_values(&[upstream]),
            backup_used: self.backup_used_total.with_label_values(&[upstream]),
            breaker_rejected: self.breaker_rejected_total.with_label_values(&[upstream]),
            in_flight_rejected: self.in_flight_rejected_total.with_label_values(&[upstream]),
        }
    }

    pub fn route_cache_stats(&self, route: &str) -> RouteCacheStats {
        RouteCacheStats {
            statuses: crate::cache::CacheStatus::ALL.map(|s| {
                self.cache_requests_total
                    .with_label_values(&[route, s.as_str()])
            }),
            not_stored: NOT_STORED_REASONS.iter().map(|_| OnceLock::new()).collect(),
            lock_served: self
                .cache_lock_waits_total
                .with_label_values(&[route, "served_from_cache"]),
            lock_upstream: self
                .cache_lock_waits_total
                .with_label_values(&[route, "went_upstream"]),
            not_stored_vec: self.cache_not_stored_total.clone(),
            route: route.to_owned(),
        }
    }

    /// Counters for one (route, limit) pair: allowed, limited, shadow_limited.
    pub fn limit_decisions(&self, route: &str, limit: &str) -> [IntCounter; 3] {
        ["allowed", "limited", "shadow_limited"].map(|d| {
            self.rate_limit_decisions_total
                .with_label_values(&[route, limit, d])
        })
    }

    /// Drops the series of a backend or pool that left the config.
    /// Removes every series of a backend that left the config: each per-backend family,
    /// with every value its further labels can take (the enums' `ALL`), so none of them
    /// reports its last value forever.
    pub fn forget_backend(&self, upstream: &str, backend: &str) {
        use crate::upstream::breaker::{BreakerState, TripReason};
        use crate::upstream::outcome::Outcome;
        let ub = &[upstream, backend];
        for v in [
            &self.backend_healthy,
            &self.backend_ejected,
            &self.upstream_in_flight,
            &self.breaker_state,
        ] {
            let _ = v.remove_label_values(ub);
        }
        let _ = self.ejections_total.remove_label_values(ub);
        let _ = self.upstream_request_duration.remove_label_values(ub);
        for o in Outcome::ALL {
            let _ =
                self.upstream_requests_total
                    .remove_label_values(&[upstream, backend, o.as_str()]);
        }
        for r in ["pass", "fail"] {
            let _ = self
                .health_checks_total
                .remove_label_values(&[upstream, backend, r]);
        }
        for reason in TripReason::ALL.map(TripReason::as_str) {
            let _ = self
                .breaker_shadow_trips_total
                .remove_label_values(&[upstream, backend, reason]);
            for to in [
                BreakerState::Closed,
                BreakerState::HalfOpen,
                BreakerState::Open,
            ] {
                let _ = self.breaker_transitions_total.remove_label_values(&[
                    upstream,
                    backend,
                    to.as_str(),
                    reason,
                ]);
            }
        }
    }
}

/// The `reason` label values of `brace_upstream_retries_total`, indexed by [`RetryReason`].
pub const RETRY_REASONS: [&str; 6] = ["connect_error", "timeout", "error", "502", "503", "504"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    ConnectError = 0,
    Timeout,
    Error,
    Status502,
    Status503,
    Status504,
}

/// The `reason` values of `brace_cache_not_stored_total` that get a cached counter per route.
const NOT_STORED_REASONS: &[&str] = &[
    "no-store",
    "private",
    "set-cookie",
    "authorization",
    "too-large",
    "no-freshness",
    "vary",
    "status",
    "method",
];

/// Per-route cache counters: statuses resolved at build, reasons on first use; a request does
/// atomic adds, not label lookups.
pub struct RouteCacheStats {
    statuses: [IntCounter; 7],
    not_stored: Box<[OnceLock<IntCounter>]>,
    lock_served: IntCounter,
    lock_upstream: IntCounter,
    not_stored_vec: IntCounterVec,
    route: String,
}

impl RouteCacheStats {
    pub fn record(
        &self,
        status: crate::cache::CacheStatus,
        reason: Option<&str>,
        lock_wait: Option<bool>,
    ) {
        self.statuses[status as usize].inc();
        if let Some(r) = reason {
            match NOT_STORED_REASONS.iter().position(|x| *x == r) {
                Some(i) => self.not_stored[i]
                    .get_or_init(|| self.not_stored_vec.with_label_values(&[&self.route, r]))
                    .inc(),
                None => self
                    .not_stored_vec
                    .with_label_values(&[&self.route, r])
                    .inc(),
            }
        }
        match lock_wait {
            Some(true) => self.lock_served.inc(),
            Some(false) => self.lock_upstream.inc(),
            None => {}
        }
    }
}

/// Per-backend state gauges and counters, resolved at snapshot build.
pub struct BackendGauges {
    pub healthy: IntGauge,
    pub ejected: IntGauge,
    pub ejections: IntCounter,
    pub checks_pass: IntCounter,
    pub checks_fail: IntCounter,
    /// Also the backend's in-flight count used by least_requests and p2c.
    pub in_flight: IntGauge,
    pub breaker_state: IntGauge,
}

/// Per-pool counters, resolved at snapshot build.
pub struct PoolStats {
    pub retries: [IntCounter; 6],
    pub budget_exhausted: IntCounter,
    pub backup_used: IntCounter,
    pub breaker_rejected: IntCounter,
    pub in_flight_rejected: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-route handles, resolved at snapshot build.
pub struct RouteStats {
    /// Parallel to `COMMON_CODES`.
    pub(super) codes: Box<[OnceLock<IntCounter>]>,
    pub(super) requests_total: IntCounterVec,
    pub(super) duration: Histogram,
    pub(super) route: String,
}

impl RouteStats {
    pub fn record(&self, code: u16, seconds: f64) {
        match COMMON_CODES.iter().position(|c| *c == code) {
            Some(i) => self.codes[i]
                .get_or_init(|| {
                    self.requests_total
                        .with_label_values(&[&self.route, &code.to_string()])
                })
                .inc(),
            None => self
                .requests_total
                .with_label_values(&[&self.route, &code.to_string()])
                .inc(),
        }
        self.duration.observe(seconds);
    }
}

/// Per-backend handles, resolved at snapshot build.
pub struct BackendStats {
    pub(super) outcomes: [IntCounter; crate::upstream::outcome::Outcome::COUNT],
    pub(super) duration: Histogram,
}

impl BackendStats {
    pub fn record(&self, outcome: crate::upstream::outcome::Outcome, seconds: f64) {
        self.outcomes[outcome as usize].inc();
        self.duration.observe(seconds);
    }
}
