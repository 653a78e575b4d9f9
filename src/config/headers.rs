//! The typed `request_headers` and `response_headers` of a route: fields set (replacing any
//! of the name) and removed, values with a few variables (`headers_rules` applies them).

use http::HeaderName;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderRules {
    pub set: Vec<(HeaderName, Template)>,
    pub remove: Vec<HeaderName>,
}

/// A value: literal text and variables, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(pub Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// `{client_ip}`: the client's address (after `trusted_proxies`).
    ClientIp,
    /// `{request_id}`: the request's `X-Request-Id`.
    RequestId,
    /// `{host}`: the request's host, normalised (lower case, no port).
    Host,
    /// `{scheme}`: `http` or `https`, as the client connected.
    Scheme,
}

/// Fields no rule may set or remove: they frame the message or the connection, and brace
/// writes them itself.
pub const FORBIDDEN: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}
