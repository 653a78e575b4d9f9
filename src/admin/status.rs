//! `GET /api/status`: what the status page shows that the counters alone do not, computed
//! over the last few seconds: requests per second, error share and p50/p99 latency per
//! route, refusals per second per rate limit, the cache hit ratio; with the version, uptime,
//! config hash and the last reload.
//!
//! A background task in the admin service takes a [`Sample`] of the cumulative counters once
//! a second and keeps the last [`KEEP`]; a rate is the difference between the newest and the
//! oldest sample over the time between them (as Prometheus's `rate()` over a range), and a
//! percentile is interpolated inside the histogram bucket that holds it (as
//! `histogram_quantile`), so the page and a Grafana panel agree to within a bucket.

use crate::metrics::Metrics;
use crate::runtime::State;
use prometheus::core::Collector;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Samples kept: one a second, so rates cover the last ten seconds.
pub const KEEP: usize = 11;

/// A route's cumulative figures at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteSample {
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    /// `(upper bound in seconds, cumulative count)`, ascending, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
}

/// The cumulative counters the page turns into rates, at one instant.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    pub routes: BTreeMap<String, RouteSample>,
    /// Requests refused (`limited`) per rate limit, all routes together.
    pub limited: BTreeMap<String, u64>,
    /// `(hits, cache requests)` over every caching route.
    pub cache: (u64, u64),
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

impl Sample {
    /// Reads the counters now.
    pub fn take(metrics: &Metrics, at: Instant) -> Sample {
        let mut routes: BTreeMap<String, RouteSample> = BTreeMap::new();
        for f in metrics.requests_total.collect() {
            for m in f.get_metric() {
                let r = routes.entry(label(m, "route").to_owned()).or_default();
                let n = m.get_counter().get_value() as u64;
                r.requests += n;
                if label(m, "code").starts_with('5') {
                    r.errors += n;
                }
            }
        }
        for f in metrics.request_duration.collect() {
            for m in f.get_metric() {
                let r = routes.entry(label(m, "route").to_owned()).or_default();
                let h = m.get_histogram();
                r.buckets = h
                    .get_bucket()
                    .iter()
                    .map(|b| (b.upper_bound(), b.cumulative_count()))
                    .chain([(f64::INFINITY, h.get_sample_count())])
                    .collect();
            }
        }
        let mut limited: BTreeMap<String, u64> = BTreeMap::new();
        for f in metrics.rate_limit_decisions_total.collect() {
            for m in f.get_metric() {
                let n = limited.entry(label(m, "limit").to_owned()).or_default();
                if label(m, "decision") == "limited" {
                    *n += m.get_counter().get_value() as u64;
                }
            }
        }
        let mut cache = (0, 0);
        for f in metrics.cache_requests_total.collect() {
            for m in f.get_metric() {
                let n = m.get_counter().get_value() as u64;
                cache.1 += n;
                if label(m, "status") == "HIT" {
                    cache.0 += n;
                }
            }
        }
        Sample {
            at,
            routes,
            limited,
            cache,
        }
    }
}

/// The `q` quantile (0..1), in seconds, of the observations between two cumulative
/// histograms; `None` without observations. Interpolates linearly inside the bucket, and
/// answers the largest finite bound for the `+Inf` bucket, as `histogram_quantile` does.
pub fn quantile(q: f64, old: &[(f64, u64)], new: &[(f64, u64)]) -> Option<f64> {
    let delta: Vec<(f64, u64)> = new
        .iter()
        .map(|&(le, n)| {
            let before = old.iter().find(|(l, _)| *l == le).map_or(0, |&(_, c)| c);
            (le, n.saturating_sub(before))
        })
        .collect();
    let total = delta.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, n) in &delta {
        if n as f64 >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let inside = (n - lower.1) as f64;
            let frac = if inside == 0.0 {
                1.0
            } else {
                (rank - lower.1 as f64) / inside
            };
            return Some(lower.0 + (le - lower.0) * frac);
        }
        lower = (le, n);
    }
    Some(lower.0)
}

/// The samples of the last [`KEEP`] seconds.
#[derive(Default)]
pub struct Window {
    samples: Mutex<VecDeque<Sample>>,
}

impl Window {
    pub fn push(&self, s: Sample) {
        if let Ok(mut w) = self.samples.lock() {
            if w.len() == KEEP {
                w.pop_front();
            }
            w.push_back(s);
        }
    }

    /// The oldest and newest samples, when there are two.
    fn ends(&self) -> Option<(Sample, Sample)> {
        let w = self.samples.lock().ok()?;
        match (w.front(), w.back()) {
            (Some(a), Some(b)) if w.len() > 1 => Some((a.clone(), b.clone())),
            _ => None,
        }
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `GET /api/status`: rates and percentiles are `null` until the sampler has a window.
#[derive(Serialize)]
struct StatusView<'a> {
    version: &'static str,
    started_unix_ms: u64,
    uptime_seconds: u64,
    ready: bool,
    draining: bool,
    window_seconds: Option<f64>,
    connections_active: i64,
    requests_in_flight: i64,
    config: ConfigView<'a>,
    routes: Vec<RouteView<'a>>,
    rate_limits: Vec<LimitView<'a>>,
    cache: Option<CacheView>,
}

#[derive(Serialize)]
struct ConfigView<'a> {
    hash: &'a str,
    path: Option<&'a std::path::Path>,
    last_reload: Option<crate::runtime::store::LastReload>,
    restart_required: bool,
}

#[derive(Serialize)]
struct RouteView<'a> {
    name: &'a str,
    requests_total: u64,
    requests_per_second: Option<f64>,
    error_share: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// In maintenance: every request but its testers' gets 503.
    maintenance: bool,
    /// The route's canary rollout, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    canary: Option<CanaryView>,
}

/// A canary rollout: where it stands and what its window shows on each side.
#[derive(Serialize)]
struct CanaryView {
    upstream: String,
    phase: crate::canary::Phase,
    step: usize,
    steps: Vec<u32>,
    percent: u32,
    /// Why it was aborted or promoted.
    reason: String,
    baseline: SideView,
    canary: SideView,
}

#[derive(Serialize)]
struct SideView {
    requests: u64,
    failure_share: f64,
    p99_ms: f64,
}

fn canary_view(r: &crate::canary::Rollout) -> CanaryView {
    use crate::canary::window::Side;
    let now = crate::clock::now_ms();
    let side = |s| {
        let x = r.window.summary(s, now);
        SideView {
            requests: x.requests,
            failure_share: x.failure_share(),
            p99_ms: x.p99.as_secs_f64() * 1000.0,
        }
    };
    let s = r.state();
    CanaryView {
        upstream: r.config.upstream.clone(),
        phase: s.phase,
        step: s.step,
        steps: r.config.steps.clone(),
        percent: r.percent(),
        reason: s.reason,
        baseline: side(Side::Baseline),
        canary: side(Side::Canary),
    }
}

#[derive(Serialize)]
struct LimitView<'a> {
    name: &'a str,
    limited_total: u64,
    limited_per_second: Option<f64>,
    keys: i64,
    max_keys: u64,
    keys_evicted_total: u64,
    shadow: bool,
}

#[derive(Serialize)]
struct CacheView {
    hit_ratio: Option<f64>,
    hit_ratio_since_start: Option<f64>,
    requests_total: u64,
    entries: u64,
    stored_bytes: u64,
    max_bytes: u64,
    evictions_total: u64,
}

/// The body of `GET /api/status`.
pub fn status(state: &State, window: &Window) -> Value {
    let snap = state.snapshot();
    let m = &state.metrics;
    let now = Sample::take(m, Instant::now());
    // Rates need two samples; until the sampler has a second one, they are null.
    let ends = window.ends();
    let secs = ends
        .as_ref()
        .map(|(a, b)| b.at.duration_since(a.at).as_secs_f64())
        .filter(|s| *s > 0.0);
    let empty = RouteSample::default();
    let routes = snap
        .config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .chain([crate::runtime::snapshot::UNMATCHED])
        .map(|name| {
            let mut view = RouteView {
                name,
                requests_total: now.routes.get(name).map_or(0, |r| r.requests),
                requests_per_second: None,
                error_share: None,
                p50_ms: None,
                p99_ms: None,
                canary: snap.rollouts.get(name).map(|r| canary_view(r)),
                maintenance: snap
                    .maintenance
                    .get(name)
                    .is_some_and(|m| m.load(std::sync::atomic::Ordering::Relaxed)),
            };
            if let Some(((a, b), secs)) = ends.as_ref().zip(secs) {
                let (a, b) = (
                    a.routes.get(name).unwrap_or(&empty),
                    b.routes.get(name).unwrap_or(&empty),
                );
                let n = b.requests.saturating_sub(a.requests);
                let ms = |q| quantile(q, &a.buckets, &b.buckets).map(|s| s * 1000.0);
                view.requests_per_second = Some(n as f64 / secs);
                view.error_share = ratio(b.errors.saturating_sub(a.errors), n);
                (view.p50_ms, view.p99_ms) = (ms(0.5), ms(0.99));
            }
            view
        })
        .collect();
    let rate_limits = snap
        .limiters
        .iter()
        .map(|(name, l)| {
            l.refresh_gauge();
            let limited = |s: &Sample| s.limited.get(name).copied().unwrap_or(0);
            LimitView {
                name,
                limited_total: limited(&now),
                limited_per_second: ends
                    .as_ref()
                    .zip(secs)
                    .map(|((a, b), secs)| limited(b).saturating_sub(limited(a)) as f64 / secs),
                keys: l.keys_gauge.get(),
                max_keys: l.config.max_keys,
                keys_evicted_total: m
                    .rate_limit_keys_evicted_total
                    .with_label_values(&[name])
                    .get(),
                shadow: l.config.shadow,
            }
        })
        .collect();
    let cache = snap.cache.as_ref().map(|c| CacheView {
        hit_ratio: ends.as_ref().and_then(|(a, b)| {
            ratio(
                b.cache.0 - a.cache.0.min(b.cache.0),
                b.cache.1.saturating_sub(a.cache.1),
            )
        }),
        hit_ratio_since_start: ratio(now.cache.0, now.cache.1),
        requests_total: now.cache.1,
        entries: c.storage.entry_count(),
        stored_bytes: c.storage.stored_bytes(),
        max_bytes: c.config.max_size,
        evictions_total: m.cache_evictions_total.get(),
    });
    let view = StatusView {
        version: env!("CARGO_PKG_VERSION"),
        started_unix_ms: unix_ms(state.started),
        uptime_seconds: state.started.elapsed().map_or(0, |d| d.as_secs()),
        ready: state.is_ready(),
        draining: state.is_draining(),
        window_seconds: secs,
        connections_active: m.connections_active.get(),
        requests_in_flight: m.requests_in_flight.get(),
        config: ConfigView {
            hash: &snap.hash,
            path: state.config_path.as_deref(),
            last_reload: state.last_reload.lock().ok().and_then(|l| l.clone()),
            restart_required: m.config_restart_required.get() == 1,
        },
        routes,
        rate_limits,
        cache,
    };
    serde_json::to_value(view).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::quantile;

    const B: [f64; 4] = [0.01, 0.1, 1.0, f64::INFINITY];

    fn cumulative(counts: [u64; 4]) -> Vec<(f64, u64)> {
        let mut sum = 0;
        B.iter()
            .zip(counts)
            .map(|(&le, n)| {
                sum += n;
                (le, sum)
            })
            .collect()
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_over_the_window_only() {
        let old = cumulative([1000, 0, 0, 0]); // before the window: all fast
        let new = cumulative([1000, 50, 50, 0]); // in the window: 50 in 10-100 ms, 50 in 0.1-1 s
        let p50 = quantile(0.5, &old, &new).unwrap();
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p99 = quantile(0.99, &old, &new).unwrap();
        assert!((p99 - (0.1 + 0.9 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
        let p25 = quantile(0.25, &old, &new).unwrap();
        assert!((p25 - (0.01 + 0.09 * 0.5)).abs() < 1e-9, "{p25}");
    }

    #[test]
    fn no_observations_give_none_and_the_inf_bucket_gives_the_last_bound() {
        let same = cumulative([3, 2, 1, 0]);
        assert_eq!(quantile(0.5, &same, &same), None);
        assert_eq!(quantile(0.5, &[], &[]), None);
        let slow = cumulative([0, 0, 0, 10]);
        assert_eq!(quantile(0.99, &[], &slow), Some(1.0));
    }
}
