//! Sticky sessions (`[upstream.NAME] sticky`): brace names the backend that answered in a
//! cookie and sends the client's later requests to it while it is available. The cookie's
//! value is an opaque id (a hash of the pool's name and the backend's address, the same on
//! every instance of a fleet), never the address. A value naming no backend of the pool, or
//! one that is drained, unhealthy, ejected, behind an open breaker or at its adaptive limit,
//! is ignored: the request is balanced as usual and the cookie rewritten to the backend that
//! answers. A client can thus choose among the pool's available backends, which the balancer
//! could have given it anyway, and nothing else.

use super::pool::Pool;
use pingora::http::RequestHeader;

/// The value of cookie `name` in the request, across its `Cookie` fields.
pub fn cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Pool {
    /// The backend the request's sticky cookie names, when the pool is sticky and that
    /// backend may take it now (its breaker's permit taken).
    pub fn pinned(&self, req: &RequestHeader, now: u64) -> Option<usize> {
        let sticky = self.config.sticky.as_ref()?;
        let id = cookie(req, &sticky.cookie)?;
        let i = self.sticky_ids.iter().position(|x| x == id)?;
        let b = &self.backends[i];
        let room = !self.config.adaptive.enforced() || b.has_room();
        (b.available(now) && room && self.acquire(i, now)).then_some(i)
    }

    /// The `Set-Cookie` value pinning the client to backend `i`, when the pool is sticky and
    /// the request did not already name it. `secure` for a client on TLS.
    pub fn sticky_cookie(&self, req: &RequestHeader, i: usize, secure: bool) -> Option<String> {
        let sticky = self.config.sticky.as_ref()?;
        let id = self.sticky_ids.get(i)?;
        if cookie(req, &sticky.cookie) == Some(id.as_str()) {
            return None;
        }
        Some(format!(
            "{}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            sticky.cookie,
            sticky.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::backend::backend_id;
    use std::net::SocketAddr;

    #[test]
    fn ids_are_opaque_stable_and_per_pool() {
        let a: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let id = backend_id("api", a);
        assert_eq!(id, backend_id("api", a), "the same on every instance");
        assert_ne!(id, backend_id("web", a));
        assert!(!id.contains("10.0.0.5"));
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_named_cookie_across_fields() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("cookie", "a=1; brace_srv2=x").unwrap();
        r.append_header("cookie", "brace_srv=abc").unwrap();
        assert_eq!(cookie(&r, "brace_srv"), Some("abc"));
        assert_eq!(cookie(&r, "none"), None);
    }
}
