//! The typed `[upstream.NAME] sticky = { cookie = "brace_srv", ttl = "1h" }`: a client keeps
//! the backend it first got, by a cookie brace sets (`upstream::sticky`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct StickyConfig {
    /// The cookie's name.
    pub cookie: String,
    /// Its `Max-Age`.
    pub ttl: Duration,
}

/// `cookie`'s default.
pub const DEFAULT_COOKIE: &str = "brace_srv";
/// `ttl`'s default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
