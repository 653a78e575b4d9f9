//! What goes upstream and what comes back to the client: forwarding headers, `Host` for an
//! HTTP/1.0 request, the target (strip_prefix, the keyed query of a cacheable request), and
//! the response's version, framing and brace's own headers.

use super::ctx::Ctx;
use super::headers;
use crate::cache;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

/// `upstream_request_filter`.
pub fn upstream_request(
    session: &mut Session,
    req: &mut RequestHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    // The attempt this copy is for: a hedge's, while one is being sent.
    match (&mut ctx.upstream.hedge, &mut ctx.upstream.attempt) {
        (Some(h), _) if h.sent.is_none() => h.sent = Some(std::time::Instant::now()),
        (_, super::ctx::AttemptState::Running(a)) => a.sent = Some(std::time::Instant::now()),
        _ => {}
    }
    req.remove_header(&http::header::EXPECT);
    if !req.headers.contains_key(http::header::HOST) {
        // An HTTP/1.0 request may come without Host; HTTP/1.1, which brace speaks
        // upstream, requires one (RFC 9112 §3.2): the target's authority, else the
        // backend's address (nginx sends its upstream's name).
        let host = req.uri.authority().map(|a| a.to_string()).or_else(|| {
            ctx.upstream
                .attempt
                .running()
                .map(|a| a.backend.label.clone())
        });
        if let Some(h) = host {
            req.insert_header(http::header::HOST, h)?;
        }
    }
    // The client-certificate header is brace's to set: whatever a client sent under that
    // name is removed on every listener, then the verified subject is added.
    for t in &ctx.snapshot.config.server.tls {
        req.remove_header(t.client_cert_header.as_str());
    }
    if let Some(crate::tls::ClientCert::Verified { subject, header }) =
        crate::tls::client_cert(session.digest())
    {
        req.insert_header(header.clone(), subject.clone())?;
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
            cache::key::forwarded_query(policy, q)
        }
        _ => None,
    };
    let strip = ctx.route.as_ref().filter(|r| r.strip_prefix);
    if strip.is_some() || query.is_some() {
        let path = req.uri.path();
        let rest = match strip {
            // The prefix is matched on the normalised path, as routing matched it.
            Some(route) => {
                let norm = ctx.norm_path.as_deref().unwrap_or(path);
                // As routing matched it (in any case, with path_case_insensitive).
                route.prefix_len(norm).map_or(norm, |n| &norm[n..])
            }
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
    if let Some(t) = &ctx.trace {
        t.inject(req);
    }
    if let Some(r) = ctx.route.as_ref().filter(|r| !r.request_headers.is_empty()) {
        super::rules::apply(&r.request_headers, ctx, req);
    }
    // The route's mirror gets the request as the first attempt sends it, forwarding headers
    // and all (not a tunnel).
    if ctx.upstream.tries <= 1
        && ctx.upstream.mirror.is_none()
        && !req.headers.contains_key(http::header::UPGRADE)
    {
        if let Some(mut copy) = ctx.route.as_ref().and_then(|r| r.mirror.as_ref()?.sample()) {
            copy.head(req);
            ctx.upstream.mirror = Some(Box::new(copy));
        }
    }

    Ok(())
}

static X_CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("x-cache-status");
static X_CACHE_REASON: http::HeaderName = http::HeaderName::from_static("x-cache-reason");
static X_BRACE_UPSTREAM: http::HeaderName = http::HeaderName::from_static("x-brace-upstream");
static X_BRACE_BACKEND: http::HeaderName = http::HeaderName::from_static("x-brace-backend");

/// `response_filter`.
pub fn response(session: &mut Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
    // Speak brace's own HTTP version to the client, whatever the upstream spoke (an
    // HTTP/1.0 origin must not turn a keep-alive HTTP/1.1 client connection into 1.0).
    match session.req_header().version {
        http::Version::HTTP_11 if resp.version != http::Version::HTTP_11 => {
            resp.set_version(http::Version::HTTP_11);
        }
        // HTTP/1.0 has no chunked coding (RFC 9112 §6.1): a body of unknown length is
        // delimited by closing the connection.
        http::Version::HTTP_10 if resp.headers.contains_key(http::header::TRANSFER_ENCODING) => {
            resp.remove_header(&http::header::TRANSFER_ENCODING);
            session.set_keepalive(None);
        }
        _ => {}
    }
    resp.insert_header_name(&headers::X_REQUEST_ID, ctx.request_id.clone());
    if ctx.upstream.upgraded {
        if let Some(pool) = &ctx.upstream.pool {
            // The client side of the tunnel idles as long as the backend side may.
            session.set_read_timeout(Some(pool.config.upgrade_idle_timeout));
        }
    }
    if let (Some(pool), Some(a)) = (&ctx.upstream.pool, ctx.upstream.attempt.running()) {
        let tls = ctx.connection.as_ref().is_some_and(|c| c.listener.tls);
        if let Some(c) = pool.sticky_cookie(session.req_header(), a.idx, tls) {
            let v = http::HeaderValue::try_from(c)
                .map_err(|e| Error::because(ErrorType::InternalError, "sticky cookie", e))?;
            resp.append_header(http::header::SET_COOKIE, v)?;
        }
    }
    if let Some(cors) = ctx.route.as_ref().and_then(|r| r.cors.as_ref()) {
        cors.respond(session.req_header(), resp);
    }
    if let Some(max_age) = ctx.snapshot.config.server.hsts {
        if ctx.connection.as_ref().is_some_and(|c| c.listener.tls) {
            let v = format!("max-age={}", max_age.as_secs());
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                resp.insert_header_name(&http::header::STRICT_TRANSPORT_SECURITY, v);
            }
        }
    }
    if let Some(r) = ctx
        .route
        .as_ref()
        .filter(|r| !r.response_headers.is_empty())
    {
        super::rules::apply(&r.response_headers, ctx, resp);
    }
    if let Some((_, v)) = &ctx.rate_limit_header {
        resp.insert_header_name(&crate::limit::RATELIMIT, v.clone());
    }
    if let Some((status, reason)) = super::caching::status(session, ctx) {
        if ctx
            .route
            .as_ref()
            .and_then(|r| r.cache.as_ref())
            .is_some_and(|c| c.status_header)
        {
            resp.insert_header_name(
                &X_CACHE_STATUS,
                http::HeaderValue::from_static(status.as_str()),
            );
            if let Some(r) = reason {
                resp.insert_header_name(&X_CACHE_REASON, http::HeaderValue::from_static(r));
            }
        }
    }
    if ctx.snapshot.debug_headers {
        if let (Some(pool), Some(a)) = (&ctx.upstream.pool, ctx.upstream.attempt.running()) {
            let value = |s: &str| {
                http::HeaderValue::from_str(s)
                    .map_err(|e| Error::because(ErrorType::InternalError, "debug header", e))
            };
            resp.insert_header_name(&X_BRACE_UPSTREAM, value(pool.name.as_str())?);
            resp.insert_header_name(&X_BRACE_BACKEND, value(a.backend.label.as_str())?);
        }
    }
    Ok(())
}
