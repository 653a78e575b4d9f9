//! The client side of a request, before anything goes upstream: which connection and client
//! it is, whether brace accepts it (target, Host, framing, route, rate limits, declared
//! size), the client timeouts, and the refusals made before routing.

use super::ctx::{Conn, Ctx, GaugeGuard};
use super::{headers, http_status, request, respond};
use crate::limit::{self, Verdict};
use crate::runtime::State;
use bytes::Bytes;
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;
use pingora::{Error, Result};
use std::sync::Arc;

/// `request_filter`: `Ok(true)` when brace answered (refused, 404, rate-limited).
pub async fn admit_request(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
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

    match crate::tls::client_cert(session.digest()) {
        Some(crate::tls::ClientCert::Missing) => {
            return refuse(session, ctx, "client certificate required").await;
        }
        Some(crate::tls::ClientCert::Untrusted(why)) => {
            tracing::debug!(client = ?ctx.client_ip, "client certificate not trusted: {why}");
            return refuse(session, ctx, "client certificate not trusted").await;
        }
        _ => {}
    }
    let req = session.req_header();
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
    let recode_length = length.filter(|l| !l.canonical).map(|l| l.n);
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
        respond::text(session, 404, &ctx.request_id, &body, &[]).await;
        return Ok(true);
    };
    ctx.route = Some(route.clone());
    if let Some(access) = &route.access {
        if !access.network_allows(ctx.client_ip) {
            let body = "brace: access denied\n";
            respond::text(session, 403, &ctx.request_id, body, &[]).await;
            return Ok(true);
        }
    }
    if route.cache.is_some() {
        ctx.cache.host = host.to_owned();
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
    let now = crate::clock::now_us();
    let headers = snap.rate_limit_headers;
    match limit::check(&route.limits, ctx.client_ip, &route.name, req, headers, now).await {
        Verdict::Refuse {
            status,
            body,
            headers,
            limit,
        } => {
            if let Some(t) = &ctx.trace {
                t.event("rate_limit", || {
                    vec![
                        opentelemetry::KeyValue::new("brace.rate_limit.decision", "limited"),
                        opentelemetry::KeyValue::new("brace.rate_limit.name", limit.clone()),
                    ]
                });
            }
            respond::text(session, status, &ctx.request_id, &body, &headers[..]).await;
            return Ok(true);
        }
        Verdict::Allow(header) => ctx.rate_limit_header = header,
    }

    if let Some(access) = &route.access {
        let authorization = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION);
        if !access.credentials_allow(authorization).await {
            let challenge = access
                .challenge()
                .filter(|c| c.to_str().is_ok())
                .cloned()
                .unwrap_or(http::HeaderValue::from_static("Basic"));
            let body = "brace: authentication required\n";
            let extra = [(http::header::WWW_AUTHENTICATE, challenge)];
            respond::text(session, 401, &ctx.request_id, body, &extra).await;
            return Ok(true);
        }
        if access.strips_authorization() {
            session
                .req_header_mut()
                .remove_header(&http::header::AUTHORIZATION);
        }
    }

    if length.is_some_and(|l| l.n > snap.client_max_body_size) {
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

/// `request_body_filter`: counts the body against `client_max_body_size` as it streams.
pub fn body_chunk(body: &Option<Bytes>, ctx: &mut Ctx) -> Result<()> {
    if let Some(b) = body {
        ctx.body_bytes += b.len() as u64;
        if ctx.body_bytes > ctx.snapshot.client_max_body_size {
            return Err(http_status(413, "body over client_max_body_size"));
        }
    }
    Ok(())
}

/// Each accepted connection, before anything is read: within `max_connections`, a guard
/// that counts it until it closes; beyond, `None` (closed at once).
pub fn admit_connection(state: &State) -> Option<pingora::apps::ConnectionGuard> {
    let open = &state.metrics.connections_active;
    let max = state.store.load().config.server.max_connections;
    if open.get() >= max as i64 {
        state.metrics.connections_refused_total.inc();
        return None;
    }
    Some(Box::new(GaugeGuard::new(open)))
}

/// A request refused while its header was read (malformed, too large, too slow, CONNECT):
/// counted, logged at debug, written to the access log, under `route="-"`.
pub fn refused_early(state: &State, session: &ServerSession, status: u16, e: &Error) {
    let snap = state.snapshot();
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
        super::access::refused(session, status, reason);
    }
}

// Answers a malformed request with 400 and closes the connection (what follows it on the
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
    respond::text(session, 400, &ctx.request_id, &body, &[]).await;
    Ok(true)
}

/// Applies the `[server]` client timeouts to this request's connection (a reload applies to
/// the next request).
fn client_timeouts(session: &mut Session, server: &crate::config::ServerConfig) {
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
