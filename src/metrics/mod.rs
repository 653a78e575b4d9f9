//! One `Metrics` struct for the process, registered once in its own registry (no global
//! default registry, so tests and reloads never collide). Label values are bounded: route and
//! upstream names, backend addresses from the config, and closed sets declared with
//! [`crate::label_set!`]. Handles used per request are resolved when a snapshot is built, by the
//! module that owns the concern (`RouteStats` here; `upstream::stats`, `cache::stats`,
//! `limit`), so the hot path does an atomic add, not a label lookup.
//!
//! This module knows no other part of brace but `events`: the closed sets belong to their
//! owners and reach it through [`LabelSet`] (`labels`). Per-route handles: `route`.

pub mod deploy;
mod labels;
mod reg;
mod route;

pub use labels::{remove_by, remove_by2, ByLabel, LabelSet};
pub use reg::Family;
use reg::Reg;
pub use route::RouteStats;

use prometheus::{
    Encoder, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder,
};

/// Buckets for request durations, in seconds (1 ms … 30 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const UB: &[&str] = &["upstream", "backend"];

pub struct Metrics {
    registry: Registry,
    /// Recent transitions, for `/api/events` (not a metric family; carried here because every
    /// part that reports a transition already holds the metrics).
    pub events: crate::events::Events,
    pub deploy: deploy::DeployMetrics,
    /// Every family, whether or not it has a series yet.
    families: Vec<Family>,

    // Process and client side.
    pub build_info: IntGaugeVec,
    pub connections_active: IntGauge,
    pub connections_refused_total: IntCounter,
    pub connections_idle_closed_total: IntCounter,
    pub requests_in_flight: IntGauge,
    /// Requests refused as malformed before routing, by reason (a fixed set of brace's own
    /// strings, never client text).
    pub requests_refused_total: IntCounterVec,
    /// Mirrors the access log writer's own count (`LogControl::access_dropped`) at scrape.
    pub access_log_dropped_lines_total: IntCounter,
    pub process_log_dropped_lines_total: IntCounter,

    // Routes.
    pub requests_total: IntCounterVec,
    pub request_duration: HistogramVec,
    pub rate_limit_decisions_total: IntCounterVec,
    pub rate_limit_keys: IntGaugeVec,
    pub rate_limit_keys_evicted_total: IntCounterVec,
    pub access_decisions_total: IntCounterVec,
    pub cors_preflights_total: IntCounterVec,

    // Upstreams (per pool).
    pub retries_total: IntCounterVec,
    pub retry_budget_exhausted_total: IntCounterVec,
    pub backup_used_total: IntCounterVec,
    pub breaker_rejected_total: IntCounterVec,
    pub in_flight_rejected_total: IntCounterVec,
    pub shed_total: IntCounterVec,
    pub hedges_total: IntCounterVec,
    pub queue_length: IntGaugeVec,
    pub queue_wait: HistogramVec,
    pub shedding: IntGaugeVec,

    // Backends (per upstream and backend; `upstream::stats::forget_backend` removes them).
    pub upstream_requests_total: IntCounterVec,
    pub upstream_request_duration: HistogramVec,
    pub upstream_in_flight: IntGaugeVec,
    pub concurrency_limit: IntGaugeVec,
    pub backend_healthy: IntGaugeVec,
    pub backend_ejected: IntGaugeVec,
    pub backend_slow: IntGaugeVec,
    pub backend_draining: IntGaugeVec,
    pub pauses_total: IntCounterVec,
    pub ejections_total: IntCounterVec,
    pub health_checks_total: IntCounterVec,
    pub breaker_state: IntGaugeVec,
    pub breaker_transitions_total: IntCounterVec,
    pub breaker_shadow_trips_total: IntCounterVec,

    // Cache.
    pub cache_requests_total: IntCounterVec,
    pub cache_not_stored_total: IntCounterVec,
    pub cache_lock_waits_total: IntCounterVec,
    pub cache_stored_bytes: IntGauge,
    pub cache_entries: IntGauge,
    pub cache_evictions_total: IntCounter,
    pub cache_purged_total: IntCounter,

    // Config.
    pub config_info: IntGaugeVec,
    pub config_reloads_total: IntCounterVec,
    pub config_last_reload_success: IntGauge,
    pub config_last_reload_successful: IntGauge,
    pub config_restart_required: IntGauge,
    pub tls_certificate_expiry: IntGaugeVec,

    // Tracing.
    pub tracing_spans_exported_total: IntCounter,
    pub tracing_spans_dropped_total: IntCounterVec,

    // Cluster.
    pub cluster_connected: IntGauge,
    pub cluster_store_errors_total: IntCounterVec,
    pub cluster_purges_total: IntCounterVec,
    pub cluster_cache_resyncs_total: IntCounter,
    pub rate_limit_store_errors_total: IntCounterVec,
    pub rate_limit_store_fallbacks_total: IntCounterVec,
    pub rate_limit_store_wait: HistogramVec,
    pub fleet_instances: IntGaugeVec,
    pub fleet_drift: IntGauge,
    pub dns_lookups_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = Reg(&registry, Default::default());
        let mut m = Metrics {
            build_info: r.gauges(
                "brace_build_info",
                "Always 1; the version of this binary",
                &["version"],
            ),
            connections_active: r.gauge(
                "brace_connections_active",
                "Client connections open on the proxy listeners, idle keep-alive ones included",
            ),
            connections_refused_total: r.counter(
                "brace_connections_refused_total",
                "Client connections closed on accept because max_connections were open",
            ),
            connections_idle_closed_total: r.counter(
                "brace_connections_idle_closed_total",
                "Idle client connections closed to admit a new one at max_connections",
            ),
            requests_in_flight: r.gauge(
                "brace_requests_in_flight",
                "Requests being processed by the proxy",
            ),
            requests_refused_total: r.counters(
                "brace_requests_refused_total",
                "Requests answered 400 before routing because the target, Host or framing is malformed, by reason",
                &["reason"],
            ),
            access_log_dropped_lines_total: r.counter(
                "brace_access_log_dropped_lines_total",
                "Access log records dropped because the log target could not keep up",
            ),
            process_log_dropped_lines_total: r.counter(
                "brace_process_log_dropped_lines_total",
                "Process log lines dropped because stderr could not keep up",
            ),

            requests_total: r.counters(
                "brace_requests_total",
                "Requests answered, by route and status code",
                &["route", "code"],
            ),
            request_duration: r.histograms(
                "brace_request_duration_seconds",
                "Time from request start to the end of the response, by route",
                &["route"],
            ),
            rate_limit_decisions_total: r.counters(
                "brace_rate_limit_decisions_total",
                "Rate limit decisions (allowed, limited, shadow_limited)",
                &["route", "limit", "decision"],
            ),
            rate_limit_keys: r.gauges(
                "brace_rate_limit_keys",
                "Keys with a bucket in memory (at most max_keys)",
                &["limit"],
            ),
            access_decisions_total: r.counters(
                "brace_access_decisions_total",
                "Access decisions on routes with allow, deny or basic_auth (allowed, denied: 403, unauthorized: 401)",
                &["route", "decision"],
            ),
            cors_preflights_total: r.counters(
                "brace_cors_preflights_total",
                "CORS preflights brace answered on routes with [route.cors], by result (allowed: 204, refused: 403)",
                &["route", "result"],
            ),
            rate_limit_keys_evicted_total: r.counters(
                "brace_rate_limit_keys_evicted_total",
                "Keys forgotten because the limit held max_keys keys (their clients start a fresh bucket)",
                &["limit"],
            ),

            retries_total: r.counters(
                "brace_upstream_retries_total",
                "Retries, by what failed (connect_error, timeout, error, 502, 503, 504)",
                &["upstream", "reason"],
            ),
            retry_budget_exhausted_total: r.counters(
                "brace_upstream_retry_budget_exhausted_total",
                "Retries not made because the retry budget was spent",
                &["upstream"],
            ),
            backup_used_total: r.counters(
                "brace_upstream_backup_used_total",
                "Requests sent to this upstream's backup because it had no available backend",
                &["upstream"],
            ),
            breaker_rejected_total: r.counters(
                "brace_circuit_breaker_rejected_total",
                "Requests answered 503 because every breaker of the pool was open",
                &["upstream"],
            ),
            in_flight_rejected_total: r.counters(
                "brace_upstream_in_flight_rejected_total",
                "Requests answered 503 because the pool was at max_in_flight",
                &["upstream"],
            ),
            shed_total: r.counters(
                "brace_requests_shed_total",
                "Requests answered 503 because every backend of the pool was at its adaptive limit, by route priority and reason (queue_full, queue_timeout, evicted)",
                &["upstream", "priority", "reason"],
            ),
            hedges_total: r.counters(
                "brace_upstream_hedges_total",
                "Hedged requests' second attempts: sent, and won (answered before the first)",
                &["upstream", "result"],
            ),
            queue_length: r.gauges(
                "brace_upstream_queue_length",
                "Requests waiting for room under the backends' adaptive limits",
                &["upstream"],
            ),
            queue_wait: r.histograms(
                "brace_upstream_queue_wait_seconds",
                "Time requests waited in the pool's queue, admitted or shed",
                &["upstream"],
            ),
            shedding: r.gauges(
                "brace_upstream_shedding",
                "1 while the pool sheds requests (one shed in the last 5 s)",
                &["upstream"],
            ),

            upstream_requests_total: r.counters(
                "brace_upstream_requests_total",
                "Requests sent to backends, by outcome (success, http_5xx, grpc_error, connect_error, timeout, tls_untrusted, tls_name_mismatch, tls_timeout, tls_error, error, client_abort, client_error, client_timeout)",
                &["upstream", "backend", "outcome"],
            ),
            upstream_request_duration: r.histograms(
                "brace_upstream_request_duration_seconds",
                "Time from choosing a backend to the end of its response",
                UB,
            ),
            upstream_in_flight: r.gauges(
                "brace_upstream_in_flight",
                "Requests in flight to the backend",
                UB,
            ),
            concurrency_limit: r.gauges(
                "brace_upstream_concurrency_limit",
                "The backend's adaptive concurrency limit (requests in flight brace allows it)",
                UB,
            ),
            backend_healthy: r.gauges(
                "brace_upstream_backend_healthy",
                "1 unless active health checks mark the backend unhealthy",
                UB,
            ),
            backend_ejected: r.gauges(
                "brace_upstream_backend_ejected",
                "1 while outlier detection has ejected the backend",
                UB,
            ),
            backend_slow: r.gauges(
                "brace_upstream_backend_slow",
                "1 while the backend is much slower than its peers' median (latency_ratio): it gets a small share of requests",
                UB,
            ),
            backend_draining: r.gauges(
                "brace_upstream_backend_draining",
                "1 while an operator drains the backend: it gets no new requests",
                UB,
            ),
            pauses_total: r.counters(
                "brace_upstream_pauses_total",
                "Pauses a backend asked for with Retry-After (on a 503, or a 429 when retry.pause_on has it)",
                UB,
            ),
            ejections_total: r.counters(
                "brace_upstream_ejections_total",
                "Ejections by outlier detection",
                UB,
            ),
            health_checks_total: r.counters(
                "brace_upstream_health_checks_total",
                "Active health checks, by result (pass, fail)",
                &["upstream", "backend", "result"],
            ),
            breaker_state: r.gauges(
                "brace_circuit_breaker_state",
                "Circuit breaker state: 0 closed, 1 half-open, 2 open",
                UB,
            ),
            breaker_transitions_total: r.counters(
                "brace_circuit_breaker_transitions_total",
                "Circuit breaker state changes, by new state and reason",
                &["upstream", "backend", "to", "reason"],
            ),
            breaker_shadow_trips_total: r.counters(
                "brace_circuit_breaker_shadow_trips_total",
                "Trips a breaker in shadow mode would have made",
                &["upstream", "backend", "reason"],
            ),

            cache_requests_total: r.counters(
                "brace_cache_requests_total",
                "Requests on caching routes, by cache status (HIT, MISS, EXPIRED, STALE, REVALIDATED, BYPASS, UNCACHEABLE)",
                &["route", "status"],
            ),
            cache_not_stored_total: r.counters(
                "brace_cache_not_stored_total",
                "Responses not stored, by reason",
                &["route", "reason"],
            ),
            cache_lock_waits_total: r.counters(
                "brace_cache_lock_waits_total",
                "Requests that waited on another request's fill, by result (served_from_cache, went_upstream)",
                &["route", "result"],
            ),
            cache_stored_bytes: r.gauge(
                "brace_cache_stored_bytes",
                "Bytes held by the cache (headers, bodies, keys), counted when /metrics is read",
            ),
            cache_entries: r.gauge("brace_cache_entries", "Entries in the cache"),
            cache_evictions_total: r.counter(
                "brace_cache_evictions_total",
                "Entries evicted to stay within max_size",
            ),
            cache_purged_total: r.counter(
                "brace_cache_purged_total",
                "Entries removed by purge, clear or invalidation by unsafe methods",
            ),

            config_info: r.gauges(
                "brace_config_info",
                "1 for the hash of the config in force",
                &["hash"],
            ),
            config_reloads_total: r.counters(
                "brace_config_reloads_total",
                "Config reloads, by result (success, failure)",
                &["result"],
            ),
            config_last_reload_success: r.gauge(
                "brace_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful reload (0 = none yet)",
            ),
            config_last_reload_successful: r.gauge(
                "brace_config_last_reload_successful",
                "1 when the last reload succeeded (or none was tried), 0 when it failed",
            ),
            config_restart_required: r.gauge(
                "brace_config_restart_required",
                "1 when the last applied config changed keys that only a restart applies",
            ),
            tls_certificate_expiry: r.gauges(
                "brace_tls_certificate_expiry_timestamp_seconds",
                "Unix time after which a certificate a TLS listener serves is no longer valid",
                &["listener", "subject"],
            ),
            tracing_spans_exported_total: r.counter(
                "brace_tracing_spans_exported_total",
                "Spans the OTLP collector accepted",
            ),
            tracing_spans_dropped_total: r.counters(
                "brace_tracing_spans_dropped_total",
                "Spans not exported, by reason (queue_full: the export queue was full; export_failed: the collector refused or could not be reached)",
                &["reason"],
            ),
            cluster_connected: r.gauge(
                "brace_cluster_connected",
                "1 while the [cluster] Redis answers; 0 before the first answer and after a failed command",
            ),
            cluster_store_errors_total: r.counters(
                "brace_cluster_store_errors_total",
                "Commands to the [cluster] Redis that failed or timed out, by what they were for (rate_limit, publish, heartbeat, fleet)",
                &["op"],
            ),
            cluster_purges_total: r.counters(
                "brace_cluster_purges_total",
                "Cluster-wide purges and invalidations, by direction (published by this instance, received from another)",
                &["direction"],
            ),
            cluster_cache_resyncs_total: r.counter(
                "brace_cluster_cache_resyncs_total",
                "Times the cache was cleared because the purge subscription had been lost (a purge may have been missed)",
            ),
            rate_limit_store_errors_total: r.counters(
                "brace_rate_limit_store_errors_total",
                "Lease requests of a global rate limit that Redis did not answer in time",
                &["limit"],
            ),
            rate_limit_store_fallbacks_total: r.counters(
                "brace_rate_limit_store_fallbacks_total",
                "Requests a global rate limit decided by its on_store_error fallback because Redis could not be reached",
                &["limit"],
            ),
            rate_limit_store_wait: r.histograms_in(
                "brace_rate_limit_store_wait_seconds",
                "Time requests waited on Redis for a global rate limit's lease (most requests wait not at all and are not counted)",
                &["limit"],
                &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
            ),
            fleet_instances: r.gauges(
                "brace_fleet_instances",
                "Live instances of the fleet sharing the [cluster] Redis, by the config hash they run",
                &["config_hash"],
            ),
            fleet_drift: r.gauge(
                "brace_fleet_drift",
                "1 when some live instance runs another config or version than the majority",
            ),
            dns_lookups_total: r.counters(
                "brace_dns_lookups_total",
                "DNS lookups of an upstream's host-name or SRV backends (resolve), by result (ok, failed: the last answer is kept)",
                &["upstream", "result"],
            ),
            // A Registry is a handle (an Arc) to the same collectors.
            registry: registry.clone(),
            events: Default::default(),
            deploy: deploy::DeployMetrics::new(&r),
            families: Vec::new(),
        };
        m.families = r.1.take();
        m.config_last_reload_successful.set(1);
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// Every family brace exports (a histogram by its name, without `_bucket`, `_sum` and
    /// `_count`), including those with no series yet: what dashboards and alert rules may
    /// name, and which families carry a given label.
    pub fn families(&self) -> &[Family] {
        &self.families
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
        RouteStats::new(
            self.requests_total.clone(),
            self.request_duration.with_label_values(&[route]),
            route,
        )
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
