//! Synthetic responses: brace's own 4xx/5xx with a short plain-text body, and the status an
//! error maps to.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// Writes a complete plain-text response. Errors writing to a gone client are ignored: there
/// is nobody left to tell.
pub async fn text(
    session: &mut Session,
    status: u16,
    request_id: &http::HeaderValue,
    body: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) {
    // Without a case map: brace names these headers itself, so there is no case to keep, and
    // each insert updates one map instead of two.
    let Ok(mut resp) = ResponseHeader::build_no_case(status, Some(6 + extra.len())) else {
        return;
    };
    resp.insert_header_name(
        &http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.insert_header_name(
        &http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    if !request_id.is_empty() {
        resp.insert_header_name(&super::headers::X_REQUEST_ID, request_id.clone());
    }
    for (name, value) in extra {
        resp.insert_header_name(name, value.clone());
    }
    let req = session.req_header();
    let has_body = req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if status >= 400 && has_body {
        // The request body may be unread; don't risk parsing it as the next request.
        session.set_keepalive(None);
    }
    // Awaited through a box: the hooks that may answer here (`request_filter`,
    // `proxy_upstream_filter`) have their futures boxed by `async_trait` on every request,
    // and holding this write inline made them 1.1-1.4 KiB (a slow allocation and a copy per
    // request), for an answer most requests never give.
    Box::pin(write(session, Box::new(resp), body)).await
}

async fn write(session: &mut Session, resp: Box<ResponseHeader>, body: &str) {
    if session.write_response_header(resp, false).await.is_ok() {
        let _ = session
            .write_response_body(Some(bytes::Bytes::copy_from_slice(body.as_bytes())), true)
            .await;
    }
}

/// The status brace answers with for an error; 0 when the client is gone.
pub fn status_for(e: &Error) -> u16 {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(code) => *code,
        _ if e.esource() == &ErrorSource::Downstream => match e.etype() {
            WriteError | ReadError | ConnectionClosed => 0,
            ReadTimedout => 408,
            _ => 400,
        },
        ConnectTimedout | ReadTimedout | WriteTimedout => 504,
        _ if e.esource() == &ErrorSource::Upstream => 502,
        ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure
        | TLSHandshakeTimedout => 502,
        _ => 500,
    }
}

/// The short body for a brace-made error response.
pub fn message(status: u16, upstream: Option<&str>) -> String {
    let up = upstream.unwrap_or("-");
    match status {
        400 => "brace: bad request\n".into(),
        408 => "brace: the request was not received in time\n".into(),
        413 => "brace: request body too large\n".into(),
        502 => format!("brace: could not get a valid response from upstream \"{up}\"\n"),
        503 => format!("brace: no backend available for upstream \"{up}\"\n"),
        504 => format!("brace: upstream \"{up}\" did not answer in time\n"),
        _ => format!("brace: error {status}\n"),
    }
}
