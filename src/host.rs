//! The request's host, derived once and used everywhere a host matters: routing, access
//! control, rate-limit keys, the cache key and purges, and the access log.
//!
//! Where it comes from: over HTTP/2 the `:authority` pseudo-header (RFC 9113 §8.3.1), with a
//! `Host` field allowed beside it only when it names the same host; over HTTP/1.x the single
//! `Host` field (pingora has already refused an absolute-form target whose authority
//! disagrees with it), else an absolute-form target's authority.
//!
//! What is accepted: `host[:port]` where host is a name of letters, digits, `-` and `_` in
//! non-empty dot-separated labels (one trailing dot allowed), an IPv4 address, or an IPv6
//! literal in brackets; port is at most five digits up to 65535 (or empty). Anything else
//! (`a.test:80:80`, `a.test..`, `user@a.test`, spaces) is refused with `400`, so no spelling
//! can pass a host rule that a backend would read as another host.
//!
//! How it is normalised: lower case, one trailing dot removed, and a port removed when it is
//! empty, the scheme's default (80, 443) or the listener's own; a kept port loses leading
//! zeros. `Shop.Test.:0080` on port 80 is `shop.test`.

use pingora::http::RequestHeader;

/// Why a host is refused (the `400`'s reason, logged and counted).
pub type Refusal = &'static str;

/// A request's normalised host: `name` or `name:port`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    text: String,
    /// Length of the name (the text before `:port`).
    name_len: usize,
}

impl Host {
    /// `name[:port]`, as the cache key, the access log and purges use it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The name without its port, as routing matches it.
    pub fn name(&self) -> &str {
        &self.text[..self.name_len]
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// The connection facts normalisation needs.
#[derive(Clone, Copy, Debug)]
pub struct Listener {
    pub tls: bool,
    /// The local port the client connected to.
    pub port: Option<u16>,
}

/// The request's host (see the module doc). An empty host is `Ok` only where HTTP allows
/// none: an HTTP/1.0 request without `Host`, an HTTP/2 request without `:authority`.
pub fn of(req: &RequestHeader, at: Listener) -> Result<Host, Refusal> {
    let mut fields = req.headers.get_all(http::header::HOST).iter();
    let field = match (fields.next(), fields.next()) {
        (_, Some(_)) => return Err("several Host headers"),
        (f, None) => f
            .map(|v| v.to_str().map_err(|_| "invalid Host"))
            .transpose()?,
    };
    if req.version == http::Version::HTTP_2 {
        return match (req.uri.authority(), field) {
            (Some(a), f) => {
                let host = normalise(a.as_str(), at).ok_or("invalid authority")?;
                match f.map(|f| normalise(f, at)) {
                    Some(Some(h)) if h == host => Ok(host),
                    Some(_) => Err("Host differs from :authority"),
                    None => Ok(host),
                }
            }
            (None, Some(f)) => normalise(f, at).ok_or("invalid Host"),
            (None, None) => Ok(Host::default()),
        };
    }
    if let Some(f) = field {
        return normalise(f, at).ok_or("invalid Host");
    }
    let raw = req.raw_path();
    let authority = pingora::protocols::http::authority::raw_target_authority(raw);
    if let Some(a) = authority.authority() {
        let a = std::str::from_utf8(a).map_err(|_| "invalid authority")?;
        return normalise(a, at).ok_or("invalid authority");
    }
    if req.version == http::Version::HTTP_11 {
        Err("HTTP/1.1 request without Host")
    } else {
        Ok(Host::default())
    }
}

/// `raw` as `host[:port]`, normalised; `None` when it is not one.
pub fn normalise(raw: &str, at: Listener) -> Option<Host> {
    let (name, port) = split(raw)?;
    let name = name.strip_suffix('.').unwrap_or(name);
    if !valid_name(name) {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            let n: u16 = (p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()?;
            let default = if at.tls { 443 } else { 80 };
            (n != default && Some(n) != at.port).then_some(n)
        }
    };
    let mut text = String::with_capacity(name.len() + 6);
    text.push_str(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        text.make_ascii_lowercase();
    }
    let name_len = text.len();
    if let Some(p) = port {
        use std::fmt::Write as _;
        let _ = write!(text, ":{p}");
    }
    Some(Host { text, name_len })
}

/// A purge's `scheme://host[:port]/path` with its scheme and host normalised as a request's
/// are for the cache key, a port being removed when it is the scheme's default or any of
/// `listener_ports`. A URL whose host is not `host[:port]` is returned as given (it names
/// nothing stored).
pub fn purge_url(url: &str, listener_ports: &[u16]) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let tls = scheme == "https";
    let host = match split(authority).and_then(|(_, p)| p) {
        Some(p) if p.parse::<u16>().is_ok_and(|n| listener_ports.contains(&n)) => {
            let port = p.parse().ok();
            normalise(authority, Listener { tls, port })
        }
        _ => normalise(authority, Listener { tls, port: None }),
    };
    match host {
        Some(h) => format!("{scheme}://{}{path}", h.as_str()),
        None => url.to_owned(),
    }
}

/// Splits `host[:port]` at the port's colon (after an IPv6 literal's `]`).
fn split(raw: &str) -> Option<(&str, Option<&str>)> {
    if raw.starts_with('[') {
        let end = raw.find(']')?;
        let (lit, rest) = raw.split_at(end + 1);
        let inner = &lit[1..end];
        if inner.is_empty() || inner.parse::<std::net::Ipv6Addr>().is_err() {
            return None;
        }
        return match rest {
            "" => Some((lit, None)),
            r => Some((lit, Some(r.strip_prefix(':')?))),
        };
    }
    Some(match raw.bytes().position(|b| b == b':') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    })
}

/// A reg-name or IPv4 address in non-empty labels, or a bracketed IPv6 literal (checked by
/// `split`). One pass over the bytes: this runs on every request.
fn valid_name(name: &str) -> bool {
    if name.starts_with('[') {
        return true;
    }
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut label = 0usize;
    for &b in name.as_bytes() {
        if b == b'.' {
            if label == 0 {
                return false;
            }
            label = 0;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label += 1;
            if label > 63 {
                return false;
            }
        } else {
            return false;
        }
    }
    label > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Listener = Listener {
        tls: false,
        port: Some(8080),
    };

    fn norm(raw: &str) -> Option<String> {
        normalise(raw, PLAIN).map(|h| h.as_str().to_owned())
    }

    #[test]
    fn spellings_of_one_host_are_one_host() {
        for raw in [
            "shop.test",
            "Shop.TEST",
            "shop.test.",
            "shop.test:80",
            "shop.test:0080",
            "shop.test:",
            "shop.test:8080",
            "SHOP.test.:80",
        ] {
            assert_eq!(norm(raw).as_deref(), Some("shop.test"), "{raw}");
        }
        assert_eq!(norm("shop.test:9000").as_deref(), Some("shop.test:9000"));
        assert_eq!(norm("shop.test:09000").as_deref(), Some("shop.test:9000"));
        let tls = Listener {
            tls: true,
            port: None,
        };
        assert_eq!(normalise("a.test:443", tls).unwrap().as_str(), "a.test");
        assert_eq!(normalise("a.test:80", tls).unwrap().as_str(), "a.test:80");
    }

    #[test]
    fn a_purge_names_the_key_its_requests_were_stored_under() {
        let ports = [8080];
        for u in [
            "http://shop.test/x",
            "HTTP://Shop.Test./x",
            "http://shop.test:80/x",
            "http://shop.test:8080/x",
            "http://shop.test:0080/x",
        ] {
            assert_eq!(purge_url(u, &ports), "http://shop.test/x", "{u}");
        }
        assert_eq!(purge_url("https://a.test:443/", &ports), "https://a.test/");
        assert_eq!(purge_url("http://a.test:9/p", &ports), "http://a.test:9/p");
        assert_eq!(purge_url("http://a.test:9", &ports), "http://a.test:9");
    }

    #[test]
    fn names_and_ports_are_told_apart() {
        let h = normalise("API.test:9000", PLAIN).unwrap();
        assert_eq!((h.name(), h.as_str()), ("api.test", "api.test:9000"));
        let h = normalise("[::1]:9000", PLAIN).unwrap();
        assert_eq!((h.name(), h.as_str()), ("[::1]", "[::1]:9000"));
        assert_eq!(norm("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(norm("127.0.0.1").as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn what_is_not_host_and_port_is_refused() {
        for raw in [
            "",
            "admin.test:80:80",
            "admin.test..",
            ".admin.test",
            "a..test",
            "user@a.test",
            "a test",
            "a.test:65536",
            "a.test:123456",
            "a.test:-1",
            "a.test:8o",
            "[::1",
            "[]",
            "[not-v6]",
            "[::1]x",
            "[::1]:x",
            "a/b",
            "a.test%00",
            ":80",
        ] {
            assert_eq!(norm(raw), None, "{raw:?}");
        }
    }
}
