//! The metric handles of pools and backends, resolved when a snapshot is built, and the
//! removal of a departed backend's series: both derived from the same list of per-backend
//! families, so a family added to one is not forgotten by the other.

use super::breaker::{BreakerState, TripReason};
use super::outcome::Outcome;
use super::retry::RetryReason;
use crate::label_set;
use crate::metrics::{remove_by, remove_by2, ByLabel, Metrics};
use prometheus::{Histogram, IntCounter, IntGauge};

label_set! {
    /// The `result` label of `brace_upstream_health_checks_total`.
    pub enum CheckResult {
        Pass => "pass",
        Fail => "fail",
    }
}

/// Per-pool counters.
pub struct PoolStats {
    pub retries: ByLabel<RetryReason>,
    pub budget_exhausted: IntCounter,
    pub backup_used: IntCounter,
    pub breaker_rejected: IntCounter,
    pub in_flight_rejected: IntCounter,
}

impl PoolStats {
    pub fn new(m: &Metrics, upstream: &str) -> PoolStats {
        let u = &[upstream];
        PoolStats {
            retries: ByLabel::new(&m.retries_total, u),
            budget_exhausted: m.retry_budget_exhausted_total.with_label_values(u),
            backup_used: m.backup_used_total.with_label_values(u),
            breaker_rejected: m.breaker_rejected_total.with_label_values(u),
            in_flight_rejected: m.in_flight_rejected_total.with_label_values(u),
        }
    }
}

/// Per-backend counters of what requests found.
pub struct BackendStats {
    outcomes: ByLabel<Outcome>,
    duration: Histogram,
}

impl BackendStats {
    pub fn new(m: &Metrics, upstream: &str, backend: &str) -> BackendStats {
        let ub = &[upstream, backend];
        BackendStats {
            outcomes: ByLabel::new(&m.upstream_requests_total, ub),
            duration: m.upstream_request_duration.with_label_values(ub),
        }
    }

    pub fn record(&self, outcome: Outcome, seconds: f64) {
        self.outcomes.get(outcome).inc();
        self.duration.observe(seconds);
    }
}

/// Per-backend state gauges and counters.
pub struct BackendGauges {
    pub healthy: IntGauge,
    pub ejected: IntGauge,
    pub ejections: IntCounter,
    pub checks: ByLabel<CheckResult>,
    /// Also the backend's in-flight count used by least_requests, p2c and ewma.
    pub in_flight: IntGauge,
    pub breaker_state: IntGauge,
}

impl BackendGauges {
    pub fn new(m: &Metrics, upstream: &str, backend: &str) -> BackendGauges {
        let ub = &[upstream, backend];
        BackendGauges {
            healthy: m.backend_healthy.with_label_values(ub),
            ejected: m.backend_ejected.with_label_values(ub),
            ejections: m.ejections_total.with_label_values(ub),
            checks: ByLabel::new(&m.health_checks_total, ub),
            in_flight: m.upstream_in_flight.with_label_values(ub),
            breaker_state: m.breaker_state.with_label_values(ub),
        }
    }
}

/// Removes every series of a backend that left the config: each per-backend family of
/// [`Metrics`], with every value its further labels can take, so none of them reports its
/// last value forever (a removed backend whose breaker was open would say 2 for good).
pub fn forget_backend(m: &Metrics, upstream: &str, backend: &str) {
    let ub = &[upstream, backend];
    for g in [
        &m.backend_healthy,
        &m.backend_ejected,
        &m.upstream_in_flight,
        &m.breaker_state,
    ] {
        let _ = g.remove_label_values(ub);
    }
    let _ = m.ejections_total.remove_label_values(ub);
    let _ = m.upstream_request_duration.remove_label_values(ub);
    remove_by::<Outcome>(&m.upstream_requests_total, ub);
    remove_by::<CheckResult>(&m.health_checks_total, ub);
    remove_by::<TripReason>(&m.breaker_shadow_trips_total, ub);
    remove_by2::<BreakerState, TripReason>(&m.breaker_transitions_total, ub);
}
