//! The typed configuration: what `validate` makes of the file, in types that cannot hold a
//! bad value. `PartialEq` lets a reload tell which parts changed (`runtime::plan`).

pub use super::adaptive::{AdaptiveConfig, Priority};
pub use super::resilience::{CheckKind, HealthCheckConfig, OutlierConfig, RetryConfig, RetryOn};
pub use super::route::{AccessConfig, BasicAuthConfig, HostPattern, PasswordHash, RouteConfig};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

pub use super::file::{
    ClientAuthMode, LogFormat, PathNormalization, Scope, SetCookiePolicy, StoreFallback,
};

/// The validated configuration. `PartialEq` lets a reload tell which parts changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub routes: Vec<RouteConfig>,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub rate_limits: BTreeMap<String, RateLimitConfig>,
    pub cache: Option<CacheConfig>,
    /// Read at start only.
    pub tracing: Option<TracingConfig>,
    /// Read at start only.
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Without a password; see `password_env`.
    pub redis: String,
    pub password_env: Option<String>,
    pub instance_id: String,
    pub namespace: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub heartbeat: Duration,
    pub expected_instances: Option<u32>,
}

/// `[tracing]`
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans are POSTed (OTLP/HTTP, protobuf): the full URL, `/v1/traces` included.
    pub endpoint: String,
    /// Share of new traces sampled, 0..=1; a request with a `traceparent` follows its
    /// parent's decision.
    pub sample_ratio: f64,
    pub service_name: String,
    /// Sent with every export (a collector's API key, say).
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Ended spans waiting for export; more are dropped and counted.
    pub queue_size: usize,
}

/// `[cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub max_size: u64,
    pub max_object_size: u64,
}

/// `[route.cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCacheConfig {
    /// Freshness for responses that carry none; zero = don't store them.
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub key_query: KeyQuery,
    /// Lower-cased header names.
    pub key_headers: Vec<String>,
    pub lock_timeout: Duration,
    pub status_header: bool,
    pub cache_set_cookie: SetCookiePolicy,
    /// Heuristic freshness (RFC 9111 §4.2.2) from `Last-Modified`.
    pub heuristic: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyQuery {
    All,
    None,
    /// Keep only these parameters (sorted, so order in the URL does not split the key).
    Only(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    /// Worker threads; already resolved from `0` to the number of cores.
    pub threads: usize,
    pub grace_period: Duration,
    pub client_max_body_size: u64,
    pub trusted_proxies: Vec<IpNet>,
    pub tls: Vec<TlsConfig>,
    pub debug_headers: bool,
    pub rate_limit_headers: bool,
    /// Reload when the config file changes.
    pub watch_config: bool,
    pub path_normalization: PathNormalization,
    /// Believe `X-Forwarded-Host` from a trusted peer (forwarded, and part of the cache key).
    pub trust_forwarded_host: bool,
    /// Idle time allowed between requests on a client connection; zero: no keep-alive.
    pub client_keepalive_timeout: Duration,
    /// From the first byte of a request header to its end (restart to change).
    pub client_header_timeout: Duration,
    /// Between two reads of a request body.
    pub client_body_timeout: Duration,
    /// Between two writes of a response that the client does not read.
    pub client_send_timeout: Duration,
    /// The largest request header (restart to change).
    pub max_request_header_size: u64,
    /// Open client connections beyond which new ones are closed at once.
    pub max_connections: u64,
    /// Cleartext HTTP/2 with prior knowledge on the plain listeners (restart to change).
    pub h2c: bool,
    /// HTTP/1 header names sent in the case they came in, not lowercase (restart to change).
    pub preserve_header_case: bool,
    /// Pages for brace's own 429, 502, 503, 504 (a route's own come first).
    pub error_pages: super::pages::ErrorPages,
    /// Plain-HTTP requests get a 308 to the first TLS listener (ACME's HTTP-01 path excepted).
    pub https_redirect: bool,
    /// `Strict-Transport-Security` max-age on answers over TLS; `None`: not sent.
    pub hsts: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// Chosen by the SNI name against each certificate's names; the first is the default,
    /// served when the client names none of them (or sends no SNI).
    pub certs: Vec<CertKey>,
    pub client_auth: ClientAuthMode,
    /// Roots that client certificates must chain to (DER), from `client_ca`.
    pub client_ca: Option<(PathBuf, Vec<Vec<u8>>)>,
    /// Carries a verified client certificate's subject upstream (lowercase); removed from
    /// every request that comes in, on every listener.
    pub client_cert_header: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("cert")
            .field("cert", &self.cert_file)
            .field("key", &self.key_file)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
    /// Host names (lower case, no port) the API and status page answer besides IP
    /// literals and `localhost`.
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub level: String,
    pub access_log: AccessLog,
    /// Read at start only.
    pub format: LogFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Backends given by address (and, without `resolve`, by a name resolved at load).
    pub backends: Vec<BackendAddr>,
    /// Backends found by DNS, re-resolved while brace runs (`upstream::dns`).
    pub dns: Option<DnsConfig>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Each attempt's limit on the wait for the response header; `None`: `read_timeout` only.
    pub first_byte_timeout: Option<Duration>,
    /// Idle time allowed on an upgraded (101, e.g. WebSocket) connection, both ways.
    pub upgrade_idle_timeout: Duration,
    pub keepalive: usize,
    /// How long an idle connection to a backend is kept for reuse.
    pub keepalive_timeout: Duration,
    pub balance: Balance,
    /// Another upstream used only while this one has no available backend.
    pub backup: Option<String>,
    /// Ramp-up time for a backend that becomes available again; zero = off.
    pub slow_start: Duration,
    /// Below this share of available backends, balance over all of them; 0 = off.
    pub panic_threshold: f64,
    pub health_check: Option<HealthCheckConfig>,
    pub outlier: Option<OutlierConfig>,
    pub retry: RetryConfig,
    pub circuit_breaker: Option<BreakerConfig>,
    /// Requests in flight to the pool beyond which brace answers 503 at once; 0 = no limit.
    pub max_in_flight: u32,
    /// TLS to the backends; `None` = plaintext.
    pub tls: Option<UpstreamTlsConfig>,
    /// The HTTP version spoken to the backends.
    pub protocol: Protocol,
    /// gRPC status codes that count as the backend's failure (outcome `grpc_error`).
    pub grpc_failure: Vec<u8>,
    /// Adaptive concurrency limits per backend and the pool's wait queue.
    pub adaptive: AdaptiveConfig,
    /// Sticky sessions by a cookie brace sets; `None` = off.
    pub sticky: Option<super::sticky::StickyConfig>,
}

/// What brace speaks to an upstream's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (over TLS: ALPN offers `http/1.1`).
    Http1,
    /// HTTP/2 only: over TLS by ALPN `h2`; in plaintext with prior knowledge (h2c).
    H2,
    /// Over TLS, ALPN offers `h2` then `http/1.1` and the backend picks.
    H2OrHttp1,
}

/// gRPC status codes by name (gRPC's `doc/statuscodes.md`), lowercase with underscores.
pub const GRPC_CODES: [&str; 17] = [
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
];

/// `[upstream.NAME] tls`: the files are read when the config is loaded.
#[derive(Clone, PartialEq)]
pub struct UpstreamTlsConfig {
    /// The name sent and verified; `None` = each backend's host name, or its IP address
    /// (verified against the certificate's IP addresses; no SNI is sent for an IP).
    pub sni: Option<String>,
    /// Trusted roots (DER), from `ca`; `None` = the system's.
    pub ca: Option<(PathBuf, Vec<Vec<u8>>)>,
    pub verify: bool,
    /// A client certificate chain and key (DER) for mutual TLS.
    pub client: Option<CertKey>,
}

/// A certificate chain and its private key, read from PEM files (DER inside). The key is
/// checked to match the leaf at validation. `Debug` names the files only.
#[derive(Clone, PartialEq)]
pub struct CertKey {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub chain: Vec<Vec<u8>>,
    pub key: Vec<u8>,
}

/// Names the files only: no key material in logs or reload plans.
impl std::fmt::Debug for UpstreamTlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls")
            .field("sni", &self.sni)
            .field("ca", &self.ca.as_ref().map(|(p, _)| p))
            .field("verify", &self.verify)
            .field("client", &self.client)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// 0 = this trigger off.
    pub consecutive_failures: u32,
    /// 0 = this trigger off.
    pub failure_ratio: f64,
    pub min_requests: u32,
    pub window: Duration,
    pub slow_call_duration: Duration,
    /// 0 = this trigger off.
    pub slow_call_ratio: f64,
    pub open_duration: Duration,
    pub max_open_duration: Duration,
    pub half_open_requests: u32,
    pub failure_on: FailureOn,
    pub mode: BreakerMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerMode {
    Enforce,
    /// Count and report what would have tripped; change nothing.
    Shadow,
}

/// Which outcomes a breaker counts as failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureOn {
    pub connect_error: bool,
    pub timeout: bool,
    pub error: bool,
    pub http_5xx: bool,
}

impl FailureOn {
    pub fn default_set() -> FailureOn {
        FailureOn {
            connect_error: true,
            timeout: true,
            error: false,
            http_5xx: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    pub key: LimitKey,
    pub rate: u32,
    pub per: Duration,
    pub burst: u32,
    pub status: u16,
    /// Shadow: count what would be refused, refuse nothing.
    pub shadow: bool,
    pub max_keys: u64,
    pub scope: Scope,
    pub on_store_error: StoreFallback,
    /// Tokens taken from Redis at once (global scope).
    pub lease: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    ClientIp,
    /// Lower-cased header name.
    Header(String),
    Route,
    Path,
    ClientIpAndHeader(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Balance {
    RoundRobin,
    LeastRequests,
    P2c,
    /// Peak-EWMA latency × load, power of two choices (`upstream::latency`).
    Ewma,
    Random,
    ConsistentHash(HashKey),
}

impl Balance {
    /// The config file's spelling (`balance = "..."`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastRequests => "least_requests",
            Balance::P2c => "p2c",
            Balance::Ewma => "ewma",
            Balance::Random => "random",
            Balance::ConsistentHash(_) => "consistent_hash",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    ClientIp,
    /// Lower-cased header name.
    Header(String),
    Cookie(String),
    Path,
}

#[derive(Clone, PartialEq)]
pub struct BackendAddr {
    pub addr: SocketAddr,
    pub weight: NonZeroU32,
    /// The host name the backend was given by, if not an IP address (the default TLS name).
    pub host: Option<String>,
}

/// `[upstream.NAME] resolve`, `resolver`, `srv` and the host-name backends they apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub names: Vec<DnsName>,
    /// An SRV name: its records give targets, ports and weights.
    pub srv: Option<String>,
    /// Longest time between lookups of a name (a shorter TTL wins).
    pub every: Duration,
    /// `None`: the system's resolver configuration.
    pub resolver: Option<SocketAddr>,
}

/// A backend given as `host:port`: every address `host` resolves to is a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName {
    pub host: String,
    pub port: u16,
    pub weight: NonZeroU32,
}

/// As a plan shows it (`brace check --against`, the reload answer): `10.0.0.1:80`, with
/// ` weight 2` and ` (app.internal)` when they are not the defaults. Every field is shown
/// (the fleet's config hash is taken from this form).
impl std::fmt::Debug for BackendAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)?;
        if self.weight.get() != 1 {
            write!(f, " weight {}", self.weight)?;
        }
        if let Some(h) = &self.host {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Largest backend weight: the weighted round robin expands a backend `weight` times.
pub const MAX_WEIGHT: i64 = 1000;
