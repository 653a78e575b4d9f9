//! The cache phases' glue: what the request's session and context give `cache`'s functions,
//! which take headers and the route's policy only.

use super::ctx::Ctx;
use super::headers::X_FORWARDED_HOST;
use crate::cache::{self, policy, CacheStatus};
use pingora::cache::{CacheKey, CacheMeta, ForcedFreshness, RespCacheable};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::SystemTime;

fn tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// `request_cache_filter`.
pub fn enable(session: &mut Session, ctx: &mut Ctx) {
    let Some((policy, store)) = ctx.cache_policy() else {
        return;
    };
    let req = session.downstream_session.req_header();
    let bypass = cache::enable(&mut session.cache, req, policy, store);
    ctx.cache.bypass = bypass;
}

/// `cache_key_callback`.
pub fn key(session: &Session, ctx: &Ctx) -> CacheKey {
    let Some((policy, _)) = ctx.cache_policy() else {
        return CacheKey::new("", "");
    };
    let req = session.req_header();
    let forwarded_host = (ctx.peer_trusted && ctx.snapshot.config.server.trust_forwarded_host)
        .then(|| req.headers.get(&X_FORWARDED_HOST))
        .flatten();
    cache::key::key(req, tls(session), ctx.host.as_str(), policy, forwarded_host)
}

/// `cache_hit_filter`.
pub fn hit(session: &Session, meta: &CacheMeta) -> Option<ForcedFreshness> {
    policy::hit(session.req_header(), meta, SystemTime::now())
}

/// `response_cache_filter`.
pub fn cacheable(session: &Session, resp: &ResponseHeader, ctx: &Ctx) -> RespCacheable {
    let Some((policy, _)) = ctx.cache_policy() else {
        return RespCacheable::Uncacheable(pingora::cache::NoCacheReason::Custom("method"));
    };
    policy::cacheable(
        session.req_header(),
        resp,
        policy,
        &ctx.cache,
        SystemTime::now(),
    )
}

/// What the cache did for this request, and why nothing was stored; `None` when the route
/// does not cache.
pub fn status(session: &Session, ctx: &Ctx) -> Option<(CacheStatus, Option<&'static str>)> {
    ctx.route.as_ref()?.cache.as_ref()?;
    Some(policy::status(&ctx.cache, session.cache.phase()))
}

/// RFC 9111 §4.4: a successful unsafe request removes the stored responses it invalidates.
/// Returns how many were removed.
pub fn invalidate(session: &Session, ctx: &Ctx, status: u16) -> u64 {
    let Some((policy, store)) = ctx.cache_policy() else {
        return 0;
    };
    let req = session.req_header();
    let own = || cache::key::url(req, tls(session), ctx.host.as_str(), policy);
    let targets = policy::invalidated(
        req,
        session.response_written(),
        own,
        ctx.host.as_str(),
        status,
    );
    if targets.is_empty() {
        return 0;
    }
    let removed = store.storage.purge_urls(targets.iter().map(String::as_str));
    if let Some(cluster) = &ctx.snapshot.cluster {
        crate::cluster::purge::notify(
            cluster,
            crate::cluster::purge::Op::Invalidate { urls: targets },
        );
    }
    removed
}
