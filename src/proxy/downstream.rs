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

/// What a step of [`admit_request`] decided: go on, or the request is answered.
#[derive(PartialEq)]
enum Flow {
    Continue,
    Answered,
}

/// `request_filter`: `Ok(true)` when brace answered (refused, 404, 403, 429, 401, 413).
/// The steps, in order; each answers the request or lets the next one look at it.
pub async fn admit_request(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    macro_rules! step {
        ($e:expr) => {
            if $e == Flow::Answered {
                return Ok(true);
            }
        };
    }
    let listener = identify(session, ctx);
    step!(client_certificate(session, ctx).await);
    step!(host(session, ctx, listener).await);
    step!(https_redirect(session, ctx, listener).await);
    let Ok(length) = target_and_route(session, ctx).await? else {
        return Ok(true);
    };
    step!(rate_limits(session, ctx).await);
    step!(cors_preflight(session, ctx).await);
    step!(credentials(session, ctx).await);
    declared_size(session, ctx, length).await?;
    Ok(false)
}

/// The connection (its client, listener and TLS, once per connection), this request's
/// client timeouts, its id, and the client's address (after trusted proxies). Returns the
/// listener the request came in on.
fn identify(session: &mut Session, ctx: &mut Ctx) -> crate::host::Listener {
    let conn = ctx.connection.get_or_insert_with(|| {
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
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        Arc::new(Conn::new(peer, port, tls))
    });
    let (peer, listener) = (conn.peer, conn.listener);
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
    listener
}

/// A TLS listener that asks for client certificates: a missing or untrusted one is 400.
async fn client_certificate(session: &mut Session, ctx: &mut Ctx) -> Flow {
    match crate::tls::client_cert(session.digest()) {
        Some(crate::tls::ClientCert::Missing) => {
            refuse(session, ctx, "client certificate required").await
        }
        Some(crate::tls::ClientCert::Untrusted(why)) => {
            tracing::debug!(client = ?ctx.client_ip, "client certificate not trusted: {why}");
            refuse(session, ctx, "client certificate not trusted").await
        }
        _ => Flow::Continue,
    }
}

/// The request's host, derived once (`host::of`), and at most one `Authorization`.
async fn host(session: &mut Session, ctx: &mut Ctx, listener: crate::host::Listener) -> Flow {
    let req = session.req_header();
    ctx.host = match crate::host::of(req, listener) {
        Ok(h) => h,
        Err(why) => return refuse(session, ctx, why).await,
    };
    // Two credentials are one too many: a check of the first and a backend reading the
    // last would disagree on who is asking (nginx refuses them too).
    let mut authorization = req.headers.get_all(http::header::AUTHORIZATION).iter();
    if authorization.next().is_some() && authorization.next().is_some() {
        return refuse(session, ctx, "several Authorization headers").await;
    }
    Flow::Continue
}

/// `https_redirect`: a plain-HTTP request gets `308` to the same host and target on the first
/// TLS listener, except ACME's HTTP-01 challenges (`/.well-known/acme-challenge/`), which must
/// be answered over plain HTTP. The host is the request's, already checked and normalised.
async fn https_redirect(session: &mut Session, ctx: &mut Ctx, l: crate::host::Listener) -> Flow {
    let server = &ctx.snapshot.config.server;
    if !server.https_redirect || l.tls {
        return Flow::Continue;
    }
    let target = session.req_header().raw_path();
    if target.starts_with(b"/.well-known/acme-challenge/") {
        return Flow::Continue;
    }
    let port = server.tls.first().map_or(443, |t| t.listen.port());
    let mut to = format!("https://{}", ctx.host.name());
    if port != 443 {
        to.push_str(&format!(":{port}"));
    }
    to.push_str(&String::from_utf8_lossy(target));
    let Ok(location) = http::HeaderValue::from_str(&to) else {
        return refuse(session, ctx, "a target that cannot be redirected").await;
    };
    let extra = [(http::header::LOCATION, location)];
    respond::text(session, 308, &ctx.request_id, &format!("{to}\n"), &extra).await;
    Flow::Answered
}

/// The target (normalised path) and declared length, the route (404), path parameters, the
/// route's networks (403), and the upstream's copy of the target and length. `Ok(Err(_))`:
/// answered.
async fn target_and_route(
    session: &mut Session,
    ctx: &mut Ctx,
) -> Result<Result<Option<request::Length>, Flow>> {
    let snap = ctx.snapshot.clone();
    let req = session.req_header();
    let mode = snap.config.server.path_normalization;
    let target = match request::target(&req.method, req.raw_path(), mode) {
        Ok(t) => t,
        Err(why) => return Ok(Err(refuse(session, ctx, why).await)),
    };
    let length = match request::content_length(&req.headers) {
        Ok(n) => n,
        Err(why) => return Ok(Err(refuse(session, ctx, why).await)),
    };
    // `OPTIONS *` asks about the server as a whole: it takes the route of `/`.
    let route_path = if target.path == "*" {
        "/"
    } else {
        &target.path
    };
    let Some(route) = snap.router.find(ctx.host.name(), route_path) else {
        let (host, path) = (ctx.host.as_str(), &target.path);
        let body = format!("brace: no route for host \"{host}\" and path \"{path}\"\n");
        respond::text(session, 404, &ctx.request_id, &body, &[]).await;
        return Ok(Err(Flow::Answered));
    };
    ctx.route = Some(route.clone());
    if route.refuse_path_parameters && target.path.contains(';') {
        let why = "path parameter (;) on a route that refuses them";
        return Ok(Err(refuse(session, ctx, why).await));
    }
    // Policies read the normalised path; in `forward_as_is` the upstream's copy keeps the
    // client's bytes, so the normalised one is kept here when they differ.
    if !target.rewrite && target.path != req.uri.path() && target.path != "*" {
        ctx.norm_path = Some(target.path.as_ref().into());
    }
    if let Some(access) = &route.access {
        if !access.network_allows(ctx.client_ip) {
            let body = "brace: access denied\n";
            respond::text(session, 403, &ctx.request_id, body, &[]).await;
            return Ok(Err(Flow::Answered));
        }
    }
    if maintenance(route, ctx.client_ip) {
        let body = format!(
            "brace: {} is down for maintenance; try again later\n",
            route.name
        );
        let extra = [(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("60"),
        )];
        let pages = [
            Some(&route.error_pages),
            Some(&snap.config.server.error_pages),
        ];
        respond::error(session, 503, &ctx.request_id, &body, &extra, pages).await;
        return Ok(Err(Flow::Answered));
    }
    if let Some(uri) = target.rewrite.then(|| target.origin_form()) {
        session
            .req_header_mut()
            .set_raw_path(uri.as_bytes())
            .map_err(|e| e.into_down())?;
    }
    if let Some(n) = length.filter(|l| !l.canonical).map(|l| l.n) {
        // One canonical value upstream, whatever spelling the client used.
        session
            .req_header_mut()
            .insert_header(http::header::CONTENT_LENGTH, http::HeaderValue::from(n))?;
    }
    Ok(Ok(length))
}

/// True when the route is in maintenance and the client is not one of its testers.
fn maintenance(route: &crate::route::Route, client: Option<std::net::IpAddr>) -> bool {
    route.maintenance.load(std::sync::atomic::Ordering::Relaxed)
        && !client.is_some_and(|ip| route.maintenance_allow.iter().any(|n| n.contains(&ip)))
}

/// The route's rate limits, in its order; the first to refuse answers (429 or its status).
async fn rate_limits(session: &mut Session, ctx: &mut Ctx) -> Flow {
    let Some(route) = ctx.route.as_deref() else {
        return Flow::Continue;
    };
    let req = session.req_header();
    let now = crate::clock::now_us();
    let facts = limit::Facts {
        client_ip: ctx.client_ip,
        route: &route.name,
        host: ctx.host.as_str(),
        path: ctx.norm_path.as_deref().unwrap_or(req.uri.path()),
        req,
    };
    let headers = ctx.snapshot.rate_limit_headers;
    match limit::check(&route.limits, &facts, headers, now).await {
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
            let pages = [
                Some(&route.error_pages),
                Some(&ctx.snapshot.config.server.error_pages),
            ];
            respond::error(session, status, &ctx.request_id, &body, &headers[..], pages).await;
            Flow::Answered
        }
        Verdict::Allow(header) => {
            ctx.rate_limit_header = header;
            Flow::Continue
        }
    }
}

/// A CORS preflight on a route with `[route.cors]`: answered here, after the network rules and
/// the limits and before `basic_auth` (a browser's preflight never carries credentials).
async fn cors_preflight(session: &mut Session, ctx: &mut Ctx) -> Flow {
    let Some(cors) = ctx.route.as_ref().and_then(|r| r.cors.as_ref()) else {
        return Flow::Continue;
    };
    let route = ctx.route.as_ref().map_or("", |r| r.name.as_str());
    let (result, answer) = match cors.preflight(session.req_header()) {
        None => return Flow::Continue,
        Some(crate::cors::Preflight::Allowed(fields)) => ("allowed", Ok(fields)),
        Some(crate::cors::Preflight::Refused(why)) => ("refused", Err(why)),
    };
    ctx.snapshot
        .metrics
        .cors_preflights_total
        .with_label_values(&[route, result])
        .inc();
    match answer {
        Ok(fields) => respond::no_content(session, &ctx.request_id, fields).await,
        Err(why) => {
            tracing::debug!(route, "CORS preflight refused: {why}");
            let body = format!("brace: CORS preflight refused: {why}\n");
            respond::text(session, 403, &ctx.request_id, &body, &[]).await;
        }
    }
    Flow::Answered
}

/// `basic_auth`: checked after the limits, which keep guessing cheap (401, or 429 while the
/// client's own checks queue); `Authorization` stripped unless forwarded.
async fn credentials(session: &mut Session, ctx: &mut Ctx) -> Flow {
    let Some(access) = ctx.route.as_ref().and_then(|r| r.access.clone()) else {
        return Flow::Continue;
    };
    let authorization = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION);
    let credentials = access.credentials(authorization, ctx.client_ip).await;
    if credentials == crate::access::Credentials::Throttled {
        // The client's own guesses are queued: it waits behind itself, not others.
        let body = "brace: too many password checks waiting from this address\n";
        let extra = [(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        )];
        respond::text(session, 429, &ctx.request_id, body, &extra).await;
        return Flow::Answered;
    }
    if credentials == crate::access::Credentials::Refused {
        let challenge = access
            .challenge()
            .filter(|c| c.to_str().is_ok())
            .cloned()
            .unwrap_or(http::HeaderValue::from_static("Basic"));
        let body = "brace: authentication required\n";
        let extra = [(http::header::WWW_AUTHENTICATE, challenge)];
        respond::text(session, 401, &ctx.request_id, body, &extra).await;
        return Flow::Answered;
    }
    if access.strips_authorization() {
        session
            .req_header_mut()
            .remove_header(&http::header::AUTHORIZATION);
    }
    Flow::Continue
}

/// A declared length over `client_max_body_size` is 413 before any body is read; an accepted
/// `Expect: 100-continue` is answered now.
async fn declared_size(
    session: &mut Session,
    ctx: &Ctx,
    length: Option<request::Length>,
) -> Result<()> {
    if length.is_some_and(|l| l.n > ctx.snapshot.client_max_body_size) {
        return Err(http_status(413, "content-length over client_max_body_size"));
    }
    if request::expects_continue(session.req_header()) {
        // Accepted: ask for the body now rather than let the client wait out its own
        // timer (curl's is 1 s). `Expect` is not forwarded, so the backend sends no second
        // 100 (as nginx does).
        session.write_continue_response().await?;
    }
    Ok(())
}

/// `request_body_filter`: counts the body against `client_max_body_size` as it streams.
pub fn body_chunk(body: &Option<Bytes>, ctx: &mut Ctx) -> Result<()> {
    if let Some(b) = body {
        ctx.body_bytes += b.len() as u64;
        if let (Some(copy), Some(m)) = (
            &mut ctx.upstream.mirror,
            ctx.route.as_ref().and_then(|r| r.mirror.as_ref()),
        ) {
            copy.chunk(b, m.config.max_body);
        }
        if ctx.body_bytes > ctx.snapshot.client_max_body_size {
            // The client's doing: pingora's HTTP/2 exchange ends at a downstream error, where
            // one of unknown source only stopped reading the body and waited for the backend.
            return Err(http_status(413, "body over client_max_body_size").into_down());
        }
    }
    Ok(())
}

/// Each accepted connection, before anything is read: within `max_connections`, a guard
/// that counts it until it closes. At the cap, the connection idle longest is asked to close
/// to make room (counted); with none idle, `None` (closed at once, counted).
pub fn admit_connection(state: &State) -> Option<pingora::apps::ConnectionGuard> {
    let open = &state.metrics.connections_active;
    let max = state.store.load().config.server.max_connections;
    if open.get() >= max as i64 {
        if !state.connections.close_oldest_idle() {
            state.metrics.connections_refused_total.inc();
            return None;
        }
        state.metrics.connections_idle_closed_total.inc();
    }
    let idle = Arc::new(pingora::apps::IdleConnection::default());
    let entry = state.connections.add(idle.clone());
    Some(pingora::apps::ConnectionGuard::new((GaugeGuard::new(open), entry)).with_idle(idle))
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
async fn refuse(session: &mut Session, ctx: &mut Ctx, why: &'static str) -> Flow {
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
    Flow::Answered
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
