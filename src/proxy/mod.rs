//! `impl ProxyHttp`: the request path as a table of contents. Each phase, in the order
//! pingora runs it, is a few lines that call the module owning the concern.
//!
//! ```text
//! admit_connection         each accepted connection: within max_connections?  (downstream)
//! request_refused          a request refused while its header was read        (downstream)
//! new_ctx                  pin the snapshot
//! request_filter           trace span (otel) → client identity, target, Host, framing → route (404) → rate
//!                          limits (429) → declared size (413) → 100-continue  (downstream)
//! request_body_filter      the streamed body against client_max_body_size    (downstream)
//! request_cache_filter …   cache phases: enable, key, hit, vary, store, stale (cache::policy)
//! proxy_upstream_filter    only-if-cached on a miss: 504
//! upstream_peer            pool (or backup) → backend → HttpPeer with timeouts (attempt)
//! hedge_after / hedge_peer / hedge_ended: a bodyless idempotent request's second attempt
//!                          when the first is slow to answer; the first answer wins (hedge)
//! fail_to_connect          connect failure: record, retry elsewhere for free  (attempt)
//! upstream_request_filter  forwarding headers, Host, target rewrite           (forward)
//! error_while_proxy        broken exchange: record, retry if idempotent       (attempt)
//! upstream_response_filter the status → outcome (retry a configured 5xx)      (attempt)
//! response_filter          version, framing, X-Request-Id, cache status       (forward)
//! fail_to_proxy            error → brace's 4xx/5xx, Connection: close         (finish)
//! logging                  outcome → metrics, access log, one failure line    (finish)
//! on_connection_reuse / persist_connection_context: the client's identity across
//!                          keep-alive requests
//! ```

mod access;
mod attempt;
mod caching;
pub mod ctx;
mod downstream;
mod finish;
mod forward;
pub mod headers;
mod hedge;
pub mod request;
pub mod respond;

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

    /// No downstream modules: pingora adds a (disabled) response-compression module by
    /// default, which still runs on every request; brace does not compress.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn admit_connection(&self) -> Option<pingora::apps::ConnectionGuard> {
        downstream::admit_connection(&self.state)
    }

    fn request_refused(&self, session: &ServerSession, status: u16, e: &Error) {
        downstream::refused_early(&self.state, session, status, e)
    }

    fn new_ctx(&self) -> Ctx {
        Ctx::new(
            self.state.snapshot(),
            &self.state.metrics.requests_in_flight,
        )
    }

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

    fn persist_connection_context(
        &self,
        _: &Session,
        ctx: &Ctx,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        ctx.connection
            .clone()
            .map(|c| Box::new(c) as Box<dyn Any + Send + Sync>)
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if let Some(t) = &self.state.tracing {
            let started = std::time::SystemTime::now() - ctx.start.elapsed();
            ctx.trace = Some(Box::new(t.request(session.req_header(), started)));
        }
        downstream::admit_request(session, ctx).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        downstream::body_chunk(body, ctx)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        caching::enable(session, ctx);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        Ok(caching::key(session, ctx))
    }

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

    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if session.cache.enabled() && cache::policy::only_if_cached(session.req_header()) {
            let body = "brace: not in cache (only-if-cached)\n";
            respond::text(session, 504, &ctx.request_id, body, &[]).await;
            return Ok(false);
        }
        Ok(true)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        Ok(caching::cacheable(session, resp, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::key::variance(meta, req)
    }

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

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        attempt::peer(session, ctx).await
    }

    fn hedge_after(&self, session: &Session, ctx: &Ctx) -> Option<std::time::Duration> {
        hedge::after(session, ctx)
    }

    async fn hedge_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Option<Box<HttpPeer>> {
        hedge::peer(session, ctx).await
    }

    fn hedge_ended(&self, _: &mut Session, ctx: &mut Ctx, hedge: bool, e: Option<&Error>) {
        hedge::ended(ctx, hedge, e)
    }

    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        attempt::connect_failed(ctx, e)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::upstream_request(session, req, ctx)
    }

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

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        attempt::response_header(session, resp, ctx)
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // A gRPC call's status: its outcome is decided when the request is logged.
        if let Some(code) = attempt::grpc_status(trailers) {
            ctx.grpc_status = Some(code);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::response(session, resp, ctx)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        finish::fail(session, e, ctx).await
    }

    fn suppress_error_log(&self, _: &Session, _: &Ctx, _: &Error) -> bool {
        true // `logging` writes the line, at the level its cause calls for
    }

    fn suppress_proxy_warn_log(
        &self,
        _: &Session,
        _: &Ctx,
        _: &Error,
        _: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        true // a retry is counted (`brace_upstream_retries_total`); its end is logged once
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        finish::record(session, e, ctx)
    }
}
