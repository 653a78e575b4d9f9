//! The typed `[route.cors]` (`cors`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct CorsConfig {
    /// Allowed origins: exact (`https://app.example.com`), any subdomain
    /// (`https://*.example.com`), or any (`*`, only without credentials).
    pub origins: Vec<OriginPattern>,
    /// Methods a preflight may ask for (upper case).
    pub methods: Vec<String>,
    /// Request headers a preflight may ask for (lower case).
    pub headers: Vec<String>,
    /// Response headers the page's script may read (lower case).
    pub expose_headers: Vec<String>,
    pub credentials: bool,
    pub max_age: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OriginPattern {
    Any,
    /// `scheme://host[:port]`, lower case.
    Exact(String),
    /// `scheme://*.rest`: the scheme with `://` (`https://`) and the suffix after `*`
    /// (`.example.com`, with `:port` if given).
    Subdomain {
        scheme: String,
        suffix: String,
    },
}

pub const DEFAULT_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);
