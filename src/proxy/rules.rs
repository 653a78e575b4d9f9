//! A route's `request_headers` and `response_headers`: its fields set (replacing any of the
//! name) and removed, values filled from the request's facts (`config::headers`).

use super::ctx::Ctx;
use crate::config::headers::{HeaderRules, Part};
use http::{HeaderName, HeaderValue};

/// The value of a rule's template for this request; `None` when a variable has no value
/// (no client address) or the result is not a field value (cannot be: the parts are checked
/// at load and the variables are brace's own normalised values).
fn fill(parts: &[Part], ctx: &Ctx) -> Option<HeaderValue> {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::ClientIp => out.push_str(&ctx.client_ip?.to_string()),
            Part::RequestId => out.push_str(ctx.request_id.to_str().ok()?),
            Part::Host => out.push_str(ctx.host.as_str()),
            Part::Scheme => {
                out.push_str(if ctx.connection.as_ref().is_some_and(|c| c.listener.tls) {
                    "https"
                } else {
                    "http"
                })
            }
        }
    }
    HeaderValue::from_str(&out).ok()
}

/// A message whose fields the rules change: a request or a response header.
pub trait Fields {
    fn remove(&mut self, name: &HeaderName);
    fn insert(&mut self, name: &HeaderName, value: HeaderValue);
}

impl Fields for pingora::http::RequestHeader {
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: &HeaderName, value: HeaderValue) {
        self.insert_header_name(name, value);
    }
}

impl Fields for pingora::http::ResponseHeader {
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: &HeaderName, value: HeaderValue) {
        self.insert_header_name(name, value);
    }
}

/// Applies `rules` to `msg`: removals first, then the fields set (a field whose variable has
/// no value is removed rather than sent empty).
pub fn apply(rules: &HeaderRules, ctx: &Ctx, msg: &mut impl Fields) {
    for name in &rules.remove {
        msg.remove(name);
    }
    for (name, template) in &rules.set {
        match fill(&template.0, ctx) {
            Some(v) => msg.insert(name, v),
            None => msg.remove(name),
        }
    }
}
