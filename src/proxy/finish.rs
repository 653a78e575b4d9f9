//! How a request ends: brace's error response when it failed, then one record of it
//! (the attempt's outcome, route and cache metrics, the access log, a process-log line for a
//! failure at the level its cause calls for).

use super::ctx::Ctx;
use super::{headers, respond};
use crate::cache;
use crate::cache::stats::LockWait;
use crate::upstream::outcome::Outcome;
use pingora::proxy::{FailToProxy, Session};
use pingora::Error;

/// How much of a request body brace reads and discards after answering 413, so the client
/// sees the answer (`respond::drain_body`).
const DRAIN_AFTER_413: u64 = 8 << 20;

/// `fail_to_proxy`.
pub async fn fail(session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
    // brace's own resources ran out (open files): unavailable for now, no backend's fault.
    let local = Outcome::from_error(e) == Some(Outcome::LocalError);
    let code = if local { 503 } else { respond::status_for(e) };
    // A shed request broke nothing: its connection stays open when nothing of a request body
    // is left unread on it. After any other error the connection is not reused (below), and
    // the response says so, so a client does not send its next request into a closing one.
    let reuse = ctx.upstream.shed.is_some() && (session.is_body_empty() || session.is_body_done());
    if !reuse {
        session.set_keepalive(None);
    }
    // A `100 Continue` is no answer: the final one is still to be written.
    let answered = session
        .response_written()
        .is_some_and(|r| !r.status.is_informational());
    if code > 0 && !answered {
        if ctx.request_id.as_bytes().is_empty() {
            ctx.request_id = headers::new_request_id();
        }
        let upstream = ctx.target().map(|p| p.name.as_str());
        let body = if local {
            "brace: out of local resources (open files, memory or ports); try again\n".into()
        } else if ctx.upstream.shed.is_some() {
            format!(
                "brace: upstream \"{}\" is at capacity; request shed, try again\n",
                upstream.unwrap_or("-")
            )
        } else {
            respond::message(code, upstream)
        };
        let mut extra = Vec::new();
        if let (503, Some(d)) = (code, ctx.upstream.retry_after) {
            // Rounded up: coming back a little late is fine, early is not.
            let secs = (d.as_millis() as u64).div_ceil(1000).max(1);
            extra.push((http::header::RETRY_AFTER, http::HeaderValue::from(secs)));
        }
        let pages = [
            ctx.route.as_ref().map(|r| &r.error_pages),
            Some(&ctx.snapshot.config.server.error_pages),
        ];
        respond::error(session, code, &ctx.request_id, &body, &extra, pages).await;
        if code == 413 {
            respond::drain_body(session, DRAIN_AFTER_413).await;
        }
    }
    FailToProxy {
        error_code: code,
        can_reuse_downstream: reuse,
    }
}

/// `logging`: once per request, whatever happened.
pub fn record(session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let elapsed = ctx.start.elapsed().as_secs_f64();
    let outcome = ctx.outcome(e);
    // The backend's time to answer (request sent to response header), for the canary's
    // analysis: what brace or the client add around it is the same on both sides, and noise.
    let answered = ctx.upstream.attempt.running().and_then(|a| a.answered);
    super::attempt::finish_attempt(ctx, outcome);
    if let (Some(copy), Some(m)) = (
        ctx.upstream.mirror.take(),
        ctx.route.as_ref().and_then(|r| r.mirror.as_ref()),
    ) {
        // After the real request: the client never waits for its copy.
        m.send(*copy, session.is_body_done());
    }
    let canary = ctx.route.as_ref().and_then(|r| r.canary.as_ref());
    if let (Some(side), Some(c)) = (ctx.upstream.side, canary) {
        // The canary's analysis: a 5xx (the backend's or brace's own 502/503/504) fails.
        c.record(
            side,
            status,
            answered.unwrap_or_else(|| ctx.start.elapsed()),
        );
    }
    match &ctx.route {
        Some(r) => r.stats.record(status, elapsed),
        None if ctx.refused => ctx.snapshot.refused.record(status, elapsed),
        None => ctx.snapshot.unmatched.record(status, elapsed),
    }
    if let Some(e) = e {
        log_failure(ctx, e, outcome, status);
    }
    if let Some((cs, reason)) = super::caching::status(session, ctx) {
        if let Some(t) = &ctx.trace {
            t.event("cache", || {
                vec![opentelemetry::KeyValue::new(
                    "brace.cache.status",
                    cs.as_str(),
                )]
            });
        }
        record_cache(session, ctx, cs, reason, status);
    }
    if ctx.snapshot.access_log {
        super::access::access(session, ctx, status);
    }
    if let Some(t) = ctx.trace.take() {
        t.finish(
            ctx.route.as_ref().map(|r| r.name.as_str()),
            ctx.host.name(),
            status,
            ctx.client_ip,
        );
    }
}

/// One process-log line for a request that ended in an error, at the level its cause calls
/// for: a backend's failure is WARN (the upstream metrics and ejection carry the rest), the
/// client's doing DEBUG. Nothing a client can cause logs at ERROR. pingora's own line for
/// it is suppressed (`suppress_error_log`).
fn log_failure(ctx: &Ctx, e: &Error, outcome: Outcome, status: u16) {
    let route = ctx.route.as_ref().map_or("-", |r| r.name.as_str());
    let backend = ctx
        .upstream
        .tried
        .last()
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    // A shed request is the pool's state, reported once by its shedding event.
    if outcome.is_client()
        || ctx.upstream.upgraded
        || ctx.upstream.pool.is_none()
        || ctx.upstream.shed.is_some()
    {
        tracing::debug!(request_id = ctx.request_id_str(), route, backend = %backend, status, outcome = outcome.as_str(), "request ended: {e}");
    } else {
        tracing::warn!(request_id = ctx.request_id_str(), route, backend = %backend, status, outcome = outcome.as_str(), "request failed: {e}");
    }
}

/// Cache metrics for one request, and invalidation by a successful unsafe request.
fn record_cache(
    session: &Session,
    ctx: &Ctx,
    cs: cache::CacheStatus,
    reason: Option<&str>,
    status: u16,
) {
    let Some(stats) = ctx.route.as_ref().and_then(|r| r.cache_stats.as_ref()) else {
        return;
    };
    let lock_wait = session.cache.lock_duration().map(|_| match cs {
        cache::CacheStatus::Hit | cache::CacheStatus::Stale | cache::CacheStatus::Revalidated => {
            LockWait::ServedFromCache
        }
        _ => LockWait::WentUpstream,
    });
    stats.record(cs, reason, lock_wait);
    let m = &ctx.snapshot.metrics;
    let purged = super::caching::invalidate(session, ctx, status);
    if purged > 0 {
        m.cache_purged_total.inc_by(purged);
    }
}
