//! The deploy tools' families: canary rollouts (`canary`, `runtime::canary`), mirrored
//! copies (`mirror`) and retries a body too long to keep could not make (`proxy::attempt`).

use super::reg::Reg;
use prometheus::{IntCounterVec, IntGaugeVec};

pub struct DeployMetrics {
    /// The canary's share of its route's requests now, in percent.
    pub percent: IntGaugeVec,
    /// Rollout transitions by route and new state (`step`, `aborted`, `promoted`, `resumed`).
    pub transitions_total: IntCounterVec,
    /// Requests of a route with a canary, by side (`baseline`, `canary`) and result (`ok`,
    /// `failed`: a 5xx), as the analysis counts them.
    pub requests_total: IntCounterVec,
    /// Copies of requests to a route's shadow upstream, by result.
    pub mirror_requests_total: IntCounterVec,
    /// Retries the `retry` table allowed but brace could not make, by reason
    /// (`body_not_buffered`: the body had outgrown `retry.buffer_body`).
    pub retries_skipped_total: IntCounterVec,
}

impl DeployMetrics {
    pub(super) fn new(r: &Reg) -> DeployMetrics {
        DeployMetrics {
            percent: r.gauges(
                "brace_canary_percent",
                "The canary's share of its route's requests now, in percent",
                &["route"],
            ),
            transitions_total: r.counters(
                "brace_canary_transitions_total",
                "Canary rollout transitions, by the state entered (step, aborted, promoted, resumed)",
                &["route", "to"],
            ),
            requests_total: r.counters(
                "brace_canary_requests_total",
                "Requests of a route with a canary, by side (baseline, canary) and result (ok, failed: a 5xx)",
                &["route", "side", "result"],
            ),
            mirror_requests_total: r.counters(
                "brace_mirror_requests_total",
                "Copies of a route's requests to its mirror upstream, by result (answered, failed, dropped: too many out, skipped: body over max_body or unfinished)",
                &["route", "upstream", "result"],
            ),
            retries_skipped_total: r.counters(
                "brace_upstream_retries_skipped_total",
                "Retries the retry table allowed but brace could not make, by reason (body_not_buffered: the request body was over retry.buffer_body)",
                &["upstream", "reason"],
            ),
        }
    }
}
