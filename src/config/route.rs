//! The typed `[[route]]`: where it matches, what it sends where, and who may use it.

use super::Priority;
use ipnet::IpNet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    /// Empty = any host.
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub upstream: String,
    pub strip_prefix: bool,
    pub timeout: Duration,
    /// Names of `[rate_limit.NAME]` sections, applied in order.
    pub rate_limits: Vec<String>,
    pub cache: Option<super::RouteCacheConfig>,
    pub access: AccessConfig,
    /// `path_prefix` matches without regard to ASCII case.
    pub path_case_insensitive: bool,
    /// A path with `;` parameters in any segment is refused (400).
    pub refuse_path_parameters: bool,
    /// Who is shed first when the pool is full.
    pub priority: Priority,
    /// Hedged requests (`upstream::hedge`); none by default.
    pub hedge: Option<super::hedge::HedgeConfig>,
    /// A canary rollout to another upstream (`canary`); `None`: none.
    pub canary: Option<super::canary::CanaryConfig>,
    /// Copies of requests to a shadow upstream (`mirror`); `None`: none.
    pub mirror: Option<super::mirror::MirrorConfig>,
    /// The whole wait for a response header, every attempt and backoff included (504 when
    /// it passes); `None`: none.
    pub deadline: Option<Duration>,
    /// CORS answered by brace (`cors`); `None`: the backends' business.
    pub cors: Option<super::cors::CorsConfig>,
    /// Pages for brace's own errors on this route (before `[server]`'s).
    pub error_pages: super::pages::ErrorPages,
    /// Maintenance mode at load (`maintenance`; the admin API may change it while running).
    pub maintenance: bool,
    /// Networks that still reach the backends in maintenance (operators testing).
    pub maintenance_allow: Vec<IpNet>,
    /// Fields set and removed on the request before it is forwarded.
    pub request_headers: super::headers::HeaderRules,
    /// Fields set and removed on the answer before it is sent.
    pub response_headers: super::headers::HeaderRules,
}

/// A route's `allow`, `deny`, `basic_auth` and `forward_authorization`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessConfig {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    pub basic_auth: Option<BasicAuthConfig>,
    pub forward_authorization: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuthConfig {
    pub realm: String,
    pub file: PathBuf,
    /// The file's users, read when the config is loaded (and so on every reload).
    pub users: Vec<(String, PasswordHash)>,
}

/// A password hash from an htpasswd file, of a kind that is still safe to store passwords
/// with. Checked by `access`.
#[derive(Debug, Clone, PartialEq)]
pub enum PasswordHash {
    /// `$2y$`, `$2b$`, `$2a$` (`htpasswd -B`).
    Bcrypt(String),
    /// `$argon2id$...` (PHC string).
    Argon2(String),
}

/// A `hosts` entry: `api.example.com` (exact) or `*.example.org` (any subdomain, kept as
/// the suffix `.example.org`). Both lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    Suffix(String),
}
