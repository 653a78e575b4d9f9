//! Request and response header rules at the proxy boundary: who the client is, the
//! `X-Forwarded-*` and `X-Request-Id` headers, and hop-by-hop fields on responses.
//!
//! Standard hop-by-hop and `Connection`-nominated *request* fields are already removed by
//! pingora's default upstream request policy (which also refuses a `Connection` header that
//! nominates `Host` or `X-Forwarded-*`), so only the response side is handled here.
//!
//! X-Forwarded-* from a peer outside `trusted_proxies` are replaced, not appended to: an
//! upstream must never read a client-chosen address as the client's (Traefik does the same).

use http::header::{CONNECTION, HOST};
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

// Lookups and inserts by a ready `HeaderName` hash it and no more; by `&str` they parse the
// name first (and an insert of a non-standard name allocates it), so the headers brace sets
// on every request are named by these constants (`insert_header_name`, pingora-http patch 12).
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static BRACE_CACHE_CONTROL: HeaderName = HeaderName::from_static("brace-cache-control");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
/// Forwarding headers only a trusted hop may set and brace does not set itself.
static UNTRUSTED_ONLY_REMOVED: [&HeaderName; 3] =
    [&FORWARDED, &X_FORWARDED_PREFIX, &X_FORWARDED_SERVER];

/// The client's address: the peer, or when the peer is trusted, the rightmost address in
/// `X-Forwarded-For` that is not itself a trusted proxy (nginx's `real_ip_recursive on`).
pub fn client_ip(peer: IpAddr, req: &RequestHeader, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for value in req.headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(s) = value.to_str() else { return client };
        for part in s.rsplit(',') {
            match part.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
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

/// What the forwarding headers are made from.
pub struct Forwarding<'a> {
    /// The client connection's address as a header value.
    pub peer: Option<&'a HeaderValue>,
    /// The port the client connected to, as a header value.
    pub port: Option<&'a HeaderValue>,
    /// The client's address (the peer, or from a trusted peer's `X-Forwarded-For`) as a
    /// header value.
    pub client_ip: Option<HeaderValue>,
    pub peer_trusted: bool,
    pub tls: bool,
    pub trust_forwarded_host: bool,
    pub request_id: &'a HeaderValue,
}

/// Sets `X-Forwarded-For`, `-Proto`, `-Host`, `-Port`, `X-Real-IP` and `X-Request-Id` on the
/// upstream request. From a peer outside `trusted_proxies`, every forwarding header the client
/// sent is replaced or removed (`Forwarded`, `X-Forwarded-Prefix`, `X-Forwarded-Server` have
/// no value brace could vouch for, so they go); from a trusted peer they are kept, except
/// `X-Forwarded-Host`, which is kept only with `trust_forwarded_host` (it is not part of the
/// cache key otherwise, so an upstream that reflects it could poison a cached page), and
/// `X-Real-IP`, which is always brace's own client address.
pub fn add_forwarding(req: &mut RequestHeader, f: &Forwarding) -> pingora::Result<()> {
    let came = Present::find(req);
    if let Some(peer) = f.peer {
        let xff = if f.peer_trusted && came.xff {
            let mut v = Vec::with_capacity(64);
            for p in req.headers.get_all(&X_FORWARDED_FOR) {
                v.extend_from_slice(p.as_bytes());
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(peer.as_bytes());
            HeaderValue::from_bytes(&v).map_err(|e| {
                pingora::Error::because(pingora::ErrorType::InvalidHTTPHeader, "X-Forwarded-For", e)
            })?
        } else {
            peer.clone()
        };
        req.insert_header_name(&X_FORWARDED_FOR, xff);
    }
    if !f.peer_trusted && came.untrusted_only {
        // Look before removing: a removal also rewrites pingora's header-case map.
        for name in UNTRUSTED_ONLY_REMOVED {
            if req.headers.contains_key(name) {
                req.remove_header(name);
            }
        }
    }
    if let Some(ip) = &f.client_ip {
        req.insert_header_name(&X_REAL_IP, ip.clone());
    } else if came.real_ip {
        req.remove_header(&X_REAL_IP);
    }
    if !(f.peer_trusted && came.proto) {
        let proto = HeaderValue::from_static(if f.tls { "https" } else { "http" });
        req.insert_header_name(&X_FORWARDED_PROTO, proto);
    }
    if !(f.peer_trusted && came.port) {
        match f.port {
            Some(p) => req.insert_header_name(&X_FORWARDED_PORT, p.clone()),
            None if came.port => {
                req.remove_header(&X_FORWARDED_PORT);
            }
            None => {}
        }
    }
    if !(f.peer_trusted && f.trust_forwarded_host && came.host) {
        match req.headers.get(HOST).cloned() {
            Some(h) => req.insert_header_name(&X_FORWARDED_HOST, h),
            None if came.host => {
                req.remove_header(&X_FORWARDED_HOST);
            }
            None => {}
        }
    }
    req.insert_header_name(&X_REQUEST_ID, f.request_id.clone());
    Ok(())
}

/// The forwarding fields a request came with, found in one pass over its names: a lookup
/// hashes the whole of a long name, one per field, and most requests carry none of them.
#[derive(Debug, Default, PartialEq)]
struct Present {
    xff: bool,
    proto: bool,
    port: bool,
    host: bool,
    real_ip: bool,
    /// Any of `UNTRUSTED_ONLY_REMOVED`.
    untrusted_only: bool,
}

impl Present {
    fn find(req: &RequestHeader) -> Present {
        let mut came = Present::default();
        // Header names are lower case; the unit test checks these spellings against the names.
        for name in req.headers.keys() {
            match name.as_str() {
                "x-forwarded-for" => came.xff = true,
                "x-forwarded-proto" => came.proto = true,
                "x-forwarded-port" => came.port = true,
                "x-forwarded-host" => came.host = true,
                "x-real-ip" => came.real_ip = true,
                "forwarded" | "x-forwarded-prefix" | "x-forwarded-server" => {
                    came.untrusted_only = true
                }
                _ => {}
            }
        }
        came
    }
}

/// Removes hop-by-hop fields from an upstream response (RFC 9110 §7.6.1): those named in
/// `Connection` and the standard ones. Framing (`Transfer-Encoding`, `Content-Length`) is left
/// to pingora, which re-frames the body for the client.
pub fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    let upgrade = resp.status.as_u16() == 101;
    // One pass over the names present (most responses carry none of these), then removal of
    // what was found: a lookup per standard name would hash each of them on every response.
    let mut found: smallvec::SmallVec<[http::HeaderName; 4]> = smallvec::SmallVec::new();
    let mut has_connection = false;
    for name in resp.headers.keys() {
        match name.as_str() {
            "keep-alive" | "proxy-connection" | "te" | "trailer" => found.push(name.clone()),
            "upgrade" if !upgrade => found.push(name.clone()),
            "connection" => {
                has_connection = true;
                if !upgrade {
                    found.push(name.clone());
                }
            }
            _ => {}
        }
    }
    if has_connection {
        // Compared without copying (`HeaderName::from_bytes` lowercases what it keeps): the
        // usual `Connection: keep-alive` allocates nothing.
        const NOT_NOMINATIONS: [&[u8]; 5] = [
            b"close",
            b"keep-alive",
            b"upgrade",
            b"content-length",
            b"transfer-encoding",
        ];
        let nominated = resp
            .headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty() && !NOT_NOMINATIONS.iter().any(|n| t.eq_ignore_ascii_case(n)))
            .filter_map(|t| http::HeaderName::from_bytes(t).ok());
        found.extend(nominated);
    }
    for name in &found {
        resp.remove_header(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_fields_are_found_under_the_names_brace_sets() {
        let mut req = RequestHeader::build_no_case("GET", b"/", None).unwrap();
        assert_eq!(Present::find(&req), Present::default());
        let v = HeaderValue::from_static("v");
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_PORT,
            &X_FORWARDED_HOST,
            &X_REAL_IP,
        ] {
            req.append_header(name.clone(), v.clone()).unwrap();
        }
        let all = Present {
            xff: true,
            proto: true,
            port: true,
            host: true,
            real_ip: true,
            untrusted_only: false,
        };
        assert_eq!(Present::find(&req), all);
        for name in UNTRUSTED_ONLY_REMOVED {
            let mut one = RequestHeader::build_no_case("GET", b"/", None).unwrap();
            // A client's spelling is its own; the parsed name is lower case.
            one.append_header(name.as_str().to_ascii_uppercase(), v.clone())
                .unwrap();
            assert!(Present::find(&one).untrusted_only, "{name}");
        }
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
    fn response_hop_by_hop_fields_go_in_any_spelling_and_framing_stays() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Connection", "KEEP-ALIVE, X-Internal ,, Content-Length")
            .unwrap();
        resp.append_header("connection", "x-other\t").unwrap();
        resp.append_header("X-Internal", "secret").unwrap();
        resp.append_header("X-Other", "secret").unwrap();
        resp.append_header("Keep-Alive", "timeout=5").unwrap();
        resp.append_header("Content-Length", "5").unwrap();
        resp.append_header("X-Kept", "yes").unwrap();
        strip_response_hop_by_hop(&mut resp);
        let mut left: Vec<&str> = resp.headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "x-kept"]);
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
