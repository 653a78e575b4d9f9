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
    typed(session, status, request_id, TEXT, body, extra).await
}

const TEXT: &str = "text/plain; charset=utf-8";

/// brace's own answer for `status` (429, 502, 503, 504): the page `pages` has for it (a
/// route's, else the server's), as JSON for a client that asks for JSON rather than HTML,
/// else the plain-text `body`. gRPC calls keep their gRPC status.
pub async fn error(
    session: &mut Session,
    status: u16,
    request_id: &http::HeaderValue,
    body: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
    pages: [Option<&crate::config::pages::ErrorPages>; 2],
) {
    let page = pages.iter().flatten().find_map(|p| p.get(status));
    let Some(page) = page.filter(|_| !is_grpc(session.req_header())) else {
        return text(session, status, request_id, body, extra).await;
    };
    let accept = session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/json") && !accept.contains("text/html") {
        let json = serde_json::json!({
            "status": status,
            "error": body.trim_end(),
            "request_id": request_id.to_str().unwrap_or(""),
        })
        .to_string();
        let t = "application/json";
        return Box::pin(typed(session, status, request_id, t, &json, extra)).await;
    }
    let html = page.html.clone();
    let t = "text/html; charset=utf-8";
    Box::pin(typed(session, status, request_id, t, &html, extra)).await
}

async fn typed(
    session: &mut Session,
    status: u16,
    request_id: &http::HeaderValue,
    content_type: &'static str,
    body: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) {
    if is_grpc(session.req_header()) {
        Box::pin(grpc(session, status, request_id, body, extra)).await;
        return Box::pin(drain_h2(session)).await;
    }
    // Without a case map: brace names these headers itself, so there is no case to keep, and
    // each insert updates one map instead of two.
    let Ok(mut resp) = ResponseHeader::build_no_case(status, Some(6 + extra.len())) else {
        return;
    };
    resp.insert_header_name(
        &http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
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
    Box::pin(write(session, Box::new(resp), body)).await;
    Box::pin(drain_h2(session)).await
}

/// What brace reads and discards of an HTTP/2 request's body after answering it early (a
/// refusal before the body was read), so the client finishes sending and reads the answer
/// instead of a stream reset. HTTP/1.1 is not drained here: its connection closes after an
/// early answer, and a refused request's framing may not be trusted.
const DRAIN_H2: u64 = 1 << 20;

async fn drain_h2(session: &mut Session) {
    if session.req_header().version == http::Version::HTTP_2 {
        drain_body(session, DRAIN_H2).await;
    }
}

/// A bodyless `204` with these fields (a CORS preflight's answer): no `Content-Length`, as
/// RFC 9110 §8.6 asks of a 204.
pub async fn no_content(
    session: &mut Session,
    request_id: &http::HeaderValue,
    fields: Vec<(http::HeaderName, http::HeaderValue)>,
) {
    let Ok(mut resp) = ResponseHeader::build_no_case(204, Some(2 + fields.len())) else {
        return;
    };
    if !request_id.is_empty() {
        resp.insert_header_name(&super::headers::X_REQUEST_ID, request_id.clone());
    }
    for (name, value) in fields {
        let _ = resp.append_header(name, value);
    }
    let _ = session.write_response_header(Box::new(resp), true).await;
    Box::pin(drain_h2(session)).await
}

async fn write(session: &mut Session, resp: Box<ResponseHeader>, body: &str) {
    if session.write_response_header(resp, false).await.is_ok() {
        let _ = session
            .write_response_body(Some(bytes::Bytes::copy_from_slice(body.as_bytes())), true)
            .await;
    }
}

/// A gRPC call: HTTP/2 with a `Content-Type` of `application/grpc` (or `application/grpc+…`).
pub fn is_grpc(req: &pingora::http::RequestHeader) -> bool {
    req.version == http::Version::HTTP_2
        && req
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status for an answer brace makes, by gRPC's HTTP-to-gRPC status mapping, except
/// 413 (a message over `client_max_body_size`), which is `RESOURCE_EXHAUSTED` as gRPC's own
/// message-size limit is.
pub fn grpc_status(status: u16) -> u8 {
    match status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        413 => 8,                    // RESOURCE_EXHAUSTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// brace's answer to a gRPC call: `:status 200` and `content-type: application/grpc`, no
/// message, and trailers with `grpc-status` and `grpc-message`, which is what a gRPC client
/// reads as a call's failure. (pingora's session sends a header block without ending the
/// stream, so this is not the one-block trailers-only form; clients read both.)
async fn grpc(
    session: &mut Session,
    status: u16,
    request_id: &http::HeaderValue,
    body: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) {
    let Ok(mut resp) = ResponseHeader::build_no_case(200, Some(3 + extra.len())) else {
        return;
    };
    resp.insert_header_name(
        &http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    if !request_id.is_empty() {
        resp.insert_header_name(&super::headers::X_REQUEST_ID, request_id.clone());
    }
    for (name, value) in extra {
        resp.insert_header_name(name, value.clone());
    }
    let mut trailers = http::HeaderMap::with_capacity(2);
    let code = http::HeaderValue::from(u16::from(grpc_status(status)));
    trailers.insert(&GRPC_STATUS, code);
    // grpc-message is percent-encoded (gRPC's HTTP/2 protocol description).
    let message = percent_encoding::utf8_percent_encode(body.trim_end(), GRPC_MESSAGE).to_string();
    if let Ok(v) = http::HeaderValue::from_str(&message) {
        trailers.insert(&GRPC_MESSAGE_NAME, v);
    }
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_ok()
    {
        let _ = session
            .downstream_session
            .write_response_trailers(trailers)
            .await;
    }
}

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
static GRPC_MESSAGE_NAME: http::HeaderName = http::HeaderName::from_static("grpc-message");
/// What gRPC's `grpc-message` leaves unencoded: printable ASCII except `%`.
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// After an early answer to a request whose body is still coming (413), reads and discards
/// up to `max` more bytes of it for at most 5 s, so the
/// client can finish sending and read the answer: over HTTP/1.1 a close while it still sends
/// can turn into a reset that destroys the answer (nginx's `lingering_close`), and over
/// HTTP/2 clients still uploading report the stream reset RFC 9113 §8.1 allows as an error.
/// Beyond `max`, the connection (HTTP/1.1) or stream (HTTP/2) is closed as before.
pub async fn drain_body(session: &mut Session, max: u64) {
    let drain = async {
        let mut read = 0u64;
        while read <= max && !session.downstream_session.is_body_done() {
            match session.downstream_session.read_request_body().await {
                Ok(Some(chunk)) => read += chunk.len() as u64,
                _ => return,
            }
        }
    };
    // A client that stalls instead is not waited for (HTTP/2 body reads have no timeout).
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// The longest brace spends draining a refused request's body.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

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
