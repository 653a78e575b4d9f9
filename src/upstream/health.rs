//! Active health checks and ejection housekeeping, one tick at a time over the pools of the
//! current snapshot (the loop is `runtime::tasks::HealthService`).
//!
//! Each tick (1) starts a check for each backend whose next check is due and that has none
//! running (`probe`, bounded by `timeout`), and (2) notices ejections that have ended, to update the gauge, log it and start the
//! backend's slow-start ramp. Checks run in their own tasks, so a black-holed backend delays
//! nothing but its own next check, and never the request path. Reading the snapshot each tick
//! means a reload's new pools are picked up without restarting anything.

use super::backend::HealthStatus;
use super::now_ms;
use super::pool::Pool;
use super::stats::CheckResult;
use crate::events::{Event, Kind, Level};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// How often the service looks for due checks; also the resolution of `interval`.
pub const TICK: Duration = Duration::from_millis(50);

/// One tick over the pools of the current snapshot (run by `runtime::tasks::HealthService`).
pub fn round<'a>(pools: impl Iterator<Item = &'a Arc<Pool>>) {
    let now = now_ms();
    for pool in pools {
        housekeeping(pool, now);
        pool.shedding_over(now);
        super::slow::sweep(pool, now);
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

/// The one HTTP connector every check shares. A connector per backend (as pingora's
/// `HttpHealthCheck` holds) costs about 420 KB each, mostly its TLS context: 2,000 checked
/// backends took 830 MB and 10 s to start.
pub(crate) fn connector() -> &'static Connector {
    static C: OnceLock<Connector> = OnceLock::new();
    C.get_or_init(|| Connector::new(None))
}

/// Why a check could not be made: brace ran out of its own resources (open files, memory,
/// local ports). Such a check says nothing of the backend and is not recorded.
const LOCAL: &str = "brace is out of local resources";

/// One check of `addr`: `Ok` when it passes, else what went wrong, in words for the log
/// ([`LOCAL`] when the failure was brace's own).
async fn probe(
    kind: &crate::config::CheckKind,
    addr: SocketAddr,
    mut peer: HttpPeer,
    t: Duration,
) -> Result<(), String> {
    use crate::config::CheckKind;
    let (path, host, (lo, hi)) = match kind {
        CheckKind::Tcp => {
            return tokio::net::TcpStream::connect(addr)
                .await
                .map(drop)
                .map_err(|e| {
                    let local = pingora::Error::because(pingora::ErrorType::ConnectError, "", e);
                    if super::outcome::Outcome::from_error(&local)
                        == Some(super::outcome::Outcome::LocalError)
                    {
                        return LOCAL.to_string();
                    }
                    format!("connect: {}", local.root_cause())
                });
        }
        CheckKind::Http { path, host, expect } => (path, host, *expect),
    };
    // The same TLS settings as requests: a check fails on a certificate they would refuse.
    peer.options.connection_timeout = Some(t);
    peer.options.read_timeout = Some(t);
    peer.options.write_timeout = Some(t);
    let (mut session, _) = connector().get_http_session(&peer).await.map_err(|e| {
        if super::outcome::Outcome::from_error(&e) == Some(super::outcome::Outcome::LocalError) {
            return LOCAL.to_string();
        }
        format!("connect: {}", e.to_string().trim())
    })?;
    let mut req =
        RequestHeader::build("GET", path.as_bytes(), Some(3)).map_err(|e| e.to_string())?;
    let host = host.clone().unwrap_or_else(|| addr.to_string());
    let _ = req.insert_header("host", host);
    let _ = req.insert_header("user-agent", "brace-health-check");
    // HTTP/2 has no `Connection` header; its connection stays open for the next check.
    if matches!(
        session,
        pingora::protocols::http::client::HttpSession::H1(_)
    ) {
        let _ = req.insert_header("connection", "close");
    }
    let io = |e: Box<pingora::Error>| e.to_string().trim().to_string();
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(io)?;
    session.finish_request_body().await.map_err(io)?;
    session.read_response_header().await.map_err(io)?;
    let status = session.response_header().map_or(0, |r| r.status.as_u16());
    if !(lo..=hi).contains(&status) {
        return Err(format!("status {status} outside {lo}-{hi}"));
    }
    // Read the body so the check covers a backend that answers its head and then stalls.
    while session.read_response_body().await.map_err(io)?.is_some() {}
    Ok(())
}

async fn check(pool: &Pool, i: usize) {
    let Some(hc) = &pool.config.health_check else {
        return;
    };
    let b = &pool.backends[i];
    let (ok, detail) = match tokio::time::timeout(
        hc.timeout,
        probe(&hc.kind, b.addr, pool.peer(i), hc.timeout),
    )
    .await
    {
        Ok(Ok(())) => (true, "ok".to_string()),
        Ok(Err(e)) if e == LOCAL => {
            tracing::warn!(backend = %b.addr, "health check not made: {LOCAL}; raise the open-file limit");
            return;
        }
        Ok(Err(e)) => (false, e),
        Err(_) => (
            false,
            format!(
                "no answer within {}",
                humantime::format_duration(hc.timeout)
            ),
        ),
    };
    if ok {
        b.gauges.checks.get(CheckResult::Pass).inc();
    } else {
        b.gauges.checks.get(CheckResult::Fail).inc();
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
            // Losing a backend wants a look; its recovery needs nothing.
            let level = if after == HealthStatus::Unhealthy {
                Level::Warn
            } else {
                Level::Info
            };
            let message = format!(
                "backend {} -> {} ({detail})",
                before.as_str(),
                after.as_str()
            );
            pool.events().record(
                Event::new(Kind::Health, level, after.as_str(), detail)
                    .backend(&pool.name, &b.label)
                    .from_state(before.as_str())
                    .message(message),
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
            pool.events().record(
                Event::new(
                    Kind::Ejection,
                    Level::Info,
                    "available",
                    "ejection time over",
                )
                .backend(&pool.name, &b.label)
                .from_state("ejected")
                .message("ejection ended; backend back in rotation"),
            );
        }
    }
}

/// True once every backend of every pool with active checks has a first result.
pub fn first_round_done<'a>(mut pools: impl Iterator<Item = &'a Arc<Pool>>) -> bool {
    pools.all(|p| {
        p.config.health_check.is_none()
            || p.backends
                .iter()
                .all(|b| b.health.status() != HealthStatus::Unknown)
    })
}
