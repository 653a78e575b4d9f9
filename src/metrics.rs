//! One `Metrics` struct for the process, registered once in its own registry (no global
//! default registry, so tests and reloads never collide). Label values are bounded: route and
//! upstream names, backend addresses from the config, enums. Handles used per request are
//! resolved when a snapshot is built (see `RouteStats`, `BackendStats`), so the hot path does
//! an atomic add, not a label lookup.

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
            "Client connections open on the proxy listeners",
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-route handles, resolved at snapshot build.
pub struct RouteStats {
    /// Parallel to `COMMON_CODES`.
    codes: Box<[OnceLock<IntCounter>]>,
    requests_total: IntCounterVec,
    duration: Histogram,
    route: String,
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
    outcomes: [IntCounter; crate::upstream::outcome::Outcome::COUNT],
    duration: Histogram,
}

impl BackendStats {
    pub fn record(&self, outcome: crate::upstream::outcome::Outcome, seconds: f64) {
        self.outcomes[outcome as usize].inc();
        self.duration.observe(seconds);
    }
}
