//! The raw shape of `brace.toml`: serde structs that mirror the file and hold no logic.
//!
//! Every struct denies unknown keys, so a typo is an error with its line rather than a
//! silently ignored setting. Defaults live here so that the README's reference and the
//! code agree in one place; checks that relate keys to each other live in `validate.rs`.

mod upstream;

pub use upstream::*;

use super::units::{Dur, Size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub admin: FileAdmin,
    #[serde(default)]
    pub log: FileLog,
    #[serde(default)]
    pub route: Vec<FileRoute>,
    #[serde(default)]
    pub upstream: BTreeMap<String, FileUpstream>,
    #[serde(default)]
    pub rate_limit: BTreeMap<String, FileRateLimit>,
    #[serde(default)]
    pub cache: Option<FileCache>,
}

/// `[cache]`: the shared response store.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileCache {
    #[serde(default = "default_cache_size")]
    pub max_size: Size,
    /// Default: 8 MiB, or `max_size` when that is smaller.
    #[serde(default)]
    pub max_object_size: Option<Size>,
}

fn default_cache_size() -> Size {
    Size(256 * 1024 * 1024)
}
pub const DEFAULT_CACHE_OBJECT: u64 = 8 * 1024 * 1024;

/// `[route.cache]`: this route's caching policy.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileRouteCache {
    #[serde(default = "zero_duration")]
    pub default_ttl: Dur,
    #[serde(default = "default_max_ttl")]
    pub max_ttl: Dur,
    #[serde(default = "zero_duration")]
    pub stale_while_revalidate: Dur,
    #[serde(default = "default_stale_if_error")]
    pub stale_if_error: Dur,
    #[serde(default)]
    pub key_query: FileKeyQuery,
    #[serde(default)]
    pub key_headers: Vec<String>,
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: Dur,
    #[serde(default = "default_true")]
    pub status_header: bool,
    #[serde(default)]
    pub cache_set_cookie: SetCookiePolicy,
    #[serde(default = "default_true")]
    pub heuristic: bool,
}

fn default_max_ttl() -> Dur {
    Dur(Duration::from_secs(3600))
}
fn default_stale_if_error() -> Dur {
    Dur(Duration::from_secs(300))
}
fn default_lock_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_true() -> bool {
    true
}

/// `key_query`: `"all"`, `"none"`, or a list of parameter names to keep.
#[derive(Debug)]
pub enum FileKeyQuery {
    Word(String),
    Names(Vec<String>),
}

impl Default for FileKeyQuery {
    fn default() -> Self {
        FileKeyQuery::Word("all".into())
    }
}

impl<'de> Deserialize<'de> for FileKeyQuery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileKeyQuery;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"all\", \"none\" or a list of query parameter names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileKeyQuery, E> {
                Ok(FileKeyQuery::Word(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FileKeyQuery, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = a.next_element::<String>()? {
                    names.push(n);
                }
                Ok(FileKeyQuery::Names(names))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    #[serde(default)]
    pub threads: usize,
    #[serde(default = "default_grace")]
    pub grace_period: Dur,
    #[serde(default = "default_body")]
    pub client_max_body_size: Size,
    #[serde(default = "default_trusted")]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub tls: Vec<FileTls>,
    #[serde(default)]
    pub debug_headers: bool,
    #[serde(default)]
    pub rate_limit_headers: bool,
    #[serde(default)]
    pub watch_config: bool,
    #[serde(default)]
    pub path_normalization: PathNormalization,
    #[serde(default)]
    pub trust_forwarded_host: bool,
    #[serde(default = "default_keepalive_timeout")]
    pub client_keepalive_timeout: Dur,
    #[serde(default = "default_sixty")]
    pub client_header_timeout: Dur,
    #[serde(default = "default_sixty")]
    pub client_body_timeout: Dur,
    #[serde(default = "default_sixty")]
    pub client_send_timeout: Dur,
    #[serde(default = "default_max_header")]
    pub max_request_header_size: Size,
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
}

/// `[server] path_normalization`: what the upstream receives once the path is normalised
/// (routing always uses the normalised path; see `proxy::request`).
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathNormalization {
    /// The normalised path.
    #[default]
    Strict,
    /// The target byte for byte as the client sent it.
    ForwardAsIs,
}

/// `[route.cache] cache_set_cookie`: what to do with a response that carries `Set-Cookie`.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SetCookiePolicy {
    /// Not stored (the reason is `set-cookie`).
    #[default]
    Never,
    /// Stored without its `Set-Cookie` fields; the client that caused the fetch still gets them.
    Strip,
    /// Stored with them, so every client is handed the same cookies.
    Store,
}

impl Default for FileServer {
    fn default() -> Self {
        FileServer {
            listen: default_listen(),
            threads: 0,
            grace_period: default_grace(),
            client_max_body_size: default_body(),
            trusted_proxies: default_trusted(),
            tls: Vec::new(),
            debug_headers: false,
            rate_limit_headers: false,
            watch_config: false,
            path_normalization: PathNormalization::default(),
            trust_forwarded_host: false,
            client_keepalive_timeout: default_keepalive_timeout(),
            client_header_timeout: default_sixty(),
            client_body_timeout: default_sixty(),
            client_send_timeout: default_sixty(),
            max_request_header_size: default_max_header(),
            max_connections: default_max_connections(),
        }
    }
}

/// nginx's `keepalive_timeout`.
fn default_keepalive_timeout() -> Dur {
    Dur(Duration::from_secs(75))
}
/// nginx's `client_header_timeout`, `client_body_timeout` and `send_timeout`.
fn default_sixty() -> Dur {
    Dur(Duration::from_secs(60))
}
/// Open client connections, idle ones included (nginx: `worker_connections` per worker).
fn default_max_connections() -> u64 {
    10_000
}
/// nginx's `large_client_header_buffers` allow 4 × 8 KiB; Envoy's default is 60 KiB.
fn default_max_header() -> Size {
    Size(64 * 1024)
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:8080".into()]
}
fn default_grace() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_body() -> Size {
    Size(10 * 1024 * 1024)
}
fn default_trusted() -> Vec<String> {
    vec!["127.0.0.1/32".into(), "::1/128".into()]
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub listen: String,
    pub cert: String,
    pub key: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    #[serde(default)]
    pub token: Option<String>,
}

impl Default for FileAdmin {
    fn default() -> Self {
        FileAdmin {
            listen: default_admin_listen(),
            token: None,
        }
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:9901".into()
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default = "default_access_log")]
    pub access_log: String,
}

impl Default for FileLog {
    fn default() -> Self {
        FileLog {
            level: default_level(),
            access_log: default_access_log(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}
fn default_access_log() -> String {
    "stdout".into()
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    pub upstream: String,
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default = "default_route_timeout")]
    pub timeout: Dur,
    #[serde(default)]
    pub rate_limits: Vec<String>,
    #[serde(default)]
    pub cache: Option<FileRouteCache>,
}

fn default_prefix() -> String {
    "/".into()
}
fn default_route_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

/// `mode` of a breaker or a rate limit.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    /// Count and report what would have happened; change nothing.
    Shadow,
}
/// `[rate_limit.NAME]`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileRateLimit {
    pub key: String,
    pub rate: u32,
    #[serde(default = "default_per")]
    pub per: Dur,
    pub burst: u32,
    #[serde(default = "default_limit_status")]
    pub status: u16,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "default_max_keys")]
    pub max_keys: u64,
}
fn default_per() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_limit_status() -> u16 {
    429
}
fn default_max_keys() -> u64 {
    100_000
}
fn zero_duration() -> Dur {
    Dur(Duration::ZERO)
}
