//! CORS answered by brace (`[route.cors]`): a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered here and never reaches a backend; an actual
//! request from an allowed origin gets `Access-Control-Allow-Origin` (and the rest) on its
//! answer, with the backend's own `Access-Control-*` fields removed, so one policy holds. An
//! origin is matched as the browser sends it (lower case, `scheme://host[:port]`): anything
//! else, `null` included, matches nothing, and an origin is echoed back only when it matched.

use crate::config::cors::{CorsConfig, OriginPattern};
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

pub struct Cors {
    config: CorsConfig,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: HeaderValue,
}

/// What a preflight gets.
pub enum Preflight {
    /// 204 with these fields.
    Allowed(Vec<(HeaderName, HeaderValue)>),
    /// 403: the origin, method or a header is not allowed.
    Refused(&'static str),
}

static ACRM: HeaderName = HeaderName::from_static("access-control-request-method");
static ACRH: HeaderName = HeaderName::from_static("access-control-request-headers");

fn joined(list: &[String]) -> Option<HeaderValue> {
    (!list.is_empty())
        .then(|| HeaderValue::from_str(&list.join(", ")).ok())
        .flatten()
}

impl Cors {
    pub fn new(config: &CorsConfig) -> Cors {
        Cors {
            methods: joined(&config.methods).unwrap_or(HeaderValue::from_static("GET")),
            headers: joined(&config.headers),
            expose: joined(&config.expose_headers),
            max_age: HeaderValue::from(config.max_age.as_secs()),
            config: config.clone(),
        }
    }

    /// The value for `Access-Control-Allow-Origin` when `origin` is allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let o = origin.to_str().ok()?;
        let mut matched = false;
        for p in &self.config.origins {
            match p {
                OriginPattern::Any => return Some(HeaderValue::from_static("*")),
                OriginPattern::Exact(e) => matched |= o == e,
                OriginPattern::Subdomain { scheme, suffix } => {
                    matched |= o.strip_prefix(scheme.as_str()).is_some_and(|host| {
                        host.len() > suffix.len()
                            && host.ends_with(suffix.as_str())
                            && host[..host.len() - suffix.len()].bytes().all(|b| {
                                b.is_ascii_lowercase()
                                    || b.is_ascii_digit()
                                    || b == b'-'
                                    || b == b'.'
                            })
                            && !host.starts_with('.')
                    })
                }
            }
        }
        matched.then(|| origin.clone())
    }

    /// `None` when `req` is not a preflight (it goes on as a request).
    pub fn preflight(&self, req: &RequestHeader) -> Option<Preflight> {
        if req.method != http::Method::OPTIONS {
            return None;
        }
        let origin = req.headers.get(http::header::ORIGIN)?;
        let method = req.headers.get(&ACRM)?;
        let Some(allow) = self.allow_origin(origin) else {
            return Some(Preflight::Refused("origin not allowed"));
        };
        let m = method.to_str().unwrap_or("");
        if !self.config.methods.iter().any(|x| x == m) {
            return Some(Preflight::Refused("method not allowed"));
        }
        let asked = req.headers.get_all(&ACRH).iter().flat_map(|v| {
            v.to_str()
                .unwrap_or("\u{0}")
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
        });
        for h in asked {
            if !h.is_empty() && !self.config.headers.contains(&h) {
                return Some(Preflight::Refused("header not allowed"));
            }
        }
        let mut out = self.common(allow);
        out.push((
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            self.methods.clone(),
        ));
        if let Some(h) = &self.headers {
            out.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
        out.push((http::header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone()));
        Some(Preflight::Allowed(out))
    }

    fn common(&self, allow: HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = vec![(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow)];
        if self.config.credentials {
            out.push((
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        out.push((http::header::VARY, HeaderValue::from_static("Origin")));
        out
    }

    /// An actual response on the route: the backend's `Access-Control-*` go; an allowed
    /// origin gets brace's; `Vary: Origin` says the answer depends on it.
    pub fn respond(&self, req: &RequestHeader, resp: &mut ResponseHeader) {
        let theirs: Vec<HeaderName> = resp
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for k in theirs {
            resp.remove_header(&k);
        }
        let allowed = req
            .headers
            .get(http::header::ORIGIN)
            .and_then(|o| self.allow_origin(o));
        match allowed {
            Some(allow) => {
                for (k, v) in self.common(allow) {
                    let _ = resp.append_header(k, v);
                }
                if let Some(e) = &self.expose {
                    let _ =
                        resp.insert_header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
                }
            }
            None => {
                let _ = resp.append_header(http::header::VARY, HeaderValue::from_static("Origin"));
            }
        }
    }
}

#[cfg(test)]
mod tests;
