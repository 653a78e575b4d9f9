//! The raw shape of `brace.toml`: serde structs that mirror the file and hold no logic.
//!
//! Every struct denies unknown keys, so a typo is an error with its line rather than a
//! silently ignored setting. Defaults live here, one `impl Default` per table (tables with
//! required keys default the rest field by field), so that the README's reference and the
//! code agree in one place; checks that relate keys to each other live in `validate`.

mod deploy;
mod route;
mod upstream;

pub use deploy::*;
pub use route::*;
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
    #[serde(default)]
    pub tracing: Option<FileTracing>,
    #[serde(default)]
    pub cluster: Option<FileCluster>,
}

/// `[cluster]`: instances sharing a Redis (or Valkey) for global rate limits, cluster-wide
/// purge and the fleet view. Absent: each instance on its own, as before.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    /// `redis://HOST:PORT/DB` or `rediss://` (TLS); no password in it.
    pub redis: String,
    /// The environment variable holding the Redis password (never written in the file).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Default: the host name and the process id.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Prefix of every Redis key and channel, so fleets can share one Redis.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How long a request may wait on Redis (a rate-limit lease) before the fallback decides.
    #[serde(default = "default_cluster_timeout")]
    pub timeout: Dur,
    #[serde(default = "default_cluster_connect_timeout")]
    pub connect_timeout: Dur,
    /// How often an instance says it is alive; it is forgotten after three missed beats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat: Dur,
    /// Fleet size for local fallbacks; default: the live instances seen at the last heartbeat.
    #[serde(default)]
    pub expected_instances: Option<u32>,
}

fn default_namespace() -> String {
    "brace".into()
}
fn default_cluster_timeout() -> Dur {
    Dur(Duration::from_millis(50))
}
fn default_cluster_connect_timeout() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_heartbeat() -> Dur {
    Dur(Duration::from_secs(5))
}

/// `[tracing]`: OpenTelemetry traces over OTLP/HTTP. Absent: no tracing, at no cost.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileTracing {
    pub otlp_endpoint: String,
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    #[serde(default = "default_service_name")]
    pub service_name: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_export_timeout")]
    pub timeout: Dur,
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

fn default_sample_ratio() -> f64 {
    1.0
}
fn default_service_name() -> String {
    "brace".into()
}
fn default_export_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_queue_size() -> usize {
    4096
}

/// `[cache]`: the shared response store.
#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileCache {
    pub max_size: Size,
    /// Default: 8 MiB, or `max_size` when that is smaller.
    pub max_object_size: Option<Size>,
}

pub const DEFAULT_CACHE_OBJECT: u64 = 8 * 1024 * 1024;

impl Default for FileCache {
    fn default() -> Self {
        FileCache {
            max_size: Size(256 * 1024 * 1024),
            max_object_size: None,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileServer {
    pub listen: Vec<String>,
    pub threads: usize,
    pub grace_period: Dur,
    pub client_max_body_size: Size,
    pub trusted_proxies: Vec<String>,
    pub tls: Vec<FileTls>,
    pub debug_headers: bool,
    pub rate_limit_headers: bool,
    pub watch_config: bool,
    pub path_normalization: PathNormalization,
    pub trust_forwarded_host: bool,
    pub client_keepalive_timeout: Dur,
    pub client_header_timeout: Dur,
    pub client_body_timeout: Dur,
    pub client_send_timeout: Dur,
    pub max_request_header_size: Size,
    pub max_connections: u64,
    pub h2c: bool,
    pub preserve_header_case: bool,
    /// `{ 503 = "errors/503.html", ... }`: pages for brace's own 429, 502, 503, 504.
    pub error_pages: BTreeMap<String, String>,
    /// Plain-HTTP requests are redirected to the TLS listener (308).
    pub https_redirect: bool,
    /// `Strict-Transport-Security: max-age=...` on answers over TLS.
    pub hsts: Option<Dur>,
}

impl Default for FileServer {
    fn default() -> Self {
        let sixty = Dur(Duration::from_secs(60));
        FileServer {
            listen: vec!["127.0.0.1:8080".into()],
            threads: 0,
            grace_period: Dur(Duration::from_secs(10)),
            client_max_body_size: Size(10 * 1024 * 1024),
            trusted_proxies: vec!["127.0.0.1/32".into(), "::1/128".into()],
            tls: Vec::new(),
            debug_headers: false,
            rate_limit_headers: false,
            watch_config: false,
            path_normalization: PathNormalization::default(),
            trust_forwarded_host: false,
            // nginx's `keepalive_timeout`.
            client_keepalive_timeout: Dur(Duration::from_secs(75)),
            // nginx's `client_header_timeout`, `client_body_timeout` and `send_timeout`.
            client_header_timeout: sixty,
            client_body_timeout: sixty,
            client_send_timeout: sixty,
            // nginx's `large_client_header_buffers` allow 4 × 8 KiB; Envoy's default is 60 KiB.
            max_request_header_size: Size(64 * 1024),
            // Open client connections, idle ones included (nginx: `worker_connections` per
            // worker).
            max_connections: 10_000,
            h2c: false,
            // HAProxy sends lowercase names; HTTP/2 has nothing else.
            preserve_header_case: false,
            error_pages: BTreeMap::new(),
            https_redirect: false,
            hsts: None,
        }
    }
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

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub listen: String,
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub certs: Vec<FileCertKey>,
    #[serde(default)]
    pub client_auth: ClientAuthMode,
    pub client_ca: Option<String>,
    pub client_cert_header: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileCertKey {
    pub cert: String,
    pub key: String,
}

/// `[[server.tls]] client_auth`: whether clients must present a certificate.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// No certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one is let in (without the subject header), one with a
    /// certificate that does not verify is answered 400.
    Optional,
    /// A client without a certificate that verifies is answered 400.
    Required,
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileAdmin {
    pub listen: String,
    pub token: Option<String>,
    pub hosts: Vec<String>,
}

impl Default for FileAdmin {
    fn default() -> Self {
        FileAdmin {
            listen: "127.0.0.1:9901".into(),
            token: None,
            hosts: Vec::new(),
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileLog {
    pub level: String,
    pub access_log: String,
    pub format: LogFormat,
}

/// `[log] format`: how process log lines are written.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event (`timestamp`, `level`, `target`, `fields`), for log shippers.
    Json,
}

impl Default for FileLog {
    fn default() -> Self {
        FileLog {
            level: "info".into(),
            access_log: "stdout".into(),
            format: LogFormat::default(),
        }
    }
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
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub on_store_error: StoreFallback,
    /// Tokens an instance takes from Redis at once (global scope); default from the rate.
    #[serde(default)]
    pub lease: Option<u32>,
}

/// `scope` of a rate limit.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each instance counts on its own.
    #[default]
    Local,
    /// One budget per key across every instance sharing the `[cluster]` Redis.
    Global,
}

/// What a global limit does while Redis cannot be reached.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreFallback {
    /// Limit locally to `rate / instances`.
    #[default]
    Local,
    Allow,
    Deny,
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
