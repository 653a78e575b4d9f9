//! Time limits on the wait for a response header: the route's `deadline` (every attempt and
//! backoff, from the request's start) and the upstream's `first_byte_timeout` (each
//! attempt). Both end only the wait for the header: once it has arrived, reads keep
//! `read_timeout` alone, so downloads, server-sent events and gRPC streams are never cut. The
//! limit reaches pingora as the peer's `header_deadline` (vendor patch 36).

use super::ctx::Ctx;
use pingora::Error;
use std::time::{Duration, Instant};

/// Which limit ended an attempt's wait for its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The upstream's `first_byte_timeout`: the backend's slowness.
    FirstByte,
    /// The route's `deadline`. `blame`: the attempt had at least half of it, so the backend
    /// is taken to be slow; a retry cut short by what earlier attempts used is nobody's fault.
    Deadline { blame: bool },
}

/// When the request's deadline passes, if its route has one.
pub fn of_request(ctx: &Ctx) -> Option<Instant> {
    Some(ctx.start + ctx.route.as_ref()?.deadline?)
}

/// Time left before the request's deadline (`None`: no deadline).
pub fn left(ctx: &Ctx, now: Instant) -> Option<Duration> {
    of_request(ctx).map(|d| d.saturating_duration_since(now))
}

/// The header deadline of an attempt starting at `start` on `pool`: the sooner of the
/// request's deadline and the attempt's `first_byte_timeout`.
pub fn header_deadline(
    ctx: &Ctx,
    pool: &crate::upstream::pool::Pool,
    start: Instant,
) -> Option<Instant> {
    let first_byte = pool.config.first_byte_timeout.map(|t| start + t);
    match (of_request(ctx), first_byte) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What cut the attempt that failed with `e`, if a header limit did.
pub fn cut(e: &Error, ctx: &Ctx) -> Option<Cut> {
    if e.etype() != &pingora::ErrorType::ReadTimedout
        && e.etype() != &pingora::ErrorType::ConnectTimedout
    {
        return None;
    }
    let now = Instant::now();
    let by_header = e
        .to_string()
        .contains(pingora::upstreams::peer::HEADER_DEADLINE);
    match of_request(ctx) {
        Some(d) if now >= d => {
            let route = ctx.route.as_ref()?.deadline?;
            let had = ctx
                .upstream
                .attempt
                .running()
                .map_or(Duration::ZERO, |a| d.saturating_duration_since(a.start));
            Some(Cut::Deadline {
                blame: had >= route / 2,
            })
        }
        _ if by_header => Some(Cut::FirstByte),
        _ => None,
    }
}
