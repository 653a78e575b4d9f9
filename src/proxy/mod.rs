//! `impl ProxyHttp`: each phase is a few lines that call into the domain modules, in the order
//! pingora runs them.
//!
//! ```text
//! new_ctx                  pin the snapshot
//! request_filter           check the request → route (404) → body limit (413)
//! upstream_peer            pool.pick → HttpPeer with the pool's timeouts
//! upstream_request_filter  X-Forwarded-*, X-Request-Id, strip_prefix
//! request_body_filter      enforce client_max_body_size on streamed bodies
//! upstream_response_filter strip hop-by-hop, note the status for the outcome
//! response_filter          X-Request-Id (and debug headers) on the response
//! fail_to_proxy            error → 400/413/502/503/504 with a short body
//! logging                  outcome → metrics, access log
//! ```

pub mod ctx;
pub mod headers;
pub mod request;
pub mod respond;

use crate::cache;
use crate::config::{Balance, HashKey};
use crate::limit::{self, Decision};
use crate::logging;
use crate::metrics::RetryReason;
use crate::runtime::Snapshot;
use crate::runtime::State;
use crate::upstream::now_ms;
use crate::upstream::outcome::Outcome;
use crate::upstream::pool::Pool;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::{Attempt, Conn, Ctx, PoolSlot};
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, ForcedFreshness, HitHandler, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle upstream connection is kept in the pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct BraceProxy {
    pub state: Arc<State>,
}

fn http_status(code: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(code), why)
}

#[async_trait]
impl ProxyHttp for BraceProxy {
    type CTX = Ctx;

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
        let peer = ctx
            .connection
            .get_or_insert_with(|| {
                let peer = session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; every trust
                    // check and limit key uses the plain IPv4 address.
                    .map(|a| a.ip().to_canonical());
                let port = session
                    .server_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.port());
                Arc::new(Conn::new(peer, port))
            })
            .peer;
        let snap = ctx.snapshot.clone();
        client_timeouts(session, &snap.config.server);
        let req = session.req_header();
        ctx.request_id = match req.headers.get(&headers::X_REQUEST_ID) {
            Some(v) if headers::sane_request_id(v.as_bytes()) => v.clone(),
            _ => headers::new_request_id(),
        };
        if let Some(peer) = peer {
            ctx.peer_trusted = snap.is_trusted(peer);
            ctx.client_ip = Some(headers::client_ip(peer, req, |ip| snap.is_trusted(ip)));
        }

        let host = match request::host(req) {
            Ok(h) => h,
            Err(why) => return refuse(session, ctx, why).await,
        };
        let mode = snap.config.server.path_normalization;
        let target = match request::target(&req.method, req.raw_path(), mode) {
            Ok(t) => t,
            Err(why) => return refuse(session, ctx, why).await,
        };
        let length = match request::content_length(&req.headers) {
            Ok(n) => n,
            Err(why) => return refuse(session, ctx, why).await,
        };
        let recode_length = length.filter(|_| !request::content_length_is_canonical(&req.headers));
        // `OPTIONS *` asks about the server as a whole: it takes the route of `/`.
        let route_path = if target.path == "*" {
            "/"
        } else {
            &target.path
        };
        let Some(route) = snap
            .router
            .find(&crate::route::normalize_host(host), route_path)
        else {
            let path = &target.path;
            let body = format!("brace: no route for host \"{host}\" and path \"{path}\"\n");
            respond::text(session, 404, ctx.request_id_str(), &body, &[]).await;
            return Ok(true);
        };
        ctx.route = Some(route.clone());
        if route.cache.is_some() {
            ctx.host = host.to_owned();
        }
        if let Some(uri) = target.rewrite.then(|| target.origin_form()) {
            session
                .req_header_mut()
                .set_raw_path(uri.as_bytes())
                .map_err(|e| e.into_down())?;
        }
        if let Some(n) = recode_length {
            // One canonical value upstream, whatever spelling the client used.
            session
                .req_header_mut()
                .insert_header(http::header::CONTENT_LENGTH, http::HeaderValue::from(n))?;
        }
        let req = session.req_header();

        // Rate limits, in the route's order; the first to refuse answers.
        for l in &route.limits {
            let Some(key) =
                limit::key_value(&l.limiter.config.key, ctx.client_ip, &route.name, req)
            else {
                continue;
            };
            let d = l.limiter.check(key, crate::clock::now_us());
            l.decisions[d.index()].inc();
            match d {
                Decision::Limited {
                    retry_after_secs, ..
                } => {
                    let name = &l.limiter.name;
                    let body = format!(
                        "brace: rate limit \"{name}\" exceeded; retry in {retry_after_secs} s\n"
                    );
                    let extra = [
                        ("retry-after", retry_after_secs.to_string()),
                        ("ratelimit-policy", l.limiter.policy_header.clone()),
                        ("ratelimit", l.limiter.header(&d)),
                    ];
                    let status = l.limiter.config.status;
                    respond::text(session, status, ctx.request_id_str(), &body, &extra).await;
                    return Ok(true);
                }
                Decision::Allowed { remaining, .. }
                    if snap.rate_limit_headers
                        && ctx
                            .rate_limit_header
                            .as_ref()
                            .is_none_or(|(r, _)| remaining < *r) =>
                {
                    ctx.rate_limit_header = Some((remaining, l.limiter.header(&d)));
                }
                _ => {}
            }
        }

        if length.is_some_and(|n| n > snap.client_max_body_size) {
            return Err(http_status(413, "content-length over client_max_body_size"));
        }
        if request::expects_continue(session.req_header()) {
            // Accepted: ask for the body now rather than let the client wait out its own
            // timer (curl's is 1 s). `Expect` is not forwarded, so the backend sends no second
            // 100 (as nginx does).
            session.write_continue_response().await?;
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > ctx.snapshot.client_max_body_size {
                return Err(http_status(413, "body over client_max_body_size"));
            }
        }
        Ok(())
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        cache::policy::enable(session, ctx);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        Ok(cache::policy::key(session, ctx))
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        _hit: &mut HitHandler,
        _is_fresh: bool,
        _ctx: &mut Ctx,
    ) -> Result<Option<ForcedFreshness>> {
        Ok(cache::policy::hit(session, meta))
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if session.cache.enabled() && cache::policy::only_if_cached(session) {
            let body = "brace: not in cache (only-if-cached)\n";
            respond::text(session, 504, ctx.request_id_str(), body, &[]).await;
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
        Ok(cache::policy::cacheable(session, resp, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Ctx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::policy::variance(meta, req)
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
        let route = ctx
            .route
            .clone()
            .ok_or_else(|| http_status(500, "upstream_peer without a route"))?;
        let now = now_ms();
        if ctx.tries == 0 {
            let Some(slot) = PoolSlot::take(&route.pool) else {
                route.pool.stats.in_flight_rejected.inc();
                ctx.retry_after = Some(Duration::from_secs(1));
                return Err(http_status(503, "pool at max_in_flight"));
            };
            ctx.pool_slot = Some(slot);
            route.pool.budget.note_request(now);
        } else {
            backoff(&route.pool.config.retry.backoff, ctx.tries).await;
        }
        ctx.tries += 1;
        let key = hash_key(session, ctx, &route.pool.config.balance);
        let Some((pool, idx)) = choose(&ctx.snapshot, &route.pool, &key, &ctx.tried, now) else {
            if route.pool.breakers_open(now) {
                route.pool.stats.breaker_rejected.inc();
            }
            ctx.retry_after = Some(route.pool.retry_after(now));
            return Err(http_status(503, "no backend available"));
        };
        let backend = pool.backends[idx].clone();
        ctx.tried.push(backend.addr);
        let mut peer = HttpPeer::new(backend.addr, false, String::new());
        ctx.attempt = Some(Attempt::new(idx, backend));
        let o = &mut peer.options;
        o.connection_timeout = Some(pool.config.connect_timeout);
        // pingora times each read, not the wait for headers as a whole: the route timeout caps
        // every read, which bounds the header wait when headers come in one read.
        o.read_timeout = Some(pool.config.read_timeout.min(route.timeout));
        o.write_timeout = Some(pool.config.read_timeout);
        o.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        o.upgrade_idle_timeout = Some(pool.config.upgrade_idle_timeout);
        ctx.pool = Some(pool);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let outcome = Outcome::from_error(&e).unwrap_or(Outcome::ConnectError);
        finish_attempt(ctx, outcome);
        // Nothing reached the upstream, so any method may be retried.
        let allowed = ctx
            .route
            .as_ref()
            .is_some_and(|r| r.pool.config.retry.on.connect_error);
        e.set_retry(allowed && may_retry(ctx, RetryReason::ConnectError));
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if std::mem::take(&mut ctx.status_retry) {
            return e; // an upstream 5xx being retried: recorded and decided already
        }
        let mut outcome = Outcome::from_error(&e).unwrap_or(Outcome::Error);
        if ctx.upgraded {
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
        finish_attempt(ctx, outcome);
        let replayable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none();
        if !replayable || outcome.is_client() {
            e.set_retry(false);
            return e;
        }
        let on = ctx
            .route
            .as_ref()
            .map(|r| r.pool.config.retry.on)
            .unwrap_or_default();
        let (reason, allowed) = match outcome {
            Outcome::Timeout => (RetryReason::Timeout, on.timeout),
            _ => (RetryReason::Error, on.error),
        };
        if allowed && may_retry(ctx, reason) {
            e.set_retry(true);
        } else {
            // pingora's own rule: a failure on a reused (possibly stale) pooled connection of an
            // idempotent request is retried once on a fresh connection.
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        req.remove_header(&http::header::EXPECT);
        if !req.headers.contains_key(http::header::HOST) {
            // An HTTP/1.0 request may come without Host; HTTP/1.1, which brace speaks
            // upstream, requires one (RFC 9112 §3.2): the target's authority, else the
            // backend's address (nginx sends its upstream's name).
            let host = req
                .uri
                .authority()
                .map(|a| a.to_string())
                .or_else(|| ctx.attempt.as_ref().map(|a| a.backend.label.clone()));
            if let Some(h) = host {
                req.insert_header(http::header::HOST, h)?;
            }
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let conn = ctx.connection.as_deref();
        let client_ip = match (ctx.client_ip, conn) {
            (Some(ip), Some(c)) if c.peer == Some(ip) => c.peer_value.clone(),
            (ip, _) => ip.map(|ip| {
                http::HeaderValue::from_str(&ip.to_string()).expect("an IP is a header value")
            }),
        };
        headers::add_forwarding(
            req,
            &headers::Forwarding {
                peer: conn.and_then(|c| c.peer_value.as_ref()),
                port: conn.and_then(|c| c.local_port.as_ref()),
                client_ip,
                peer_trusted: ctx.peer_trusted,
                tls,
                trust_forwarded_host: ctx.snapshot.config.server.trust_forwarded_host,
                request_id: &ctx.request_id,
            },
        )?;
        // A cacheable request's query is cut to the keyed parameters.
        let query = match (
            ctx.route.as_ref().and_then(|r| r.cache.as_ref()),
            req.uri.query(),
        ) {
            (Some(policy), Some(q)) if session.cache.enabled() => {
                cache::policy::forwarded_query(policy, q)
            }
            _ => None,
        };
        let strip = ctx.route.as_ref().filter(|r| r.strip_prefix);
        if strip.is_some() || query.is_some() {
            let path = req.uri.path();
            let rest = match strip {
                Some(route) => path
                    .strip_prefix(route.path_prefix.as_str())
                    .unwrap_or(path),
                None => path,
            };
            let mut uri = String::with_capacity(rest.len() + 16);
            if !rest.starts_with('/') {
                uri.push('/');
            }
            uri.push_str(rest);
            match (query.as_deref(), req.uri.query()) {
                (Some(""), _) | (None, None) => {}
                (Some(q), _) | (None, Some(q)) => {
                    uri.push('?');
                    uri.push_str(q);
                }
            }
            let uri = uri
                .parse::<http::Uri>()
                .map_err(|e| Error::because(ErrorType::InternalError, "upstream target", e))?;
            req.set_uri(uri);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let code = resp.status.as_u16();
        if code == 101 {
            ctx.upgraded = true;
            ctx.upstream_status = Some(code);
        }
        if resp.status.is_informational() {
            return Ok(());
        }
        // Brace-Cache-Control is for brace alone: read it, never store or forward it.
        ctx.brace_cache_control = resp.remove_header(&headers::BRACE_CACHE_CONTROL);
        if code == 304 && session.cache.enabled() {
            ctx.revalidation_headers = Some(resp.headers.clone());
        }
        ctx.upstream_status = Some(code);
        let retry_on = ctx
            .route
            .as_ref()
            .is_some_and(|r| r.pool.config.retry.on.status(code));
        if retry_on
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
        {
            let reason = match code {
                502 => RetryReason::Status502,
                503 => RetryReason::Status503,
                _ => RetryReason::Status504,
            };
            if may_retry(ctx, reason) {
                finish_attempt(ctx, Outcome::Http5xx);
                ctx.status_retry = true;
                ctx.upstream_status = None;
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
            Ok(Some(n)) if !request::content_length_is_canonical(&resp.headers) => {
                resp.insert_header(http::header::CONTENT_LENGTH, http::HeaderValue::from(n))?;
            }
            Ok(_) => {}
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // Speak brace's own HTTP version to the client, whatever the upstream spoke (an
        // HTTP/1.0 origin must not turn a keep-alive HTTP/1.1 client connection into 1.0).
        match session.req_header().version {
            http::Version::HTTP_11 if resp.version != http::Version::HTTP_11 => {
                resp.set_version(http::Version::HTTP_11);
            }
            // HTTP/1.0 has no chunked coding (RFC 9112 §6.1): a body of unknown length is
            // delimited by closing the connection.
            http::Version::HTTP_10
                if resp.headers.contains_key(http::header::TRANSFER_ENCODING) =>
            {
                resp.remove_header(&http::header::TRANSFER_ENCODING);
                session.set_keepalive(None);
            }
            _ => {}
        }
        resp.insert_header("x-request-id", ctx.request_id.clone())?;
        if ctx.upgraded {
            if let Some(pool) = &ctx.pool {
                // The client side of the tunnel idles as long as the backend side may.
                session.set_read_timeout(Some(pool.config.upgrade_idle_timeout));
            }
        }
        if let Some((_, v)) = &ctx.rate_limit_header {
            resp.insert_header("ratelimit", v.as_str())?;
        }
        if let Some((status, reason)) = cache::policy::status(session, ctx) {
            if ctx
                .route
                .as_ref()
                .and_then(|r| r.cache.as_ref())
                .is_some_and(|c| c.status_header)
            {
                resp.insert_header("x-cache-status", status.as_str())?;
                if let Some(r) = reason {
                    resp.insert_header("x-cache-reason", r)?;
                }
            }
        }
        if ctx.snapshot.debug_headers {
            if let (Some(pool), Some(a)) = (&ctx.pool, &ctx.attempt) {
                resp.insert_header("x-brace-upstream", pool.name.as_str())?;
                resp.insert_header("x-brace-backend", a.backend.label.as_str())?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = respond::status_for(e);
        // The connection is not reused after an error (below): the response says so, so a
        // client does not send its next request into a closing connection.
        session.set_keepalive(None);
        if code > 0 && session.response_written().is_none() {
            if ctx.request_id.as_bytes().is_empty() {
                ctx.request_id = headers::new_request_id();
            }
            let upstream = ctx.route.as_ref().map(|r| r.pool.name.as_str());
            let body = respond::message(code, upstream);
            let mut extra = Vec::new();
            if let (503, Some(d)) = (code, ctx.retry_after) {
                // Rounded up: coming back a little late is fine, early is not.
                let secs = (d.as_millis() as u64).div_ceil(1000).max(1);
                extra.push(("retry-after", secs.to_string()));
            }
            respond::text(session, code, ctx.request_id_str(), &body, &extra).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _: &Session, _: &Ctx, _: &Error) -> bool {
        true // `logging` writes the line, at the level its cause calls for (`log_failure`)
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

    fn admit_connection(&self) -> Option<pingora::apps::ConnectionGuard> {
        let open = &self.state.metrics.connections_active;
        let max = self.state.snapshot().config.server.max_connections;
        if open.get() >= max as i64 {
            self.state.metrics.connections_refused_total.inc();
            return None;
        }
        Some(Box::new(ctx::GaugeGuard::new(open)))
    }

    fn request_refused(&self, session: &ServerSession, status: u16, e: &Error) {
        let snap = self.state.snapshot();
        let reason = match status {
            400 => "malformed",
            405 => "connect_method",
            408 => "header_timeout",
            414 => "uri_too_long",
            431 => "header_too_large",
            _ => "incomplete",
        };
        tracing::debug!(reason, status, "request refused before routing: {e}");
        snap.metrics
            .requests_refused_total
            .with_label_values(&[reason])
            .inc();
        if status > 0 {
            snap.refused.record(status, 0.0);
        }
        if snap.access_log {
            logging::refused(session, status, reason);
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed().as_secs_f64();
        let outcome = ctx.outcome(e);
        finish_attempt(ctx, outcome);
        match &ctx.route {
            Some(r) => r.stats.record(status, elapsed),
            None if ctx.refused => ctx.snapshot.refused.record(status, elapsed),
            None => ctx.snapshot.unmatched.record(status, elapsed),
        }
        if let Some(e) = e {
            log_failure(ctx, e, outcome, status);
        }
        if let Some((cs, reason)) = cache::policy::status(session, ctx) {
            record_cache(session, ctx, cs, reason, status);
        }
        if ctx.snapshot.access_log {
            logging::access(session, ctx, status);
        }
    }
}

/// Answers a malformed request with 400 and closes the connection (what follows it on the
/// connection cannot be trusted to be framed as the client meant). The client caused it, so
/// it is logged at debug only; it is counted by reason and written to the access log.
async fn refuse(session: &mut Session, ctx: &mut Ctx, why: &'static str) -> Result<bool> {
    tracing::debug!(reason = why, "request refused");
    ctx.snapshot
        .metrics
        .requests_refused_total
        .with_label_values(&[why])
        .inc();
    session.set_keepalive(None);
    ctx.refused = true;
    let body = format!("brace: bad request: {why}\n");
    respond::text(session, 400, ctx.request_id_str(), &body, &[]).await;
    Ok(true)
}

/// Applies the `[server]` client timeouts to this request's connection (a reload applies to
/// the next request).
fn client_timeouts(session: &mut Session, server: &crate::config::Server) {
    // Pipelined requests are answered in order (RFC 9112 §9.3.2) rather than dropped.
    session.set_pipelining_enabled(true);
    session.set_read_timeout(Some(server.client_body_timeout));
    session.set_write_timeout(Some(server.client_send_timeout));
    // Only when the client asked to keep the connection (HTTP/1.1 by default).
    if session.get_keepalive().is_some() {
        let secs = server.client_keepalive_timeout.as_secs();
        session.set_keepalive((secs > 0).then_some(secs));
    }
}

/// One process-log line for a request that ended in an error, at the level its cause calls
/// for: a backend's failure is WARN (the upstream metrics and ejection carry the rest), the
/// client's doing DEBUG. Nothing a client can cause logs at ERROR. pingora's own line for
/// it is suppressed (`suppress_error_log`).
fn log_failure(ctx: &Ctx, e: &Error, outcome: Outcome, status: u16) {
    let route = ctx.route.as_ref().map_or("-", |r| r.name.as_str());
    let backend = ctx
        .tried
        .last()
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    if outcome.is_client() || ctx.upgraded || ctx.pool.is_none() {
        tracing::debug!(request_id = ctx.request_id_str(), route, backend = %backend, status, outcome = outcome.as_str(), "request ended: {e}");
    } else {
        tracing::warn!(request_id = ctx.request_id_str(), route, backend = %backend, status, outcome = outcome.as_str(), "request failed: {e}");
    }
}

/// Picks an untried backend from the route's pool, else from its backup pool.
fn choose(
    snap: &Snapshot,
    primary: &Arc<Pool>,
    key: &[u8],
    tried: &[std::net::SocketAddr],
    now: u64,
) -> Option<(Arc<Pool>, usize)> {
    let pick = |p: &Arc<Pool>| {
        let mut skip: Option<Vec<std::net::SocketAddr>> = None;
        for _ in 0..=p.backends.len() {
            let i = p.pick(key, skip.as_deref().unwrap_or(tried), now)?;
            // A half-open breaker admits only its trial calls; one that lost the race for the
            // last permit is skipped.
            if p.acquire(i, now) {
                return Some((p.clone(), i));
            }
            skip.get_or_insert_with(|| tried.to_vec())
                .push(p.backends[i].addr);
        }
        None
    };
    pick(primary).or_else(|| {
        let backup = snap.pools.get(primary.config.backup.as_deref()?)?;
        let found = pick(backup)?;
        primary.stats.backup_used.inc();
        Some(found)
    })
}

/// Ends the current attempt: its outcome goes to metrics and outlier detection, and the
/// backend's in-flight count drops.
fn finish_attempt(ctx: &mut Ctx, outcome: Outcome) {
    if let (Some(a), Some(pool)) = (ctx.attempt.take(), &ctx.pool) {
        pool.record(a.idx, outcome, a.start.elapsed().as_secs_f64());
    }
}

/// True when one more attempt is allowed by `attempts` and the pool's retry budget; counts it.
fn may_retry(ctx: &Ctx, reason: RetryReason) -> bool {
    let Some(route) = &ctx.route else {
        return false;
    };
    let pool = &route.pool;
    let r = &pool.config.retry;
    if ctx.tries > r.attempts {
        return false;
    }
    // Like nginx's proxy_next_upstream, a retry goes to another backend; with none left, the
    // client gets the real error rather than a retry that could only fail.
    let now = now_ms();
    let untried = |p: &Pool| {
        p.backends
            .iter()
            .any(|b| !ctx.tried.contains(&b.addr) && b.available(now))
    };
    let backup = pool
        .config
        .backup
        .as_deref()
        .and_then(|b| ctx.snapshot.pools.get(b));
    if !untried(pool) && !backup.is_some_and(|b| untried(b)) {
        return false;
    }
    // A connection that was never made put no work on any backend, so retrying it elsewhere
    // cannot amplify load: only retries of requests a backend received draw on the budget.
    let free = reason == RetryReason::ConnectError;
    if !free
        && !pool
            .budget
            .try_retry(now, r.budget_percent, r.min_retries_per_second)
    {
        pool.stats.budget_exhausted.inc();
        return false;
    }
    pool.stats.retries[reason as usize].inc();
    true
}

/// Waits before a retry: `base * 2^(n-1)`, times a random factor in 0.5..1.5.
async fn backoff(base: &Duration, tries: u32) {
    if base.is_zero() {
        return;
    }
    let exp = base.saturating_mul(1 << tries.saturating_sub(1).min(6));
    tokio::time::sleep(exp.mul_f64(0.5 + fastrand::f64())).await;
}

/// The consistent-hash key of a request; empty for other algorithms.
fn hash_key(session: &Session, ctx: &Ctx, balance: &Balance) -> Vec<u8> {
    let Balance::ConsistentHash(key) = balance else {
        return Vec::new();
    };
    let req = session.req_header();
    match key {
        HashKey::ClientIp => ctx
            .client_ip
            .map(|ip| ip.to_string().into_bytes())
            .unwrap_or_default(),
        HashKey::Path => req.uri.path().as_bytes().to_vec(),
        HashKey::Header(name) => req
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
        HashKey::Cookie(name) => req
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes().to_vec())
            .unwrap_or_default(),
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
    let lock_wait = session.cache.lock_duration().map(|_| {
        matches!(
            cs,
            cache::CacheStatus::Hit | cache::CacheStatus::Stale | cache::CacheStatus::Revalidated
        )
    });
    stats.record(cs, reason, lock_wait);
    let m = &ctx.snapshot.metrics;
    let purged = cache::policy::invalidate(session, ctx, status);
    if purged > 0 {
        m.cache_purged_total.inc_by(purged);
    }
}
