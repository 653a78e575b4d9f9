//! One attempt on one backend: choosing it (with backup), the peer's timeouts, and what
//! happened to it: connect failures, broken exchanges and upstream statuses, each recorded
//! once as an `Outcome` and, when allowed, retried on another backend.

use super::ctx::{Attempt, AttemptState, Ctx};
use super::{headers, http_status, request};
use crate::upstream::admission::{self, Admitted};
use crate::upstream::outcome::Outcome;
use crate::upstream::retry::RetryReason;
use crate::upstream::{now_ms, retry, select};
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use std::time::{Duration, Instant};

/// `upstream_peer`: the backend for this attempt, with the pool's timeouts.
pub async fn peer(session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
    let route = ctx
        .route
        .clone()
        .ok_or_else(|| http_status(500, "upstream_peer without a route"))?;
    let mut t = Instant::now();
    if ctx.upstream.tries == 0 {
        let pool = target(session, &route, ctx);
        // How much of the body is kept for a retry: the target's `retry.buffer_body`
        // (before pingora's own default of 64 KiB, which it sets when proxying starts).
        let keep = usize::try_from(pool.config.retry.buffer_body).unwrap_or(usize::MAX);
        session.as_mut().enable_retry_buffering_up_to(keep);
        ctx.upstream.target = Some(pool);
    }
    let pool = ctx.target().cloned().unwrap_or_else(|| route.pool.clone());
    let key = select::hash_key(session.req_header(), ctx.client_ip, &pool.config.balance);
    let chosen = if ctx.upstream.tries == 0 {
        let Some(slot) = pool.admit(crate::clock::ms_at(t)) else {
            trace_event(ctx, "pool_full", &pool.name);
            ctx.upstream.retry_after = Some(Duration::from_secs(1));
            return Err(http_status(503, "pool at max_in_flight"));
        };
        ctx.upstream.pool_slot = Some(slot);
        let pools = &ctx.snapshot.pools;
        let now = crate::clock::ms_at(t);
        // A sticky client's backend, when it may take the request (`upstream::sticky`).
        let admitted = match pool.pinned(session.req_header(), now) {
            Some(i) => Admitted::Backend(pool.clone(), i, false),
            None => admission::admit(pools, &pool, &key, route.priority, t).await,
        };
        match admitted {
            Admitted::Backend(pool, idx, waited) => {
                if waited {
                    trace_event(ctx, "queued", &pool.name);
                    t = Instant::now();
                }
                Some((pool, idx))
            }
            Admitted::Shed(reason) => {
                trace_event(ctx, "shed", &pool.name);
                ctx.upstream.shed = Some(reason);
                ctx.upstream.retry_after = Some(Duration::from_secs(1));
                return Err(http_status(
                    503,
                    "shed: every backend at its concurrency limit",
                ));
            }
            Admitted::None => None,
        }
    } else {
        if super::deadline::left(ctx, t).is_some_and(|l| l.is_zero()) {
            return Err(http_status(
                504,
                "the route's deadline passed before a retry",
            ));
        }
        retry::backoff(pool.config.retry.backoff, ctx.upstream.tries).await;
        t = Instant::now();
        let now = crate::clock::ms_at(t);
        select::choose(&ctx.snapshot.pools, &pool, &key, &ctx.upstream.tried, now)
    };
    let now = crate::clock::ms_at(t);
    ctx.upstream.tries += 1;
    let Some((pool, idx)) = chosen else {
        if ctx.trace.is_some() {
            let event = if pool.breakers_open(now) {
                "breaker_rejected"
            } else {
                "no_backend_available"
            };
            trace_event(ctx, event, &pool.name);
        }
        ctx.upstream.retry_after = Some(pool.none_available(now));
        return Err(http_status(503, "no backend available"));
    };
    let addr = pool.backends[idx].addr;
    ctx.upstream.tried.push(addr);
    if let Some(t) = &mut ctx.trace {
        t.attempt(&pool.name, addr, ctx.upstream.tries);
    }
    ctx.upstream.attempt = AttemptState::Running(Attempt::new(&pool, idx, t, now));
    let peer = peer_for(&pool, idx, &route, ctx);
    ctx.upstream.pool = Some(pool);
    Ok(Box::new(peer))
}

/// The pool a request's first attempt goes to: its route's, or the canary's when the
/// rollout draws it there (`canary`).
fn target(
    session: &Session,
    route: &crate::route::Route,
    ctx: &mut Ctx,
) -> std::sync::Arc<crate::upstream::pool::Pool> {
    let Some(c) = &route.canary else {
        return route.pool.clone();
    };
    let side = c.rollout.side(session.req_header(), ctx.client_ip);
    ctx.upstream.side = Some(side);
    match side {
        crate::canary::window::Side::Canary => c.pool.clone(),
        crate::canary::window::Side::Baseline => route.pool.clone(),
    }
}

/// The peer for backend `idx` of `pool`, with the pool's and the route's timeouts.
pub(super) fn peer_for(
    pool: &crate::upstream::pool::Pool,
    idx: usize,
    route: &crate::route::Route,
    ctx: &Ctx,
) -> HttpPeer {
    let mut peer = pool.peer(idx);
    let o = &mut peer.options;
    let now = Instant::now();
    let left = super::deadline::left(ctx, now).unwrap_or(Duration::MAX);
    o.connection_timeout = Some(pool.config.connect_timeout.min(left));
    o.header_deadline = super::deadline::header_deadline(ctx, pool, now);
    // pingora times each read, not the wait for headers as a whole: the route timeout caps
    // every read, which bounds the header wait when headers come in one read.
    o.read_timeout = Some(pool.config.read_timeout.min(route.timeout));
    o.write_timeout = Some(pool.config.read_timeout);
    o.idle_timeout = Some(pool.config.keepalive_timeout);
    o.upgrade_idle_timeout = Some(pool.config.upgrade_idle_timeout);
    o.no_header_case = !ctx.snapshot.config.server.preserve_header_case;
    // brace reads an upstream response's header only from what the session hands over.
    o.hand_over_response_header = true;
    peer
}

/// `fail_to_connect`: nothing reached the backend, so any method may be retried.
pub fn connect_failed(ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
    let mut outcome = Outcome::from_error(&e).unwrap_or(Outcome::ConnectError);
    if let Some(super::deadline::Cut::Deadline { blame }) = super::deadline::cut(&e, ctx) {
        // The route's deadline, not the backend, ended the connect: 504, no retry.
        outcome = if blame { outcome } else { Outcome::Cancelled };
        finish_attempt(ctx, outcome);
        e.set_retry(false);
        return e;
    }
    finish_attempt(ctx, outcome);
    // Nothing reached the upstream, so any method may be retried.
    let allowed = ctx
        .target()
        .is_some_and(|p| p.config.retry.on.connect_error);
    // Out of brace's own resources: another backend would fail the same way.
    let local = outcome == Outcome::LocalError;
    e.set_retry(!local && allowed && may_retry(ctx, RetryReason::ConnectError));
    e
}

/// `error_while_proxy`: the exchange broke after connecting.
pub fn broke(
    peer: &HttpPeer,
    session: &mut Session,
    e: Box<Error>,
    ctx: &mut Ctx,
    client_reused: bool,
) -> Box<Error> {
    let mut e = e.more_context(format!("Peer: {peer}"));
    if let AttemptState::StatusRetry = ctx.upstream.attempt {
        ctx.upstream.attempt = AttemptState::Idle;
        return e;
    }
    let mut outcome = Outcome::from_error(&e).unwrap_or(Outcome::Error);
    if let Some(super::deadline::Cut::Deadline { blame }) = super::deadline::cut(&e, ctx) {
        // The route's deadline passed while waiting for the header: 504, no retry. The
        // backend is blamed only when its attempt had a fair share of it.
        finish_attempt(
            ctx,
            if blame {
                Outcome::Timeout
            } else {
                Outcome::Cancelled
            },
        );
        e.set_retry(false);
        return e;
    }
    if ctx.upstream.upgraded {
        // A tunnel's end: an idle timeout is not the backend's failure, and nothing is
        // replayed.
        finish_attempt(ctx, outcome.after_upgrade());
        e.set_retry(false);
        return e;
    }
    if outcome == Outcome::Timeout
        && e.etype() == &ErrorType::ReadTimedout
        && !session.is_body_done()
    {
        // The backend waits for the rest of the body: pingora restarts the upstream read
        // timer whenever a body chunk arrives, so this timeout means the client sent
        // nothing for read_timeout. Its stall, answered 408 like client_body_timeout.
        outcome = Outcome::ClientTimeout;
        e = Error::explain(
            ErrorType::HTTPStatus(408),
            "request body stalled longer than the upstream read_timeout",
        )
        .into_down();
    }
    let method_replayable = super::replay::replayable(session.req_header(), ctx);
    let truncated = session.as_ref().retry_buffer_truncated();
    let replayable = method_replayable && !truncated && session.response_written().is_none();
    if replayable && client_reused && outcome == Outcome::Error && ctx.upstream.status.is_none() {
        // A pooled connection the backend had already closed (its idle timeout raced our
        // reuse): pingora retries once on a fresh connection. Not the backend's failure, so
        // not recorded; and the same backend may be chosen again, even as a pool's only one.
        drop(ctx.upstream.attempt.take());
        if let Some(t) = &mut ctx.trace {
            t.attempt_ended("stale_pooled_connection", None, false);
        }
        ctx.upstream.tried.pop();
        e.retry.decide_reuse(true);
        return e;
    }
    finish_attempt(ctx, outcome);
    let on = ctx.target().map(|p| p.config.retry.on).unwrap_or_default();
    let (reason, allowed) = match outcome {
        Outcome::Timeout => (RetryReason::Timeout, on.timeout),
        _ => (RetryReason::Error, on.error),
    };
    if !replayable || outcome.blames_nobody() {
        if allowed && method_replayable && truncated && !outcome.blames_nobody() {
            body_not_buffered(ctx);
        }
        e.set_retry(false);
        return e;
    }
    if allowed && may_retry(ctx, reason) {
        e.set_retry(true);
    } else {
        // pingora's own rule: a failure on a reused (possibly stale) pooled connection of an
        // idempotent request is retried once on a fresh connection.
        e.retry.decide_reuse(client_reused);
    }
    e
}

/// `upstream_response_filter`: the backend's status decides the outcome (and a retry on a
/// configured 5xx); brace writes the framing the client reads.
pub fn response_header(
    session: &mut Session,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    let code = resp.status.as_u16();
    if code == 101 {
        ctx.upstream.upgraded = true;
        ctx.upstream.status = Some(code);
        if let AttemptState::Running(a) = &mut ctx.upstream.attempt {
            a.tunnelled();
        }
    }
    if resp.status.is_informational() {
        return Ok(());
    }
    if let AttemptState::Running(a) = &mut ctx.upstream.attempt {
        a.answered = a.sent.map(|t| t.elapsed());
    }
    // Brace-Cache-Control is for brace alone: read it, never store or forward it.
    ctx.cache.brace_cache_control = resp.remove_header(&headers::BRACE_CACHE_CONTROL);
    if code == 304 && session.cache.enabled() {
        ctx.cache.revalidation_headers = Some(resp.headers.clone());
    }
    ctx.upstream.status = Some(code);
    // A trailers-only gRPC answer carries its status in the header (gRPC is HTTP/2 only:
    // an HTTP/1.1 upstream's responses are not looked at).
    if ctx
        .upstream
        .pool
        .as_ref()
        .is_some_and(|p| p.config.protocol != crate::config::Protocol::Http1)
    {
        ctx.upstream.grpc_status = grpc_status(&resp.headers);
    }
    if code == 503 || code == 429 {
        paused(resp, ctx, code);
    }
    let retry_on = ctx.target().is_some_and(|p| p.config.retry.on.status(code));
    let truncated = session.as_ref().retry_buffer_truncated();
    let replayable = retry_on && super::replay::replayable(session.req_header(), ctx);
    if replayable && truncated {
        body_not_buffered(ctx);
    }
    if replayable && !truncated {
        let reason = match code {
            502 => RetryReason::Status502,
            503 => RetryReason::Status503,
            _ => RetryReason::Status504,
        };
        if may_retry(ctx, reason) {
            let outcome = if std::mem::take(&mut ctx.upstream.backpressure) {
                Outcome::Backpressure
            } else {
                Outcome::Http5xx
            };
            finish_attempt(ctx, outcome);
            ctx.upstream.attempt = AttemptState::StatusRetry;
            ctx.upstream.status = None;
            let mut e = Error::explain(ErrorType::HTTPStatus(code), "retrying an upstream 5xx");
            e.set_retry(true);
            return Err(e);
        }
    }
    headers::strip_response_hop_by_hop(resp);
    // One framing, written by brace: a length brace cannot read as one decimal number
    // is refused rather than handed to a client that might read it another way.
    match request::content_length(&resp.headers) {
        Err(why) => {
            // The backend spoke bad HTTP: its failure, whatever status line it sent.
            finish_attempt(ctx, Outcome::Error);
            return Err(http_status(502, why));
        }
        Ok(Some(l)) if !l.canonical => {
            resp.insert_header(http::header::CONTENT_LENGTH, http::HeaderValue::from(l.n))?;
        }
        Ok(_) => {}
    }
    Ok(())
}

/// A retry the upstream's `retry` table allowed was not made because the request body had
/// outgrown `retry.buffer_body`: counted, so an operator sees what a larger buffer would save.
fn body_not_buffered(ctx: &Ctx) {
    if let Some(p) = ctx.target() {
        ctx.snapshot
            .metrics
            .deploy
            .retries_skipped_total
            .with_label_values(&[&p.name, "body_not_buffered"])
            .inc();
    }
}

/// A 503 or 429 with `Retry-After`: the backend may have asked for a pause
/// (`upstream::pause`); the attempt's outcome is then backpressure, not a failure.
fn paused(resp: &ResponseHeader, ctx: &mut Ctx, code: u16) {
    let (Some(pool), Some(a)) = (&ctx.upstream.pool, ctx.upstream.attempt.running()) else {
        return;
    };
    let Some(v) = resp.headers.get(http::header::RETRY_AFTER) else {
        return;
    };
    if pool.pause(a.idx, code, v.as_bytes(), now_ms()) {
        ctx.upstream.backpressure = true;
    }
}

/// `grpc-status` as gRPC's `PROTOCOL-HTTP2.md` reads it: a code outside 0-16, or a value that
/// is not a number, is UNKNOWN (2).
pub fn grpc_status(h: &http::HeaderMap) -> Option<u8> {
    static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    let v = h.get(&GRPC_STATUS)?;
    Some(
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|c| *c <= 16)
            .unwrap_or(2),
    )
}

/// Ends the current attempt: its outcome goes to metrics and outlier detection, and the
/// backend's in-flight count drops.
pub fn finish_attempt(ctx: &mut Ctx, outcome: Outcome) {
    if let Some(a) = ctx.upstream.attempt.take() {
        record(ctx, a, outcome);
    }
}

/// Records attempt `a`'s end (on the current pool) and drops it.
pub(super) fn record(ctx: &mut Ctx, a: Attempt, outcome: Outcome) {
    if let Some(pool) = &ctx.upstream.pool {
        let end = Instant::now();
        let seconds = end.saturating_duration_since(a.start).as_secs_f64();
        // The limit learns from the backend's time to answer (the whole attempt when it
        // never answered); a tunnel's length says nothing of the backend's speed.
        let sample = (!a.tunnel).then(|| a.answered.map_or(seconds, |d| d.as_secs_f64()));
        pool.record(a.idx, outcome, seconds, crate::clock::ms_at(end), sample);
        if let Some(t) = &mut ctx.trace {
            t.attempt_ended(
                outcome.as_str(),
                ctx.upstream.status,
                outcome != Outcome::Success,
            );
        }
    }
}

/// True when one more attempt is allowed; counts it (`upstream::select::may_retry`).
fn may_retry(ctx: &mut Ctx, reason: RetryReason) -> bool {
    // Not when the route's deadline leaves no time for another attempt after the backoff.
    let backoff = ctx
        .target()
        .map_or(Duration::ZERO, |p| p.config.retry.backoff);
    if super::deadline::left(ctx, Instant::now()).is_some_and(|l| l <= backoff) {
        return false;
    }
    let allowed = ctx.target().is_some_and(|p| {
        let pools = &ctx.snapshot.pools;
        select::may_retry(
            p,
            pools,
            &ctx.upstream.tried,
            ctx.upstream.tries,
            reason,
            now_ms(),
        )
    });
    if let (true, Some(t)) = (allowed, &mut ctx.trace) {
        t.retried(reason.as_str());
    }
    allowed
}

/// An event on the request's server span, naming the upstream.
fn trace_event(ctx: &Ctx, name: &'static str, upstream: &str) {
    if let Some(t) = &ctx.trace {
        t.event(name, || {
            vec![opentelemetry::KeyValue::new(
                "brace.upstream",
                upstream.to_owned(),
            )]
        });
    }
}
