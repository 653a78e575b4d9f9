//! The access log's records: one per request, built from what the request's phases learned.
//! `logging` owns where they go and how they are written.

use super::ctx::Ctx;
use crate::logging;
use crate::runtime::snapshot::REFUSED;
use pingora::proxy::Session;

/// The access record of a request refused before routing (its header was malformed, too
/// large or too slow, or its method CONNECT); `status` 0 when nothing could be sent.
pub fn refused(session: &pingora::protocols::http::ServerSession, status: u16, reason: &str) {
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or_else(|| "-".to_string(), |a| a.ip().to_canonical().to_string());
    // Only a CONNECT refusal has a parsed request to name.
    let (method, path) = if status == 405 {
        let req = session.req_header();
        (req.method.as_str(), req.uri.to_string())
    } else {
        ("-", "-".to_string())
    };
    tracing::info!(
        target: logging::ACCESS_TARGET,
        client = %client,
        method = method,
        path = %path,
        status = status,
        route = REFUSED,
        refused = reason,
    );
}

/// Emits one access record.
pub fn access(session: &Session, ctx: &Ctx, status: u16) {
    let req = session.req_header();
    // The host as brace derived it (`proxy::host`): the one routing and the cache saw.
    let host = match ctx.host.as_str() {
        "" => "-",
        h => h,
    };
    let path = req.uri.path_and_query().map_or("-", |p| p.as_str());
    let client = ctx
        .client_ip
        .map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let trace_id = ctx.trace.as_ref().map(|t| t.trace_id());
    tracing::info!(
        target: logging::ACCESS_TARGET,
        request_id = ctx.request_id_str(),
        trace_id = trace_id.as_deref(),
        client = %client,
        method = %req.method,
        host = %host,
        path = %path,
        status = status,
        grpc_status = ctx.upstream.grpc_status,
        route = ctx.route.as_ref().map_or("-", |r| r.name.as_str()),
        upstream = ctx.upstream.pool.as_ref().map_or("-", |p| p.name.as_str()),
        backend = %ctx.upstream.tried.last().map_or_else(|| "-".to_string(), |a| a.to_string()),
        attempts = ctx.upstream.tries,
        shed = ctx.upstream.shed.map(|r| r.as_str()),
        duration_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
        bytes_sent = session.body_bytes_sent(),
        bytes_received = ctx.body_bytes,
    );
}
