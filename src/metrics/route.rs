//! Per-route handles (`brace_requests_total`, `brace_request_duration_seconds`), resolved at
//! snapshot build: the common status codes' counters are made on first use and then read with
//! one atomic load.

use prometheus::{Histogram, IntCounter, IntCounterVec};
use std::sync::OnceLock;

/// Status codes that get a cached counter per route (created on first use, then read with one
/// atomic load); others are looked up by label each time.
const COMMON_CODES: &[u16] = &[
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504,
];

/// Per-route handles, resolved at snapshot build.
pub struct RouteStats {
    /// Parallel to `COMMON_CODES`.
    codes: Box<[OnceLock<IntCounter>]>,
    requests_total: IntCounterVec,
    duration: Histogram,
    route: String,
}

impl RouteStats {
    pub fn new(requests_total: IntCounterVec, duration: Histogram, route: &str) -> RouteStats {
        RouteStats {
            codes: COMMON_CODES.iter().map(|_| OnceLock::new()).collect(),
            requests_total,
            duration,
            route: route.to_owned(),
        }
    }

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

#[cfg(test)]
mod tests {
    #[test]
    fn common_and_uncommon_codes_are_counted_under_the_route() {
        let m = crate::metrics::Metrics::new();
        let s = m.route_stats("r");
        s.record(200, 0.01);
        s.record(200, 0.02);
        s.record(418, 0.03);
        let count = |code: &str| m.requests_total.with_label_values(&["r", code]).get();
        assert_eq!((count("200"), count("418")), (2, 1));
        assert_eq!(
            m.request_duration
                .with_label_values(&["r"])
                .get_sample_count(),
            3
        );
    }
}
