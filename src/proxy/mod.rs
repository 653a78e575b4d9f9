//! `impl ProxyHttp`: the request path as a table of contents. Each phase, in the order
//! pingora runs it, is a few lines that call the module owning the concern.
//!
//! ```text
//! init_downstream_modules   none (no response-compression module)
//! admit_connection          each accepted connection: within max_connections?  (downstream)
//! request_refused           a request refused while its header was read        (downstream)
//! new_ctx                   pin the snapshot
//! on_connection_reuse /     the client's identity, carried across keep-alive requests
//!   persist_connection_context
//! request_filter            trace span (otel) → client identity, target, Host, framing →
//!                           route (404) → access, rate limits (403, 401, 429) → declared
//!                           size (413) → 100-continue                          (downstream)
//! request_body_filter       the streamed body against client_max_body_size    (downstream)
//! request_cache_filter,     cache phases: enable, key, hit, only-if-cached (504), store,
//!   cache_key_callback,     vary, stale                          (caching, cache::policy)
//!   cache_hit_filter, proxy_upstream_filter, response_cache_filter, cache_vary_filter,
//!   should_serve_stale
//! upstream_peer             pool (or backup) → admission (queue, shed) → backend → HttpPeer
//!                           with timeouts                                      (attempt)
//! hedge_after, hedge_peer,  a bodyless idempotent request's second attempt when the first
//!   hedge_ended             is slow to answer; the first answer wins           (hedge)
//! fail_to_connect           connect failure: record, retry elsewhere for free  (attempt)
//! upstream_request_filter   forwarding headers, Host, target rewrite           (forward)
//! error_while_proxy         broken exchange: record, retry if idempotent       (attempt)
//! upstream_response_filter  the status → outcome (retry a configured 5xx)      (attempt)
//! upstream_response_trailer_filter  gRPC status                               (attempt)
//! response_filter           version, framing, X-Request-Id, cache status       (forward)
//! fail_to_proxy             error → brace's 4xx/5xx, keep or close             (finish)
//! suppress_error_log,       pingora's own lines: off (logging writes one)
//!   suppress_proxy_warn_log
//! logging                   outcome → metrics, access log, one failure line    (finish)
//! ```

mod access;
mod attempt;
mod caching;
pub mod ctx;
mod deadline;
mod downstream;
mod finish;
mod forward;
pub mod headers;
mod hedge;
mod replay;
pub mod request;
pub mod respond;
mod rules;

use crate::cache;
use crate::runtime::State;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::{Conn, Ctx};
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, ForcedFreshness, HitHandler, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use std::sync::Arc;

pub struct BraceProxy {
    pub state: Arc<State>,
}

fn http_status(code: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(code), why)
}

#[async_trait]
impl ProxyHttp for BraceProxy {
    type CTX = Ctx;

    /// Once, at start. No modules: pingora's default adds a (disabled) response-compression
    /// module that still runs on every request.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    /// Each accepted connection, before anything is read: `None` closes it (`max_connections`);
    /// the guard is held while it is open and lets the connection idle longest be closed.
    fn admit_connection(&self) -> Option<pingora::apps::ConnectionGuard> {
        downstream::admit_connection(&self.state)
    }

    /// A request pingora refused while reading its header (400, 408, 414, 431, 405 for CONNECT;
    /// 0: the connection broke): no other hook runs for it. Counted and logged here, once.
    fn request_refused(&self, session: &ServerSession, status: u16, e: &Error) {
        downstream::refused_early(&self.state, session, status, e)
    }

    /// Each request, first: pins the snapshot every later phase reads.
    fn new_ctx(&self) -> Ctx {
        Ctx::new(
            self.state.snapshot(),
            &self.state.metrics.requests_in_flight,
        )
    }

    /// A keep-alive connection's next request: the client identity learnt on the connection
    /// (`persist_connection_context`) is carried into the new context.
    fn on_connection_reuse(
        &self,
        _: &mut Session,
        ctx: &mut Ctx,
        prev: Box<dyn Any + Send + Sync>,
    ) {
        if let Ok(conn) = prev.downcast::<Arc<Conn>>() {
            ctx.connection = Some(*conn);
        }
    }

    /// The end of a request on a connection that stays open: what the next request keeps.
    fn persist_connection_context(
        &self,
        _: &Session,
        ctx: &Ctx,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        ctx.connection
            .clone()
            .map(|c| Box::new(c) as Box<dyn Any + Send + Sync>)
    }

    /// After the header is read. `Ok(true)`: answered here (404, 403, 401, 429, 413, 400...),
    /// pingora goes straight to `logging`; `Ok(false)`: go on to the cache phases and upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if let Some(t) = &self.state.tracing {
            let started = std::time::SystemTime::now() - ctx.start.elapsed();
            ctx.trace = Some(Box::new(t.request(session.req_header(), started)));
        }
        downstream::admit_request(session, ctx).await
    }

    /// Each chunk of the request body as it streams upstream (and the end, `end`): an `Err`
    /// past `client_max_body_size` ends the exchange (413, via `fail_to_proxy`).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        downstream::body_chunk(body, ctx)
    }

    /// Before the cache lookup: enables the cache for a caching route's request (or records
    /// why it is bypassed). Without it, the cache phases below are skipped.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        caching::enable(session, ctx);
        Ok(())
    }

    /// With the cache enabled: the request's key (scheme, host, path, the route's query keys).
    fn cache_key_callback(&self, session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        Ok(caching::key(session, ctx))
    }

    /// On a hit: may force revalidation (the request's `no-cache`, `max-age`).
    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        _hit: &mut HitHandler,
        _is_fresh: bool,
        _ctx: &mut Ctx,
    ) -> Result<Option<ForcedFreshness>> {
        Ok(caching::hit(session, meta))
    }

    /// After a miss, before going upstream: `Ok(false)` answers here (`only-if-cached`: 504).
    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if session.cache.enabled() && cache::policy::only_if_cached(session.req_header()) {
            let body = "brace: not in cache (only-if-cached)\n";
            respond::text(session, 504, &ctx.request_id, body, &[]).await;
            return Ok(false);
        }
        Ok(true)
    }

    /// The upstream's response header on a cacheable request: stored or not, and for how long.
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        Ok(caching::cacheable(session, resp, ctx))
    }

    /// A stored response's `Vary`: the variance key this request looks up and stores under.
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::key::variance(meta, req)
    }

    /// The upstream failed (`error`) or revalidation is due: serve the stale copy instead?
    /// pingora closes the connection after a stale-if-error answer.
    fn should_serve_stale(
        &self,
        session: &mut Session,
        _ctx: &mut Ctx,
        error: Option<&Error>,
    ) -> bool {
        let serve = cache::policy::serve_stale(error);
        if serve && error.is_some() {
            // pingora closes the connection after a stale-if-error answer: say so.
            session.set_keepalive(None);
        }
        serve
    }

    /// Each attempt (the first, and each retry pingora makes on an `Err` marked retryable by
    /// `fail_to_connect` / `error_while_proxy`): the backend, admitted under the adaptive limits
    /// (a wait, or 503 shed), with its timeouts. An `Err` ends the request via `fail_to_proxy`.
    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        attempt::peer(session, ctx).await
    }

    /// After `upstream_peer`, for a bodyless request to an HTTP/1 backend: how long before a
    /// hedge is considered (`None`: no hedge; pingora proxies as usual).
    fn hedge_after(&self, session: &Session, ctx: &Ctx) -> Option<std::time::Duration> {
        hedge::after(session, ctx)
    }

    /// The first attempt has not answered by `hedge_after`'s delay: the hedge's backend, or
    /// `None` (budget, shedding, no other backend with room).
    async fn hedge_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Option<Box<HttpPeer>> {
        hedge::peer(session, ctx).await
    }

    /// One of a hedged request's attempts ended before answering (`e`: why; `None`: the other
    /// answered first): it is recorded; when it was the first, the hedge carries on as the
    /// attempt the later phases see.
    fn hedge_ended(&self, _: &mut Session, ctx: &mut Ctx, hedge: bool, e: Option<&Error>) {
        hedge::ended(ctx, hedge, e)
    }

    /// The connection (or TLS) to the backend failed: recorded; the returned error says whether
    /// pingora calls `upstream_peer` again (retry elsewhere).
    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        attempt::connect_failed(ctx, e)
    }

    /// The copy of the request header that goes to this attempt's backend (once per attempt,
    /// and for a hedge): forwarding headers, `Host`, the target. The attempt's clock starts.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::upstream_request(session, req, ctx)
    }

    /// The exchange broke after connecting (or `upstream_response_filter` asked to retry a
    /// 5xx, which arrives here as its error and passes untouched): recorded; the returned
    /// error's retry flag decides whether pingora calls `upstream_peer` again.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        attempt::broke(peer, session, e, ctx, client_reused)
    }

    /// The backend's response header: its status decides the outcome; an `Err` marked
    /// retryable retries a configured 5xx (finished in `error_while_proxy`), another `Err`
    /// answers 502. brace writes the framing the client reads.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        attempt::response_header(session, resp, ctx)
    }

    /// The backend's trailers (gRPC): the call's `grpc-status`, judged in `logging`.
    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // A gRPC call's status: its outcome is decided when the request is logged.
        if let Some(code) = attempt::grpc_status(trailers) {
            ctx.upstream.grpc_status = Some(code);
        }
        Ok(())
    }

    /// The response header the client gets (from the backend or the cache): version,
    /// framing, `X-Request-Id`, cache status, `RateLimit`.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::response(session, resp, ctx)
    }

    /// An `Err` from any phase after `request_filter`: brace's 4xx/5xx with its own body, and
    /// whether the client connection may be kept (a shed 503 keeps it; errors close it).
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        finish::fail(session, e, ctx).await
    }

    /// pingora's own error line for a failed request: off.
    fn suppress_error_log(&self, _: &Session, _: &Ctx, _: &Error) -> bool {
        true // `logging` writes the line, at the level its cause calls for
    }

    /// pingora's warning for each retried attempt: off.
    fn suppress_proxy_warn_log(
        &self,
        _: &Session,
        _: &Ctx,
        _: &Error,
        _: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        true // a retry is counted (`brace_upstream_retries_total`); its end is logged once
    }

    /// Last, for every request that reached `request_filter`, answered or not: the outcome to
    /// the pool, metrics, the access log, one line for a failure.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        finish::record(session, e, ctx)
    }
}
