//! Request and response header rules at the proxy boundary: who the client is, the
//! `X-Forwarded-*` and `X-Request-Id` headers, and hop-by-hop fields on responses.
//!
//! Standard hop-by-hop and `Connection`-nominated *request* fields are already removed by
//! pingora's default upstream request policy (which also refuses a `Connection` header that
//! nominates `Host` or `X-Forwarded-*`), so only the response side is handled here.
//!
//! X-Forwarded-* from a peer outside `trusted_proxies` are replaced, not appended to: an
//! upstream must never read a client-chosen address as the client's (Traefik does the same).

use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

/// The client's address: the peer, or when the peer is trusted, the rightmost address in
/// `X-Forwarded-For` that is not itself a trusted proxy (nginx's `real_ip_recursive on`).
pub fn client_ip(peer: IpAddr, req: &RequestHeader, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for value in req.headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(s) = value.to_str() else { return client };
        for part in s.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        return ip;
                    }
                }
                Err(_) => return client,
            }
        }
    }
    client
}

/// A client-sent request id is kept when it is 1..=128 visible characters from a safe set.
pub fn sane_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'+' | b'/' | b'=')
        })
}

/// 128 random bits as 32 hex digits, made without a formatting allocation.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut buf = [0u8; 32];
    for b in buf.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&buf).expect("hex digits are a valid header value")
}

/// Adds `X-Forwarded-For`, `-Proto`, `-Host` and `X-Request-Id` to the upstream request.
pub fn add_forwarding(
    req: &mut RequestHeader,
    peer: Option<IpAddr>,
    peer_trusted: bool,
    tls: bool,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    if let Some(peer) = peer {
        let mut prior = req.headers.get_all("x-forwarded-for").iter().peekable();
        let xff = if peer_trusted && prior.peek().is_some() {
            let mut v = Vec::with_capacity(64);
            for (i, p) in prior.enumerate() {
                if i > 0 {
                    v.extend_from_slice(b", ");
                }
                v.extend_from_slice(p.as_bytes());
            }
            v.extend_from_slice(b", ");
            v.extend_from_slice(peer.to_string().as_bytes());
            HeaderValue::from_bytes(&v).map_err(|e| {
                pingora::Error::because(pingora::ErrorType::InvalidHTTPHeader, "X-Forwarded-For", e)
            })?
        } else {
            HeaderValue::from_str(&peer.to_string()).expect("an IP address is a valid header value")
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    if !(peer_trusted && req.headers.contains_key("x-forwarded-proto")) {
        let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
        req.insert_header("x-forwarded-proto", proto)?;
    }
    if !(peer_trusted && req.headers.contains_key("x-forwarded-host")) {
        let host = match req.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => req.headers.get("host").cloned(),
        };
        match host {
            Some(h) => req.insert_header("x-forwarded-host", h)?,
            None => {
                req.remove_header("x-forwarded-host");
            }
        }
    }
    req.insert_header("x-request-id", request_id.clone())?;
    Ok(())
}

/// Removes hop-by-hop fields from an upstream response (RFC 9110 §7.6.1): those named in
/// `Connection` and the standard ones. Framing (`Transfer-Encoding`, `Content-Length`) is left
/// to pingora, which re-frames the body for the client.
pub fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    let upgrade = resp.status.as_u16() == 101;
    let nominated: Vec<String> = resp
        .headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "close" && t != "keep-alive" && t != "upgrade")
        .filter(|t| t != "content-length" && t != "transfer-encoding")
        .collect();
    for name in nominated {
        resp.remove_header(&name);
    }
    // Look before removing: a removal also rewrites pingora's header-case map.
    for name in ["keep-alive", "proxy-connection", "te", "trailer"] {
        if resp.headers.contains_key(name) {
            resp.remove_header(name);
        }
    }
    if !upgrade {
        for name in ["upgrade", "connection"] {
            if resp.headers.contains_key(name) {
                resp.remove_header(name);
            }
        }
    }
}

/// True when a path has a `.` or `..` segment, plain or percent-encoded. Such a path could be
/// routed by its raw prefix and then resolved by the upstream to somewhere else, so it is
/// refused (400) rather than forwarded.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let s = seg.to_ascii_lowercase();
        let s = s.replace("%2e", ".");
        s == "." || s == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments() {
        assert!(has_dot_segment("/a/../b"));
        assert!(has_dot_segment("/a/%2E%2e/b"));
        assert!(has_dot_segment("/a/./b"));
        assert!(!has_dot_segment("/a/..b/c"));
        assert!(!has_dot_segment("/a.b/c"));
    }

    #[test]
    fn xff_walk() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-forwarded-for", "203.0.113.9, 10.0.0.2")
            .unwrap();
        let trusted = |ip: IpAddr| ip.is_loopback() || ip.to_string().starts_with("10.");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(local, &req, trusted).to_string(), "203.0.113.9");
        let outsider: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(outsider, &req, trusted), outsider);
    }

    #[test]
    fn request_ids() {
        assert!(sane_request_id(b"abc-123"));
        assert!(!sane_request_id(b""));
        assert!(!sane_request_id(b"a b"));
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.to_str().unwrap().bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
