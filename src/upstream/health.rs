//! Active health checks and ejection housekeeping: one background service over the pools of
//! the current snapshot.
//!
//! Every tick it (1) starts a check for each backend whose next check is due and that has none
//! running (pingora's `HttpHealthCheck`/`TcpHealthCheck` do the probing, bounded by `timeout`),
//! and (2) notices ejections that have ended, to update the gauge, log it and start the
//! backend's slow-start ramp. Checks run in their own tasks, so a black-holed backend delays
//! nothing but its own next check, and never the request path. Reading the snapshot each tick
//! means a reload's new pools are picked up without restarting anything.

use super::backend::HealthStatus;
use super::now_ms;
use super::pool::Pool;
use crate::runtime::State;
use async_trait::async_trait;
use pingora::lb::Backend as LbBackend;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the service looks for due checks; also the resolution of `interval`.
pub const TICK: Duration = Duration::from_millis(50);

pub struct HealthService {
    pub state: Arc<State>,
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => round(&self.state),
            }
        }
    }
}

fn round(state: &State) {
    let snap = state.snapshot();
    let now = now_ms();
    for pool in snap.pools.values() {
        housekeeping(pool, now);
        let Some(hc) = &pool.config.health_check else {
            continue;
        };
        for (i, b) in pool.backends.iter().enumerate() {
            if now < b.health.next_check_ms.load(Relaxed) || b.health.checking.swap(true, AcqRel) {
                continue;
            }
            // ±10% jitter so a pool's checks do not march in step.
            let interval = hc.interval.as_millis() as f64 * (0.9 + 0.2 * fastrand::f64());
            b.health.next_check_ms.store(now + interval as u64, Relaxed);
            let pool = pool.clone();
            tokio::spawn(async move { check(&pool, i).await });
        }
    }
}

async fn check(pool: &Pool, i: usize) {
    let (Some(hc), Some(checker)) = (&pool.config.health_check, pool.checkers.get(i)) else {
        return;
    };
    let b = &pool.backends[i];
    let target = LbBackend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(b.addr),
        weight: 1,
        ext: Default::default(),
    };
    let (ok, detail) = match tokio::time::timeout(hc.timeout, checker.check(&target)).await {
        Ok(Ok(())) => (true, "ok".to_string()),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (
            false,
            format!(
                "no answer within {}",
                humantime::format_duration(hc.timeout)
            ),
        ),
    };
    if ok {
        b.gauges.checks_pass.inc();
    } else {
        b.gauges.checks_fail.inc();
    }
    if let Ok(mut last) = b.health.last.lock() {
        *last = Some(super::backend::LastCheck {
            at: SystemTime::now(),
            ok,
            detail: detail.clone(),
        });
    }
    let before = b.health.status();
    if let Some(after) = b
        .health
        .record(ok, hc.healthy_threshold, hc.unhealthy_threshold)
    {
        b.gauges
            .healthy
            .set(i64::from(after != HealthStatus::Unhealthy));
        if after == HealthStatus::Healthy && before == HealthStatus::Unhealthy {
            b.available_since_ms.store(now_ms(), Relaxed);
        }
        if before != HealthStatus::Unknown || after == HealthStatus::Unhealthy {
            tracing::warn!(
                upstream = %pool.name,
                backend = %b.label,
                "backend {} -> {} ({detail})",
                before.as_str(),
                after.as_str()
            );
        }
    }
    b.health.checking.store(false, Release);
}

fn housekeeping(pool: &Pool, now: u64) {
    for b in &pool.backends {
        if b.outlier.reported.load(Relaxed) && !b.outlier.ejected(now) {
            b.outlier.reported.store(false, Relaxed);
            b.gauges.ejected.set(0);
            b.available_since_ms.store(now, Relaxed);
            tracing::info!(upstream = %pool.name, backend = %b.label, "ejection ended; backend back in rotation");
        }
    }
}

/// True once every backend of every pool with active checks has a first result.
pub fn first_round_done(state: &State) -> bool {
    state.snapshot().pools.values().all(|p| {
        p.config.health_check.is_none()
            || p.backends
                .iter()
                .all(|b| b.health.status() != HealthStatus::Unknown)
    })
}
