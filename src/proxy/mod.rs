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
pub mod respond;

use crate::logging;
use crate::runtime::State;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::{Ctx, GaugeGuard};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
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
        if let Ok(conn) = prev.downcast::<Arc<GaugeGuard>>() {
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
        if ctx.connection.is_none() {
            ctx.connection = Some(Arc::new(GaugeGuard::new(
                &self.state.metrics.connections_active,
            )));
        }
        let snap = ctx.snapshot.clone();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        ctx.request_id = match req.headers.get("x-request-id") {
            Some(v) if headers::sane_request_id(v.as_bytes()) => {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }
            _ => headers::new_request_id(),
        };
        if let Some(peer) = peer {
            ctx.peer_trusted = snap.is_trusted(peer);
            ctx.client_ip = Some(headers::client_ip(peer, req, |ip| snap.is_trusted(ip)));
        }

        let host = match request_host(req) {
            Ok(h) => h,
            Err(why) => return Err(http_status(400, why)),
        };
        if headers::has_dot_segment(req.uri.path()) {
            return Err(http_status(400, "dot segment in path"));
        }
        let path = req.uri.path();
        let Some(route) = snap.router.find(&crate::route::normalize_host(&host), path) else {
            let body = format!("brace: no route for host \"{host}\" and path \"{path}\"\n");
            respond::text(session, 404, &ctx.request_id, &body, &[]).await;
            return Ok(true);
        };
        ctx.route = Some(route.clone());

        let too_large = match req.headers.get("content-length") {
            Some(v) => std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|n| n > snap.client_max_body_size),
            None => false,
        };
        if too_large {
            return Err(http_status(413, "content-length over client_max_body_size"));
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

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| http_status(500, "upstream_peer without a route"))?;
        let pool = &route.pool;
        let Some(idx) = pool.pick() else {
            return Err(http_status(503, "no backend available"));
        };
        ctx.backend = Some(idx);
        ctx.upstream_start = Some(std::time::Instant::now());
        let mut peer = HttpPeer::new(pool.backends[idx].addr, false, String::new());
        let o = &mut peer.options;
        o.connection_timeout = Some(pool.config.connect_timeout);
        // pingora times each read, not the wait for headers as a whole: the route timeout caps
        // every read, which bounds the header wait when headers come in one read.
        o.read_timeout = Some(pool.config.read_timeout.min(route.timeout));
        o.write_timeout = Some(pool.config.read_timeout);
        o.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        headers::add_forwarding(req, peer, ctx.peer_trusted, tls, &ctx.request_id)?;
        if let Some(route) = ctx.route.as_ref().filter(|r| r.strip_prefix) {
            let path = req.uri.path();
            let rest = path
                .strip_prefix(route.path_prefix.as_str())
                .unwrap_or(path);
            let mut uri = String::with_capacity(rest.len() + 16);
            if !rest.starts_with('/') {
                uri.push('/');
            }
            uri.push_str(rest);
            if let Some(q) = req.uri.query() {
                uri.push('?');
                uri.push_str(q);
            }
            let uri = uri
                .parse::<http::Uri>()
                .map_err(|e| Error::because(ErrorType::InternalError, "strip_prefix", e))?;
            req.set_uri(uri);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if !resp.status.is_informational() {
            ctx.upstream_status = Some(resp.status.as_u16());
        }
        headers::strip_response_hop_by_hop(resp);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
        if ctx.snapshot.debug_headers {
            if let (Some(route), Some(i)) = (&ctx.route, ctx.backend) {
                resp.insert_header("x-brace-upstream", route.pool.name.as_str())?;
                resp.insert_header("x-brace-backend", route.pool.backends[i].label.as_str())?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = respond::status_for(e);
        if code > 0 && session.response_written().is_none() {
            if ctx.request_id.is_empty() {
                ctx.request_id = headers::new_request_id();
            }
            let upstream = ctx.route.as_ref().map(|r| r.pool.name.as_str());
            let body = respond::message(code, upstream);
            respond::text(session, code, &ctx.request_id, &body, &[]).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.start.elapsed().as_secs_f64();
        let route = ctx.route.as_ref();
        let backend = route.zip(ctx.backend).map(|(r, i)| &r.pool.backends[i]);
        if let (Some(b), Some(t)) = (backend, ctx.upstream_start) {
            b.stats.record(ctx.outcome(e), t.elapsed().as_secs_f64());
        }
        match route {
            Some(r) => r.stats.record(status, elapsed),
            None => ctx.snapshot.unmatched.record(status, elapsed),
        }
        if ctx.snapshot.access_log {
            logging::access(session, ctx, status, backend.map(|b| b.label.as_str()));
        }
    }
}

/// The request's host: the absolute-form authority if there is one (RFC 9112 §3.2.2), else the
/// single `Host` header. HTTP/1.1 requires exactly one Host; several are refused.
fn request_host(req: &RequestHeader) -> std::result::Result<String, &'static str> {
    if let Some(a) = req.uri.authority() {
        return Ok(a.host().to_owned());
    }
    let mut hosts = req.headers.get_all("host").iter();
    match (hosts.next(), hosts.next()) {
        (Some(h), None) => {
            let s = h.to_str().map_err(|_| "Host is not ASCII")?;
            let valid = !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
                });
            if valid {
                Ok(s.to_owned())
            } else {
                Err("invalid Host")
            }
        }
        (Some(_), Some(_)) => Err("several Host headers"),
        (None, _) if req.version == http::Version::HTTP_11 => Err("HTTP/1.1 request without Host"),
        (None, _) => Ok(String::new()),
    }
}
