//! `GET /api/upstreams`: every pool and backend with its health, ejection, in-flight count,
//! limit and last check, and the settings in force (defaults included, so an operator sees
//! what a pool without tables does). View types, built from the pools' earned state.

use crate::runtime::State;
use crate::upstream::backend::Backend;
use crate::upstream::pool::Pool;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Serialize)]
struct Upstreams<'a> {
    upstreams: BTreeMap<&'a str, PoolView<'a>>,
}

#[derive(Serialize)]
struct PoolView<'a> {
    balance: &'static str,
    backup: Option<&'a str>,
    shedding: bool,
    queued: usize,
    /// `enforce`, `shadow` or `off`.
    adaptive: &'static str,
    outlier: Option<OutlierView>,
    retry: RetryView,
    connect_timeout_ms: u64,
    read_timeout_ms: u64,
    upgrade_idle_timeout_ms: u64,
    health_check: bool,
    backends: Vec<BackendView<'a>>,
}

#[derive(Serialize)]
struct OutlierView {
    consecutive_failures: u32,
    base_ejection_ms: u64,
    max_ejection_ms: u64,
    max_ejection_percent: u32,
    latency_ratio: f64,
    latency_ejection_after_ms: u64,
}

#[derive(Serialize)]
struct RetryView {
    attempts: u32,
    budget_percent: u32,
    min_retries_per_second: u32,
    idempotency_key: bool,
    /// The longest pause a `Retry-After` gets (0: not honoured).
    max_pause_ms: u64,
}

#[derive(Serialize)]
struct BackendView<'a> {
    addr: &'a str,
    weight: u32,
    available: bool,
    /// Drained by an operator: no new requests.
    draining: bool,
    health: &'static str,
    /// Added while the pool served: no traffic until its first check passes.
    awaiting_first_check: bool,
    ejected: bool,
    ejected_until_unix: Option<f64>,
    /// Until when the backend asked for no requests (`Retry-After`).
    paused_until_unix: Option<f64>,
    ejections: u32,
    in_flight: i64,
    /// The adaptive limit, when adaptive concurrency is on.
    limit: Option<u32>,
    breaker: BreakerView,
    last_check: Option<CheckView>,
}

#[derive(Serialize)]
struct BreakerView {
    state: &'static str,
    open_until_unix: Option<f64>,
}

#[derive(Serialize)]
struct CheckView {
    at_unix: f64,
    ok: bool,
    detail: String,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The answer, pretty-printed.
pub fn json(state: &State) -> String {
    let snap = state.snapshot();
    let now = crate::upstream::now_ms();
    let wall = SystemTime::now();
    let upstreams = snap
        .pools
        .iter()
        .map(|(name, p)| (name.as_str(), pool(p, now, wall)))
        .collect();
    serde_json::to_string_pretty(&Upstreams { upstreams }).unwrap_or_default() + "\n"
}

fn pool(p: &Pool, now: u64, wall: SystemTime) -> PoolView<'_> {
    let c = &p.config;
    PoolView {
        balance: c.balance.as_str(),
        backup: c.backup.as_deref(),
        shedding: p.shedding(now),
        queued: p.queue().len(),
        adaptive: match (c.adaptive.enabled, c.adaptive.shadow) {
            (false, _) => "off",
            (true, true) => "shadow",
            (true, false) => "enforce",
        },
        outlier: c.outlier.as_ref().map(|o| OutlierView {
            consecutive_failures: o.consecutive_failures,
            base_ejection_ms: ms(o.base_ejection),
            max_ejection_ms: ms(o.max_ejection),
            max_ejection_percent: o.max_ejection_percent,
            latency_ratio: o.latency_ratio,
            latency_ejection_after_ms: ms(o.latency_ejection_after),
        }),
        retry: RetryView {
            attempts: c.retry.attempts,
            budget_percent: c.retry.budget_percent,
            min_retries_per_second: c.retry.min_retries_per_second,
            idempotency_key: c.retry.idempotency_key,
            max_pause_ms: ms(c.retry.max_pause),
        },
        connect_timeout_ms: ms(c.connect_timeout),
        read_timeout_ms: ms(c.read_timeout),
        upgrade_idle_timeout_ms: ms(c.upgrade_idle_timeout),
        health_check: c.health_check.is_some(),
        backends: p
            .backends
            .iter()
            .map(|b| backend(p, b, now, wall))
            .collect(),
    }
}

fn backend<'a>(p: &Pool, b: &'a Backend, now: u64, wall: SystemTime) -> BackendView<'a> {
    let ejected = b.outlier.ejected(now);
    let later = |at_ms: u64| unix(wall + Duration::from_millis(at_ms.saturating_sub(now)));
    let last = b.health.last.lock().ok().and_then(|l| l.clone());
    BackendView {
        addr: &b.label,
        weight: b.weight(),
        available: b.available(now),
        draining: b.draining(),
        health: b.health.status().as_str(),
        awaiting_first_check: b.health.awaiting_first_check(),
        ejected,
        ejected_until_unix: ejected.then(|| later(b.outlier.ejected_until())),
        paused_until_unix: b.paused(now).then(|| later(b.paused_until())),
        ejections: b.outlier.ejections.load(Relaxed),
        in_flight: b.in_flight(),
        limit: p.config.adaptive.enabled.then(|| b.limiter.limit()),
        breaker: BreakerView {
            state: b.breaker.state().as_str(),
            open_until_unix: (!b.breaker.admits(now)).then(|| later(b.breaker.open_until())),
        },
        last_check: last.map(|l| CheckView {
            at_unix: unix(l.at),
            ok: l.ok,
            detail: l.detail,
        }),
    }
}
