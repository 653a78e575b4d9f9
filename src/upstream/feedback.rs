//! What attempts teach a pool: the breaker's permits and transitions, and each attempt's
//! outcome recorded to metrics, the breaker, outlier detection and the adaptive limit.

use super::backend::Backend;
use super::breaker::BreakerState;
use super::outcome::Outcome;
use super::pool::Pool;
use crate::events::{Event, Kind, Level};
use std::time::Duration;

impl Pool {
    /// Counts a hedge sent or won (`brace_upstream_hedges_total`).
    pub fn count_hedge(&self, r: super::hedge::HedgeResult) {
        self.stats.hedges.get(r).inc();
    }

    /// Takes the right to send one request to backend `i` (a half-open trial permit, when its
    /// breaker is half-open). False when the breaker refuses.
    pub fn acquire(&self, i: usize, now: u64) -> bool {
        let Some(cfg) = &self.config.circuit_breaker else {
            return true;
        };
        let b = &self.backends[i];
        let (ok, t) = b.breaker.acquire(cfg, now);
        if let Some(t) = t {
            self.report(b, &t);
        }
        ok
    }

    /// Where this pool's transitions are reported.
    pub(super) fn events(&self) -> &crate::events::Events {
        &self.metrics.events
    }

    /// True when some backend is unavailable because its breaker is open.
    pub fn breakers_open(&self, now: u64) -> bool {
        self.config.circuit_breaker.is_some()
            && self.backends.iter().any(|b| !b.breaker.admits(now))
    }

    /// Metrics and a log line for a breaker transition (not per request: transitions only).
    fn report(&self, b: &Backend, t: &super::breaker::Transition) {
        let m = &self.metrics;
        let (calls, failures, slow) = t.window;
        if t.shadow {
            m.breaker_shadow_trips_total
                .with_label_values(&[&self.name, &b.label, t.reason.as_str()])
                .inc();
            self.metrics.events.record(
                Event::new(Kind::Breaker, Level::Warn, "shadow_open", t.reason.as_str())
                    .backend(&self.name, &b.label)
                    .from_state(t.from.as_str())
                    .message(format!(
                        "circuit breaker (shadow mode) would open: {} (window: {calls} calls, {failures} failures, {slow} slow)",
                        t.reason.as_str()
                    )),
            );
            return;
        }
        b.gauges.breaker_state.set(t.to as i64);
        m.breaker_transitions_total
            .with_label_values(&[&self.name, &b.label, t.to.as_str(), t.reason.as_str()])
            .inc();
        let open_for = if t.open_ms > 0 {
            format!(
                "; open for {}",
                humantime::format_duration(Duration::from_millis(t.open_ms))
            )
        } else {
            String::new()
        };
        // An open breaker wants a look; probing and closing again need nothing.
        let level = if t.to == BreakerState::Open {
            Level::Warn
        } else {
            Level::Info
        };
        self.metrics.events.record(
            Event::new(Kind::Breaker, level, t.to.as_str(), t.reason.as_str())
                .backend(&self.name, &b.label)
                .from_state(t.from.as_str())
                .message(format!(
                    "circuit breaker -> {}: {} (window: {calls} calls, {failures} failures, {slow} slow){open_for}",
                    t.to.as_str(),
                    t.reason.as_str()
                )),
        );
    }

    /// Records the outcome of one attempt on backend `i`, `seconds` long and ended at `now`
    /// (`clock::now_ms`): metrics, the breaker, then outlier detection; and the adaptive
    /// limit from `sample`, the backend's time to answer in seconds (`None` for a tunnel).
    pub fn record(&self, i: usize, outcome: Outcome, seconds: f64, now: u64, sample: Option<f64>) {
        let b = &self.backends[i];
        b.stats.record(outcome, seconds);
        if outcome == Outcome::Cancelled {
            // Beaten by a hedge: slower than the pool's p95 and another backend's answer put
            // together, by how much is never known. Folded in as a failure (a 1 s sample
            // without the peak) so the balancer steers from a backend whose tail hedges
            // hide: taken as the time it had run, its 60 ms answers counted as 14 ms and
            // `ewma` sent it more (benches/load/hedge).
            b.latency.observe(false, seconds, now);
        }
        if !outcome.blames_nobody() {
            let ok = outcome == Outcome::Success;
            b.latency.observe(ok, seconds, now);
            if let Some(sample) = sample {
                self.learn(b, ok, sample, now);
                if ok {
                    self.hedging
                        .record(Duration::try_from_secs_f64(sample).unwrap_or_default(), now);
                }
            }
        }
        if let Some(cfg) = &self.config.circuit_breaker {
            if let Some(t) = b
                .breaker
                .on_outcome(cfg, outcome, (seconds * 1000.0) as u64, now)
            {
                self.report(b, &t);
            }
        }
        let Some(cfg) = &self.config.outlier else {
            return;
        };
        match outcome {
            Outcome::Success => b.outlier.success(),
            Outcome::ClientAbort
            | Outcome::ClientError
            | Outcome::ClientTimeout
            | Outcome::LocalError
            | Outcome::Cancelled
            | Outcome::Backpressure => {}
            Outcome::Http5xx
            | Outcome::GrpcError
            | Outcome::ConnectError
            | Outcome::Timeout
            | Outcome::Error
            | Outcome::TlsUntrusted
            | Outcome::TlsNameMismatch
            | Outcome::TlsTimeout
            | Outcome::TlsError => {
                if let Some(ms) = b.outlier.failure(now, cfg, || self.may_eject(now)) {
                    b.gauges.ejected.set(1);
                    b.gauges.ejections.inc();
                    let reason = format!(
                        "{} consecutive failures (last: {})",
                        cfg.consecutive_failures,
                        outcome.as_str()
                    );
                    let message = format!(
                        "backend ejected for {} after {reason}",
                        humantime::format_duration(Duration::from_millis(ms)),
                    );
                    self.metrics.events.record(
                        Event::new(Kind::Ejection, Level::Warn, "ejected", reason)
                            .backend(&self.name, &b.label)
                            .from_state("available")
                            .message(message),
                    );
                }
            }
        }
    }

    /// True when ejecting one more backend stays within `max_ejection_percent` (at least one
    /// backend may always be ejected unless the percentage is 0, as in Envoy).
    pub(super) fn may_eject(&self, now: u64) -> bool {
        let Some(cfg) = &self.config.outlier else {
            return false;
        };
        let ejected = self
            .backends
            .iter()
            .filter(|b| b.outlier.ejected(now))
            .count();
        let n = self.backends.len();
        // At least one backend may be ejected (as in Envoy), except the only backend of a
        // pool, which only `max_ejection_percent = 100` may eject: with nothing to send its
        // requests to instead, ejecting it turns every failure into a 503 for everyone.
        let at_least = usize::from(cfg.max_ejection_percent > 0 && n > 1);
        let max = (n * cfg.max_ejection_percent as usize / 100).max(at_least);
        ejected < max
    }
}
