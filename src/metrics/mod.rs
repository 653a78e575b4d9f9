//! One `Metrics` struct for the process, registered once in its own registry (no global
//! default registry, so tests and reloads never collide). Label values are bounded: route and
//! upstream names, backend addresses from the config, enums. Handles used per request are
//! resolved when a snapshot is built (see `RouteStats`, `BackendStats`), so the hot path does
//! an atomic add, not a label lookup.

mod handles;

pub use handles::*;

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for request durations, in seconds (1 ms … 30 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Status codes that get a cached counter per route (created on first use, then read with one
/// atomic load); others are looked up by label each time.
const COMMON_CODES: &[u16] = &[
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504,
];

pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_requests_total: IntCounterVec,
    pub upstream_request_duration: HistogramVec,
    pub connections_active: IntGauge,
    pub requests_in_flight: IntGauge,
    pub build_info: IntGaugeVec,
    pub config_info: IntGaugeVec,
    pub backend_healthy: IntGaugeVec,
    pub backend_ejected: IntGaugeVec,
    pub ejections_total: IntCounterVec,
    pub health_checks_total: IntCounterVec,
    pub retries_total: IntCounterVec,
    pub retry_budget_exhausted_total: IntCounterVec,
    pub upstream_in_flight: IntGaugeVec,
    pub backup_used_total: IntCounterVec,
    pub breaker_state: IntGaugeVec,
    pub breaker_transitions_total: IntCounterVec,
    pub breaker_rejected_total: IntCounterVec,
    pub breaker_shadow_trips_total: IntCounterVec,
    pub in_flight_rejected_total: IntCounterVec,
    pub rate_limit_decisions_total: IntCounterVec,
    pub rate_limit_keys: IntGaugeVec,
    pub config_reloads_total: IntCounterVec,
    pub config_last_reload_success: IntGauge,
    pub config_last_reload_successful: IntGauge,
    pub config_restart_required: IntGauge,
    /// Mirrors the access log writer's own count (`LogControl::access_dropped`) at scrape.
    pub access_log_dropped_lines_total: IntCounter,
    pub connections_refused_total: IntCounter,
    pub cache_requests_total: IntCounterVec,
    pub cache_not_stored_total: IntCounterVec,
    pub cache_stored_bytes: IntGauge,
    pub cache_entries: IntGauge,
    pub cache_evictions_total: IntCounter,
    pub cache_purged_total: IntCounter,
    /// Requests refused as malformed before routing, by reason (a fixed set of brace's own
    /// strings, never client text).
    pub requests_refused_total: IntCounterVec,
    pub cache_lock_waits_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new(
                "brace_requests_total",
                "Requests answered, by route and status code",
            ),
            &["route", "code"],
        )
        .expect("static metric definition");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "brace_request_duration_seconds",
                "Time from request start to the end of the response, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("static metric definition");
        let upstream_requests_total = IntCounterVec::new(
            Opts::new(
                "brace_upstream_requests_total",
                "Requests sent to backends, by outcome (success, http_5xx, connect_error, timeout, error, client_abort)",
            ),
            &["upstream", "backend", "outcome"],
        )
        .expect("static metric definition");
        let upstream_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "brace_upstream_request_duration_seconds",
                "Time from choosing a backend to the end of its response",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["upstream", "backend"],
        )
        .expect("static metric definition");
        let connections_active = IntGauge::new(
            "brace_connections_active",
            "Client connections open on the proxy listeners, idle keep-alive ones included",
        )
        .expect("static metric definition");
        let requests_in_flight = IntGauge::new(
            "brace_requests_in_flight",
            "Requests being processed by the proxy",
        )
        .expect("static metric definition");
        let build_info = IntGaugeVec::new(
            Opts::new("brace_build_info", "Always 1; the version of this binary"),
            &["version"],
        )
        .expect("static metric definition");
        let config_info = IntGaugeVec::new(
            Opts::new("brace_config_info", "1 for the hash of the config in force"),
            &["hash"],
        )
        .expect("static metric definition");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition")
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
        };
        let ub = &["upstream", "backend"];
        let backend_healthy = gauge(
            "brace_upstream_backend_healthy",
            "1 unless active health checks mark the backend unhealthy",
            ub,
        );
        let backend_ejected = gauge(
            "brace_upstream_backend_ejected",
            "1 while outlier detection has ejected the backend",
            ub,
        );
        let ejections_total = counter(
            "brace_upstream_ejections_total",
            "Ejections by outlier detection",
            ub,
        );
        let health_checks_total = counter(
            "brace_upstream_health_checks_total",
            "Active health checks, by result (pass, fail)",
            &["upstream", "backend", "result"],
        );
        let retries_total = counter(
            "brace_upstream_retries_total",
            "Retries, by what failed (connect_error, timeout, error, 502, 503, 504)",
            &["upstream", "reason"],
        );
        let retry_budget_exhausted_total = counter(
            "brace_upstream_retry_budget_exhausted_total",
            "Retries not made because the retry budget was spent",
            &["upstream"],
        );
        let upstream_in_flight = gauge(
            "brace_upstream_in_flight",
            "Requests in flight to the backend",
            ub,
        );
        let backup_used_total = counter(
            "brace_upstream_backup_used_total",
            "Requests sent to this upstream's backup because it had no available backend",
            &["upstream"],
        );
        let breaker_state = gauge(
            "brace_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            ub,
        );
        let breaker_transitions_total = counter(
            "brace_circuit_breaker_transitions_total",
            "Circuit breaker state changes, by new state and reason",
            &["upstream", "backend", "to", "reason"],
        );
        let breaker_rejected_total = counter(
            "brace_circuit_breaker_rejected_total",
            "Requests answered 503 because every breaker of the pool was open",
            &["upstream"],
        );
        let breaker_shadow_trips_total = counter(
            "brace_circuit_breaker_shadow_trips_total",
            "Trips a breaker in shadow mode would have made",
            &["upstream", "backend", "reason"],
        );
        let in_flight_rejected_total = counter(
            "brace_upstream_in_flight_rejected_total",
            "Requests answered 503 because the pool was at max_in_flight",
            &["upstream"],
        );
        let rate_limit_decisions_total = counter(
            "brace_rate_limit_decisions_total",
            "Rate limit decisions (allowed, limited, shadow_limited)",
            &["route", "limit", "decision"],
        );
        let rate_limit_keys = gauge(
            "brace_rate_limit_keys",
            "Keys with a bucket in memory (at most max_keys)",
            &["limit"],
        );
        let config_reloads_total = counter(
            "brace_config_reloads_total",
            "Config reloads, by result (success, failure)",
            &["result"],
        );
        let config_last_reload_success = IntGauge::new(
            "brace_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful reload (0 = none yet)",
        )
        .expect("static metric definition");
        let config_last_reload_successful = IntGauge::new(
            "brace_config_last_reload_successful",
            "1 when the last reload succeeded (or none was tried), 0 when it failed",
        )
        .expect("static metric definition");
        config_last_reload_successful.set(1);
        let access_log_dropped_lines_total = IntCounter::new(
            "brace_access_log_dropped_lines_total",
            "Access log records dropped because the log target could not keep up",
        )
        .expect("static metric definition");
        let connections_refused_total = IntCounter::new(
            "brace_connections_refused_total",
            "Client connections closed on accept because max_connections were open",
        )
        .expect("static metric definition");
        let config_restart_required = IntGauge::new(
            "brace_config_restart_required",
            "1 when the last applied config changed keys that only a restart applies",
        )
        .expect("static metric definition");
        let cache_requests_total = counter(
            "brace_cache_requests_total",
            "Requests on caching routes, by cache status (HIT, MISS, EXPIRED, STALE, REVALIDATED, BYPASS, UNCACHEABLE)",
            &["route", "status"],
        );
        let cache_not_stored_total = counter(
            "brace_cache_not_stored_total",
            "Responses not stored, by reason",
            &["route", "reason"],
        );
        let cache_stored_bytes = IntGauge::new(
            "brace_cache_stored_bytes",
            "Bytes held by the cache (headers, bodies, keys), counted when /metrics is read",
        )
        .expect("static metric definition");
        let cache_entries = IntGauge::new("brace_cache_entries", "Entries in the cache")
            .expect("static metric definition");
        let cache_evictions_total = IntCounter::new(
            "brace_cache_evictions_total",
            "Entries evicted to stay within max_size",
        )
        .expect("static metric definition");
        let cache_purged_total = IntCounter::new(
            "brace_cache_purged_total",
            "Entries removed by purge, clear or invalidation by unsafe methods",
        )
        .expect("static metric definition");
        let requests_refused_total = counter(
            "brace_requests_refused_total",
            "Requests answered 400 before routing because the target, Host or framing is malformed, by reason",
            &["reason"],
        );
        registry
            .register(Box::new(requests_refused_total.clone()))
            .expect("metric registered once");
        let cache_lock_waits_total = counter(
            "brace_cache_lock_waits_total",
            "Requests that waited on another request's fill, by result (served_from_cache, went_upstream)",
            &["route", "result"],
        );
        for c in [
            Box::new(cache_requests_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cache_not_stored_total.clone()),
            Box::new(cache_stored_bytes.clone()),
            Box::new(cache_entries.clone()),
            Box::new(cache_evictions_total.clone()),
            Box::new(cache_purged_total.clone()),
            Box::new(cache_lock_waits_total.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        for c in [
            Box::new(config_reloads_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(config_last_reload_success.clone()),
            Box::new(config_last_reload_successful.clone()),
            Box::new(config_restart_required.clone()),
            Box::new(access_log_dropped_lines_total.clone()),
            Box::new(connections_refused_total.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        for c in [
            Box::new(breaker_state.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(breaker_transitions_total.clone()),
            Box::new(breaker_rejected_total.clone()),
            Box::new(breaker_shadow_trips_total.clone()),
            Box::new(in_flight_rejected_total.clone()),
            Box::new(rate_limit_decisions_total.clone()),
            Box::new(rate_limit_keys.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        for c in [
            Box::new(backend_healthy.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(backend_ejected.clone()),
            Box::new(ejections_total.clone()),
            Box::new(health_checks_total.clone()),
            Box::new(retries_total.clone()),
            Box::new(retry_budget_exhausted_total.clone()),
            Box::new(upstream_in_flight.clone()),
            Box::new(backup_used_total.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        for c in [
            Box::new(requests_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(upstream_requests_total.clone()),
            Box::new(upstream_request_duration.clone()),
            Box::new(connections_active.clone()),
            Box::new(requests_in_flight.clone()),
            Box::new(build_info.clone()),
            Box::new(config_info.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            registry,
            requests_total,
            request_duration,
            upstream_requests_total,
            upstream_request_duration,
            connections_active,
            requests_in_flight,
            build_info,
            config_info,
            backend_healthy,
            backend_ejected,
            ejections_total,
            health_checks_total,
            retries_total,
            retry_budget_exhausted_total,
            upstream_in_flight,
            backup_used_total,
            breaker_state,
            breaker_transitions_total,
            breaker_rejected_total,
            breaker_shadow_trips_total,
            in_flight_rejected_total,
            rate_limit_decisions_total,
            rate_limit_keys,
            config_reloads_total,
            config_last_reload_success,
            config_last_reload_successful,
            config_restart_required,
            access_log_dropped_lines_total,
            connections_refused_total,
            cache_requests_total,
            cache_not_stored_total,
            cache_stored_bytes,
            cache_entries,
            cache_evictions_total,
            cache_purged_total,
            requests_refused_total,
            cache_lock_waits_total,
        }
    }

    /// Marks `hash` as the config in force (and no other).
    pub fn set_config_hash(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    pub fn route_stats(&self, route: &str) -> RouteStats {
        RouteStats {
            codes: COMMON_CODES.iter().map(|_| OnceLock::new()).collect(),
            requests_total: self.requests_total.clone(),
            duration: self.request_duration.with_label_values(&[route]),
            route: route.to_owned(),
        }
    }

    pub fn backend_stats(&self, upstream: &str, backend: &str) -> BackendStats {
        BackendStats {
            outcomes: crate::upstream::outcome::Outcome::ALL.map(|o| {
                self.upstream_requests_total
                    .with_label_values(&[upstream, backend, o.as_str()])
            }),
            duration: self
                .upstream_request_duration
                .with_label_values(&[upstream, backend]),
        }
    }
}
