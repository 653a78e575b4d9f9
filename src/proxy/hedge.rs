//! Hedged requests (`[[route]] hedge`): pingora's race (`proxy_hedge` in the vendored
//! `pingora-proxy`) asks these three hooks when to send a hedge, where to, and what became
//! of the attempt that did not carry the request.
//!
//! A hedge is only for the first attempt of a request without a body whose method is
//! idempotent, on a pool that is not shedding, to another backend of the same pool with room
//! under its limit, when the pool's hedge budget holds one (`upstream::hedge`).

use super::attempt::{self, peer_for};
use super::ctx::{Attempt, AttemptState, Ctx};
use crate::config::hedge::HedgeAfter;
use crate::upstream::hedge::HedgeResult;
use crate::upstream::outcome::Outcome;
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::Error;
use std::time::{Duration, Instant};

/// `hedge_after`: how long the first attempt may take before a hedge is considered.
pub fn after(session: &Session, ctx: &Ctx) -> Option<Duration> {
    let route = ctx.route.as_ref()?;
    let hedge = route.hedge.as_ref()?;
    let pool = ctx.upstream.pool.as_ref()?;
    if ctx.upstream.tries != 1
        || ctx.upstream.hedge.is_some()
        || !session.req_header().method.is_idempotent()
    {
        return None;
    }
    if !ctx
        .target()
        .is_some_and(|t| std::ptr::eq(pool.as_ref(), t.as_ref()))
    {
        return None; // the backup pool: its own capacity is not the route's to hedge on
    }
    pool.hedging.note_request(hedge.max_extra_percent);
    match hedge.after {
        HedgeAfter::Fixed(d) => Some(d),
        HedgeAfter::Percentile(q) => pool.hedging.percentile(q, crate::clock::now_ms()),
    }
}

/// `hedge_peer`: another backend of the pool, with room, if the pool is not shedding and its
/// budget holds a hedge.
pub async fn peer(session: &mut Session, ctx: &mut Ctx) -> Option<Box<HttpPeer>> {
    let route = ctx.route.clone()?;
    let pool = ctx.upstream.pool.clone()?;
    let t = Instant::now();
    let now = crate::clock::ms_at(t);
    let limited = pool.config.adaptive.enforced();
    if limited && (pool.shedding(now) || !pool.queue().is_empty()) {
        return None;
    }
    let key = crate::upstream::select::hash_key(
        session.req_header(),
        ctx.client_ip,
        &pool.config.balance,
    );
    let idx = pool.pick(&key, &ctx.upstream.tried, now)?;
    let b = &pool.backends[idx];
    if (limited && !b.has_room()) || !pool.hedging.try_hedge() {
        return None;
    }
    if !pool.acquire(idx, now) {
        return None;
    }
    ctx.upstream.tried.push(b.addr);
    pool.count_hedge(HedgeResult::Sent);
    if let Some(tr) = &ctx.trace {
        let addr = b.addr.to_string();
        tr.event("hedged", || {
            vec![opentelemetry::KeyValue::new("server.address", addr)]
        });
    }
    ctx.upstream.hedge = Some(Box::new(Attempt::new(&pool, idx, t, now)));
    Some(Box::new(peer_for(&pool, idx, &route, ctx)))
}

/// `hedge_ended`: one of the two attempts is over before answering. The hedge's end is
/// recorded; the first attempt's end is recorded and the hedge carries the request on.
pub fn ended(ctx: &mut Ctx, hedge: bool, error: Option<&Error>) {
    let outcome = error.map_or(Outcome::Cancelled, |e| {
        Outcome::from_error(e).unwrap_or(Outcome::Error)
    });
    let Some(h) = ctx.upstream.hedge.take() else {
        return;
    };
    if hedge {
        attempt::record(ctx, *h, outcome);
        return;
    }
    if let AttemptState::Running(first) =
        std::mem::replace(&mut ctx.upstream.attempt, AttemptState::Running(*h))
    {
        attempt::record(ctx, first, outcome);
    }
    if error.is_none() {
        if let Some(pool) = &ctx.upstream.pool {
            pool.count_hedge(HedgeResult::Won);
        }
        if let Some(tr) = &ctx.trace {
            tr.event("hedge_won", Vec::new);
        }
    }
}
