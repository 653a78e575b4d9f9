//! The metric handles of pools and backends, resolved when a snapshot is built, and the
//! removal of a departed backend's series. A unit test holds the two to every family that
//! carries a `backend` label, so a family added to one is not forgotten by the other.

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
    /// Shed requests by priority and reason (`shed[priority][reason]`).
    pub shed: Vec<ByLabel<super::queue::ShedReason>>,
    pub queue_length: IntGauge,
    pub queue_wait: Histogram,
    pub shedding: IntGauge,
    pub hedges: ByLabel<super::hedge::HedgeResult>,
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
            shed: crate::config::Priority::ALL
                .iter()
                .map(|p| ByLabel::new(&m.shed_total, &[upstream, p.as_str()]))
                .collect(),
            queue_length: m.queue_length.with_label_values(u),
            queue_wait: m.queue_wait.with_label_values(u),
            shedding: m.shedding.with_label_values(u),
            hedges: ByLabel::new(&m.hedges_total, u),
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
    pub slow: IntGauge,
    pub draining: IntGauge,
    pub ejections: IntCounter,
    pub pauses: IntCounter,
    pub checks: ByLabel<CheckResult>,
    /// Also the backend's in-flight count used by least_requests, p2c and ewma.
    pub in_flight: IntGauge,
    /// The adaptive concurrency limit (`upstream::concurrency`).
    pub limit: IntGauge,
    pub breaker_state: IntGauge,
}

impl BackendGauges {
    pub fn new(m: &Metrics, upstream: &str, backend: &str) -> BackendGauges {
        let ub = &[upstream, backend];
        BackendGauges {
            healthy: m.backend_healthy.with_label_values(ub),
            ejected: m.backend_ejected.with_label_values(ub),
            slow: m.backend_slow.with_label_values(ub),
            draining: m.backend_draining.with_label_values(ub),
            ejections: m.ejections_total.with_label_values(ub),
            pauses: m.pauses_total.with_label_values(ub),
            checks: ByLabel::new(&m.health_checks_total, ub),
            in_flight: m.upstream_in_flight.with_label_values(ub),
            limit: m.concurrency_limit.with_label_values(ub),
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
        &m.backend_slow,
        &m.backend_draining,
        &m.upstream_in_flight,
        &m.concurrency_limit,
        &m.breaker_state,
    ] {
        let _ = g.remove_label_values(ub);
    }
    let _ = m.ejections_total.remove_label_values(ub);
    let _ = m.pauses_total.remove_label_values(ub);
    let _ = m.upstream_request_duration.remove_label_values(ub);
    remove_by::<Outcome>(&m.upstream_requests_total, ub);
    remove_by::<CheckResult>(&m.health_checks_total, ub);
    remove_by::<TripReason>(&m.breaker_shadow_trips_total, ub);
    remove_by2::<BreakerState, TripReason>(&m.breaker_transitions_total, ub);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series of every family with a `backend` label, for backend `b`.
    fn series_of(m: &Metrics, b: &str) -> Vec<String> {
        let text = String::from_utf8(m.render()).unwrap();
        let needle = format!("backend=\"{b}\"");
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&needle))
            .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn forget_backend_removes_a_series_of_every_per_backend_family() {
        let m = Metrics::new();
        // Everything the request path and the background tasks record for a backend.
        let gauges = BackendGauges::new(&m, "u", "b");
        let stats = BackendStats::new(&m, "u", "b");
        for &o in Outcome::ALL {
            stats.record(o, 0.01);
        }
        gauges.healthy.set(1);
        gauges.draining.set(1);
        gauges.ejections.inc();
        gauges.pauses.inc();
        for t in TripReason::ALL {
            m.breaker_shadow_trips_total
                .with_label_values(&["u", "b", t.as_str()])
                .inc();
            for s in BreakerState::ALL {
                m.breaker_transitions_total
                    .with_label_values(&["u", "b", s.as_str(), t.as_str()])
                    .inc();
            }
        }
        let _other = BackendGauges::new(&m, "u", "kept");

        // Every family with a `backend` label has a series of `b` now ...
        let per_backend: Vec<&str> = m
            .families()
            .iter()
            .filter(|f| f.labels.iter().any(|l| l == "backend"))
            .map(|f| f.name.as_str())
            .collect();
        assert!(per_backend.len() >= 10, "{per_backend:?}");
        let before = series_of(&m, "b");
        for f in &per_backend {
            assert!(
                before.iter().any(|s| s.starts_with(f)),
                "{f} has no series of the backend: add it to this test and to forget_backend"
            );
        }
        // ... and none once it is forgotten; another backend's stay.
        forget_backend(&m, "u", "b");
        assert_eq!(series_of(&m, "b"), Vec::<String>::new());
        assert!(!series_of(&m, "kept").is_empty());
    }
}
