//! Raw file structs → typed [`Config`]: every value parsed into a type that cannot hold a bad
//! one, every cross-reference checked. Errors carry the key path (`upstream.api.backends[1]`);
//! the loader turns that path into a line and column.

use super::file::*;
use super::KeyPath;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The validated configuration. `PartialEq` lets a reload tell which parts changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: Server,
    pub admin: Admin,
    pub log: Log,
    pub routes: Vec<Route>,
    pub upstreams: BTreeMap<String, Upstream>,
    pub rate_limits: BTreeMap<String, RateLimit>,
    pub cache: Option<CacheConfig>,
}

/// `[cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub max_size: u64,
    pub max_object_size: u64,
}

/// `[route.cache]`
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCache {
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
pub struct Server {
    pub listen: Vec<SocketAddr>,
    /// Worker threads; already resolved from `0` to the number of cores.
    pub threads: usize,
    pub grace_period: Duration,
    pub client_max_body_size: u64,
    pub trusted_proxies: Vec<IpNet>,
    pub tls: Vec<TlsListener>,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub level: String,
    pub access_log: AccessLog,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    /// Empty = any host.
    pub hosts: Vec<HostPattern>,
    pub path_prefix: String,
    pub upstream: String,
    pub strip_prefix: bool,
    pub timeout: Duration,
    /// Names of `[rate_limit.NAME]` sections, applied in order.
    pub rate_limits: Vec<String>,
    pub cache: Option<RouteCache>,
}

/// A `hosts` entry: `api.example.com` (exact) or `*.example.org` (any subdomain, kept as
/// the suffix `.example.org`). Both lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub backends: Vec<BackendAddr>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Idle time allowed on an upgraded (101, e.g. WebSocket) connection, both ways.
    pub upgrade_idle_timeout: Duration,
    pub keepalive: usize,
    pub balance: Balance,
    /// Another upstream used only while this one has no available backend.
    pub backup: Option<String>,
    /// Ramp-up time for a backend that becomes available again; zero = off.
    pub slow_start: Duration,
    /// Below this share of available backends, balance over all of them; 0 = off.
    pub panic_threshold: f64,
    pub health_check: Option<HealthCheck>,
    pub outlier: Option<Outlier>,
    pub retry: Retry,
    pub circuit_breaker: Option<BreakerConfig>,
    /// Requests in flight to the pool beyond which brace answers 503 at once; 0 = no limit.
    pub max_in_flight: u32,
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
    pub fn matches(&self, o: crate::upstream::outcome::Outcome) -> bool {
        use crate::upstream::outcome::Outcome::*;
        match o {
            ConnectError => self.connect_error,
            Timeout => self.timeout,
            Error => self.error,
            Http5xx => self.http_5xx,
            Success | ClientAbort | ClientError | ClientTimeout => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub key: LimitKey,
    pub rate: u32,
    pub per: Duration,
    pub burst: u32,
    pub status: u16,
    /// Shadow: count what would be refused, refuse nothing.
    pub shadow: bool,
    pub max_keys: u64,
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

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Tcp,
    Http {
        path: String,
        host: Option<String>,
        /// Inclusive range of passing statuses.
        expect: (u16, u16),
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejection_percent: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// Extra tries after the first.
    pub attempts: u32,
    pub on: RetryOn,
    pub budget_percent: u32,
    pub min_retries_per_second: u32,
    pub backoff: Duration,
}

/// The failures a retry is allowed for.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RetryOn {
    pub connect_error: bool,
    pub timeout: bool,
    /// The connection broke after it was made (reset, closed, bad response).
    pub error: bool,
    pub status_502: bool,
    pub status_503: bool,
    pub status_504: bool,
}

impl RetryOn {
    pub fn status(&self, code: u16) -> bool {
        match code {
            502 => self.status_502,
            503 => self.status_503,
            504 => self.status_504,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendAddr {
    pub addr: SocketAddr,
    pub weight: NonZeroU32,
}

/// Largest backend weight: the weighted round robin expands a backend `weight` times.
pub const MAX_WEIGHT: i64 = 1000;

type VResult<T> = Result<T, (KeyPath, String)>;

fn err<T>(path: KeyPath, msg: impl Into<String>) -> VResult<T> {
    Err((path, msg.into()))
}

fn name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn socket_addr(path: KeyPath, s: &str) -> VResult<SocketAddr> {
    let a = any_socket_addr(path.clone(), s)?;
    if a.port() == 0 {
        return err(
            path,
            format!("\"{s}\": port 0 is not a port a backend listens on"),
        );
    }
    Ok(a)
}

fn any_socket_addr(path: KeyPath, s: &str) -> VResult<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if !s.contains(':') {
        return err(
            path,
            format!("invalid address \"{s}\": expected \"host:port\""),
        );
    }
    match s.to_socket_addrs() {
        Ok(mut it) => match it.next() {
            Some(a) => Ok(a),
            None => err(path, format!("address \"{s}\" resolved to nothing")),
        },
        Err(e) => err(path, format!("invalid address \"{s}\": {e}")),
    }
}

fn listen_addr(path: KeyPath, s: &str) -> VResult<SocketAddr> {
    s.parse().or_else(|_| {
        err(
            path,
            format!(
                "invalid listen address \"{s}\": expected \"ip:port\", e.g. \"127.0.0.1:8080\""
            ),
        )
    })
}

fn host_pattern(path: KeyPath, h: &str) -> VResult<HostPattern> {
    let h = h.trim().to_ascii_lowercase();
    let (suffix, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return err(
            path,
            format!("invalid host \"{h}\": expected a name like \"api.example.com\" or \"*.example.org\" (no port)"),
        );
    }
    Ok(if suffix {
        HostPattern::Suffix(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

impl Config {
    /// Validates a parsed file. `base` is the directory relative paths (TLS files) start from.
    pub fn from_file(f: FileConfig, base: &Path) -> VResult<Config> {
        let FileConfig {
            server,
            admin,
            log,
            route,
            upstream,
            rate_limit,
            cache,
        } = f;
        let cache = match cache {
            Some(c) => {
                let super::file::FileCache {
                    max_size,
                    max_object_size,
                } = c;
                let p = KeyPath::root().key("cache");
                if max_size.0 == 0 {
                    return err(p.key("max_size"), "must be greater than 0");
                }
                let max_object_size = max_object_size.unwrap_or(super::units::Size(
                    super::file::DEFAULT_CACHE_OBJECT.min(max_size.0),
                ));
                if max_object_size.0 == 0 || max_object_size.0 > max_size.0 {
                    return err(
                        p.key("max_object_size"),
                        "must be greater than 0 and at most max_size",
                    );
                }
                if max_object_size.0 > u64::from(u32::MAX) {
                    return err(p.key("max_object_size"), "at most 4GiB");
                }
                Some(CacheConfig {
                    max_size: max_size.0,
                    max_object_size: max_object_size.0,
                })
            }
            None => None,
        };
        let root = KeyPath::root();

        let server = validate_server(server, &root.key("server"), base)?;
        let admin = validate_admin(admin, &root.key("admin"), &server)?;
        let log = validate_log(log, &root.key("log"), base)?;

        let mut upstreams = BTreeMap::new();
        for (name, u) in upstream {
            let p = root.key("upstream").key(&name);
            if !name_ok(&name) {
                return err(p, format!("invalid upstream name \"{name}\": use letters, digits, '_', '-', '.', starting with a letter or digit"));
            }
            upstreams.insert(name, validate_upstream(u, &p)?);
        }

        for (name, u) in &upstreams {
            if let Some(b) = &u.backup {
                let p = root.key("upstream").key(name).key("backup");
                if b == name {
                    return err(p, "an upstream cannot be its own backup");
                }
                match upstreams.get(b) {
                    None => return err(p, format!("backup upstream \"{b}\" is not defined")),
                    Some(bu) if bu.backup.is_some() => {
                        return err(p, format!("backup upstream \"{b}\" has a backup of its own; only one level is supported"))
                    }
                    Some(_) => {}
                }
            }
        }

        let mut rate_limits = BTreeMap::new();
        for (name, r) in rate_limit {
            let p = root.key("rate_limit").key(&name);
            if !name_ok(&name) {
                return err(p, format!("invalid rate limit name \"{name}\""));
            }
            rate_limits.insert(name, validate_rate_limit(r, &p)?);
        }

        let mut routes = Vec::with_capacity(route.len());
        let mut names = HashSet::new();
        let mut places = HashSet::new();
        for (i, r) in route.into_iter().enumerate() {
            let p = root.key("route").index(i);
            let r = validate_route(r, &p, &upstreams, &rate_limits, cache.is_some())?;
            if !names.insert(r.name.clone()) {
                return err(
                    p.key("name"),
                    format!("duplicate route name \"{}\"", r.name),
                );
            }
            let hosts: Vec<Option<&HostPattern>> = if r.hosts.is_empty() {
                vec![None]
            } else {
                r.hosts.iter().map(Some).collect()
            };
            for h in hosts {
                if !places.insert((h.cloned(), r.path_prefix.clone())) {
                    return err(
                        p.key("path_prefix"),
                        format!(
                            "route \"{}\" repeats host {} with path_prefix \"{}\" of an earlier route; the match would be ambiguous",
                            r.name,
                            h.map(|h| format!("{h:?}")).unwrap_or_else(|| "(any)".into()),
                            r.path_prefix
                        ),
                    );
                }
            }
            routes.push(r);
        }
        if routes.is_empty() {
            return err(
                root.key("route"),
                "no [[route]] defined: brace would answer 404 to everything",
            );
        }

        Ok(Config {
            server,
            admin,
            log,
            routes,
            upstreams,
            rate_limits,
            cache,
        })
    }
}

fn validate_server(s: FileServer, p: &KeyPath, base: &Path) -> VResult<Server> {
    let FileServer {
        listen,
        threads,
        grace_period,
        client_max_body_size,
        trusted_proxies,
        tls,
        debug_headers,
        rate_limit_headers,
        watch_config,
        path_normalization,
        trust_forwarded_host,
        client_keepalive_timeout,
        client_header_timeout,
        client_body_timeout,
        client_send_timeout,
        max_request_header_size,
        max_connections,
    } = s;
    if !(1..=1_000_000).contains(&max_connections) {
        return err(p.key("max_connections"), "must be between 1 and 1000000");
    }
    let keepalive = client_keepalive_timeout.0;
    if !keepalive.is_zero() {
        within(p.key("client_keepalive_timeout"), keepalive, SEC, HOUR)?;
    }
    within(
        p.key("client_header_timeout"),
        client_header_timeout.0,
        SEC,
        HOUR,
    )?;
    within(
        p.key("client_body_timeout"),
        client_body_timeout.0,
        SEC,
        HOUR,
    )?;
    within(
        p.key("client_send_timeout"),
        client_send_timeout.0,
        SEC,
        HOUR,
    )?;
    let header_size = max_request_header_size.0;
    if !(1024..=1024 * 1024).contains(&header_size) {
        return err(
            p.key("max_request_header_size"),
            format!("{header_size} bytes: must be between 1KiB and 1MiB"),
        );
    }
    let mut seen = HashSet::new();
    let mut addrs = Vec::new();
    for (i, l) in listen.iter().enumerate() {
        let a = listen_addr(p.key("listen").index(i), l)?;
        if !seen.insert(a) {
            return err(p.key("listen").index(i), format!("{a} is listed twice"));
        }
        addrs.push(a);
    }
    let mut tls_out = Vec::new();
    for (i, t) in tls.into_iter().enumerate() {
        let tp = p.key("tls").index(i);
        let FileTls { listen, cert, key } = t;
        let a = listen_addr(tp.key("listen"), &listen)?;
        if !seen.insert(a) {
            return err(tp.key("listen"), format!("{a} is already a listener"));
        }
        let cert = pem_file(tp.key("cert"), base, &cert, "CERTIFICATE")?;
        let key = pem_file(tp.key("key"), base, &key, "PRIVATE KEY")?;
        tls_out.push(TlsListener {
            listen: a,
            cert,
            key,
        });
    }
    if addrs.is_empty() && tls_out.is_empty() {
        return err(p.key("listen"), "no listener: give at least one address");
    }
    if threads > 1024 {
        return err(p.key("threads"), "at most 1024 (0 = one per core)");
    }
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let mut nets = Vec::new();
    for (i, t) in trusted_proxies.iter().enumerate() {
        let net = match t.parse::<IpNet>() {
            Ok(n) => n,
            Err(_) => match t.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return err(
                        p.key("trusted_proxies").index(i),
                        format!("invalid network \"{t}\": expected a CIDR like \"10.0.0.0/8\" or an address"),
                    )
                }
            },
        };
        nets.push(net);
    }
    if client_max_body_size.0 == 0 {
        return err(p.key("client_max_body_size"), "must be greater than 0");
    }
    Ok(Server {
        listen: addrs,
        threads,
        grace_period: within(p.key("grace_period"), grace_period.0, Duration::ZERO, HOUR)?,
        client_max_body_size: client_max_body_size.0,
        trusted_proxies: nets,
        tls: tls_out,
        debug_headers,
        rate_limit_headers,
        watch_config,
        path_normalization,
        trust_forwarded_host,
        client_keepalive_timeout: keepalive,
        client_header_timeout: client_header_timeout.0,
        client_body_timeout: client_body_timeout.0,
        client_send_timeout: client_send_timeout.0,
        max_request_header_size: header_size,
        max_connections,
    })
}

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

/// A duration between `min` and `max`, both included: every duration in the file is bounded
/// at load, so no value can panic a timer or a rate computation later.
fn within(p: KeyPath, d: Duration, min: Duration, max: Duration) -> VResult<Duration> {
    if d < min || d > max {
        let f = humantime::format_duration;
        return err(
            p,
            format!(
                "{} is out of range: must be between {} and {}",
                f(d),
                f(min),
                f(max)
            ),
        );
    }
    Ok(d)
}

fn pem_file(p: KeyPath, base: &Path, file: &str, what: &str) -> VResult<PathBuf> {
    let path = base.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.contains("-----BEGIN ") && text.contains(what) => Ok(path),
        Ok(_) => err(p, format!("{} holds no PEM {what}", path.display())),
        Err(e) => err(p, format!("cannot read {}: {e}", path.display())),
    }
}

fn validate_admin(a: FileAdmin, p: &KeyPath, server: &Server) -> VResult<Admin> {
    let FileAdmin { listen, token } = a;
    let addr = listen_addr(p.key("listen"), &listen)?;
    let clash = server
        .listen
        .iter()
        .chain(server.tls.iter().map(|t| &t.listen))
        .any(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip() || l.ip().is_unspecified() || addr.ip().is_unspecified())
        });
    if clash {
        return err(
            p.key("listen"),
            format!(
                "{addr} overlaps a proxy listener; the admin endpoints must have their own port"
            ),
        );
    }
    if let Some(t) = &token {
        if t.trim().is_empty() {
            return err(
                p.key("token"),
                "empty token; remove the key or set a secret",
            );
        }
    }
    if !addr.ip().is_loopback() && token.is_none() {
        return err(
            p.key("listen"),
            format!(
                "{addr} is reachable from other hosts: set admin.token, or listen on 127.0.0.1"
            ),
        );
    }
    Ok(Admin {
        listen: addr,
        token,
    })
}

fn validate_log(l: FileLog, p: &KeyPath, base: &Path) -> VResult<Log> {
    let FileLog { level, access_log } = l;
    // A bare word is a target name to EnvFilter ("loud" = everything from target "loud"), so a
    // lone word must be a level; filters with `=` or `,` are checked by EnvFilter itself.
    let directive = level.contains('=') || level.contains(',');
    let bare_level = matches!(
        level.trim().to_ascii_lowercase().as_str(),
        "off" | "error" | "warn" | "info" | "debug" | "trace"
    );
    if !(bare_level || directive) || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return err(
            p.key("level"),
            format!("invalid level \"{level}\": expected error, warn, info, debug, trace or a filter like \"info,brace=debug\""),
        );
    }
    let access_log = match access_log.as_str() {
        "off" => AccessLog::Off,
        "stdout" => AccessLog::Stdout,
        "" => {
            return err(
                p.key("access_log"),
                "empty: use \"off\", \"stdout\" or a file path",
            )
        }
        path => AccessLog::File(base.join(path)),
    };
    Ok(Log { level, access_log })
}

fn validate_upstream(u: FileUpstream, p: &KeyPath) -> VResult<Upstream> {
    let FileUpstream {
        backends,
        connect_timeout,
        read_timeout,
        upgrade_idle_timeout,
        keepalive,
        balance,
        hash_key,
        backup,
        slow_start,
        panic_threshold,
        health_check,
        outlier,
        retry,
        circuit_breaker,
        max_in_flight,
    } = u;
    let balance = validate_balance(&balance, hash_key.as_deref(), p)?;
    if !(0.0..=1.0).contains(&panic_threshold) {
        return err(
            p.key("panic_threshold"),
            format!("{panic_threshold} is outside 0.0..=1.0"),
        );
    }
    let health_check = match health_check {
        Some(h) => Some(validate_health(h, &p.key("health_check"))?),
        None => None,
    };
    // Passive ejection is on without a table, with the table's defaults (nginx ejects on
    // failures by default too); `consecutive_failures = 0` turns it off.
    let outlier = validate_outlier(outlier.unwrap_or_default(), &p.key("outlier"))?;
    let retry = validate_retry(retry, &p.key("retry"))?;
    let circuit_breaker = match circuit_breaker {
        Some(b) => Some(validate_breaker(b, &p.key("circuit_breaker"))?),
        None => None,
    };
    if backends.is_empty() {
        return err(
            p.key("backends"),
            "no backends: give at least one \"host:port\"",
        );
    }
    let mut out = Vec::with_capacity(backends.len());
    let mut seen = HashSet::new();
    for (i, b) in backends.into_iter().enumerate() {
        let bp = p.key("backends").index(i);
        let (addr, weight, ap) = match b {
            FileBackend::Addr(a) => (a, 1, bp.clone()),
            FileBackend::Full(FileBackendFull { addr, weight }) => (addr, weight, bp.key("addr")),
        };
        let addr = socket_addr(ap, &addr)?;
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return err(
                bp.key("weight"),
                format!("weight {weight} is out of range 1..={MAX_WEIGHT}"),
            );
        }
        if !seen.insert(addr) {
            return err(
                bp,
                format!("backend {addr} is listed twice in this upstream"),
            );
        }
        out.push(BackendAddr {
            addr,
            weight: NonZeroU32::new(weight as u32).expect("checked above"),
        });
    }
    Ok(Upstream {
        backends: out,
        connect_timeout: within(p.key("connect_timeout"), connect_timeout.0, MS, 5 * MINUTE)?,
        read_timeout: within(p.key("read_timeout"), read_timeout.0, MS, HOUR)?,
        upgrade_idle_timeout: within(
            p.key("upgrade_idle_timeout"),
            upgrade_idle_timeout.0,
            SEC,
            24 * HOUR,
        )?,
        keepalive,
        balance,
        backup,
        slow_start: within(p.key("slow_start"), slow_start.0, Duration::ZERO, HOUR)?,
        panic_threshold,
        health_check,
        outlier,
        retry,
        circuit_breaker,
        max_in_flight,
    })
}

fn ratio(p: KeyPath, v: f64) -> VResult<f64> {
    if !(0.0..=1.0).contains(&v) {
        return err(p, format!("{v} is outside 0.0..=1.0"));
    }
    Ok(v)
}

fn validate_breaker(b: FileBreaker, p: &KeyPath) -> VResult<BreakerConfig> {
    let FileBreaker {
        consecutive_failures,
        failure_ratio,
        min_requests,
        window,
        slow_call_duration,
        slow_call_ratio,
        open_duration,
        max_open_duration,
        half_open_requests,
        failure_on,
        mode,
    } = b;
    let failure_ratio = ratio(p.key("failure_ratio"), failure_ratio)?;
    let slow_call_ratio = ratio(p.key("slow_call_ratio"), slow_call_ratio)?;
    if consecutive_failures == 0 && failure_ratio == 0.0 && slow_call_ratio == 0.0 {
        return err(p.clone(), "every trigger is off (consecutive_failures, failure_ratio and slow_call_ratio are 0): the breaker could never trip");
    }
    let window = within(p.key("window"), window.0, MS, HOUR)?;
    let open = within(p.key("open_duration"), open_duration.0, MS, DAY)?;
    within(p.key("max_open_duration"), max_open_duration.0, MS, DAY)?;
    within(p.key("slow_call_duration"), slow_call_duration.0, MS, HOUR)?;
    if max_open_duration.0 < open {
        return err(p.key("max_open_duration"), "must be at least open_duration");
    }
    if half_open_requests == 0 {
        return err(p.key("half_open_requests"), "must be at least 1");
    }
    let mut on = FailureOn::default();
    for (i, f) in failure_on.iter().enumerate() {
        match f.as_str() {
            "connect_error" => on.connect_error = true,
            "timeout" => on.timeout = true,
            "error" => on.error = true,
            "5xx" => on.http_5xx = true,
            other => {
                return err(
                    p.key("failure_on").index(i),
                    format!(
                    "unknown failure \"{other}\": expected connect_error, timeout, error or 5xx"
                ),
                )
            }
        }
    }
    let mode = match mode.as_str() {
        "enforce" => BreakerMode::Enforce,
        "shadow" => BreakerMode::Shadow,
        other => {
            return err(
                p.key("mode"),
                format!("unknown mode \"{other}\": expected enforce or shadow"),
            )
        }
    };
    Ok(BreakerConfig {
        consecutive_failures,
        failure_ratio,
        min_requests,
        window,
        slow_call_duration: slow_call_duration.0,
        slow_call_ratio,
        open_duration: open,
        max_open_duration: max_open_duration.0,
        half_open_requests,
        failure_on: on,
        mode,
    })
}

fn validate_rate_limit(r: FileRateLimit, p: &KeyPath) -> VResult<RateLimit> {
    let FileRateLimit {
        key,
        rate,
        per,
        burst,
        status,
        mode,
        max_keys,
    } = r;
    let header = |n: &str| -> VResult<String> {
        if http::HeaderName::from_bytes(n.as_bytes()).is_ok() {
            Ok(n.to_ascii_lowercase())
        } else {
            err(p.key("key"), format!("invalid header name \"{n}\""))
        }
    };
    let key = match key.as_str() {
        "client_ip" => LimitKey::ClientIp,
        "route" => LimitKey::Route,
        "path" => LimitKey::Path,
        k => match (k.strip_prefix("header:"), k.strip_prefix("client_ip+header:")) {
            (Some(n), _) => LimitKey::Header(header(n)?),
            (_, Some(n)) => LimitKey::ClientIpAndHeader(header(n)?),
            _ => {
                return err(
                    p.key("key"),
                    format!("invalid key \"{k}\": expected client_ip, header:NAME, route, path or client_ip+header:NAME"),
                )
            }
        },
    };
    if rate == 0 {
        return err(p.key("rate"), "must be at least 1");
    }
    let per = within(p.key("per"), per.0, MS, DAY)?;
    if !(1..=10_000_000).contains(&max_keys) {
        return err(p.key("max_keys"), "must be between 1 and 10000000");
    }
    if burst == 0 {
        return err(
            p.key("burst"),
            "must be at least 1: a bucket of 0 refuses everything",
        );
    }
    if !(400..=599).contains(&status) {
        return err(
            p.key("status"),
            format!("{status} is not a 4xx or 5xx status"),
        );
    }
    let shadow = match mode.as_str() {
        "enforce" => false,
        "shadow" => true,
        other => {
            return err(
                p.key("mode"),
                format!("unknown mode \"{other}\": expected enforce or shadow"),
            )
        }
    };
    if max_keys == 0 {
        return err(p.key("max_keys"), "must be at least 1");
    }
    Ok(RateLimit {
        key,
        rate,
        per,
        burst,
        status,
        shadow,
        max_keys,
    })
}

fn validate_balance(balance: &str, hash_key: Option<&str>, p: &KeyPath) -> VResult<Balance> {
    let b = match balance {
        "round_robin" => Balance::RoundRobin,
        "least_requests" => Balance::LeastRequests,
        "p2c" => Balance::P2c,
        "ewma" => Balance::Ewma,
        "random" => Balance::Random,
        "consistent_hash" => {
            let key = hash_key.unwrap_or("client_ip");
            let hk = match key {
                "client_ip" => HashKey::ClientIp,
                "path" => HashKey::Path,
                k => match k.split_once(':') {
                    Some(("header", n)) if http::HeaderName::from_bytes(n.as_bytes()).is_ok() => {
                        HashKey::Header(n.to_ascii_lowercase())
                    }
                    Some(("cookie", n)) if !n.is_empty() => HashKey::Cookie(n.to_owned()),
                    _ => {
                        return err(
                            p.key("hash_key"),
                            format!("invalid hash_key \"{k}\": expected client_ip, path, header:NAME or cookie:NAME"),
                        )
                    }
                },
            };
            return Ok(Balance::ConsistentHash(hk));
        }
        other => {
            return err(
                p.key("balance"),
                format!("unknown balance \"{other}\": expected ewma, round_robin, least_requests, p2c, random or consistent_hash"),
            )
        }
    };
    if hash_key.is_some() {
        return err(
            p.key("hash_key"),
            "hash_key applies only to balance = \"consistent_hash\"",
        );
    }
    Ok(b)
}

fn validate_health(h: FileHealthCheck, p: &KeyPath) -> VResult<HealthCheck> {
    let FileHealthCheck {
        kind,
        path,
        host,
        expect_status,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
    } = h;
    let kind = match kind.as_str() {
        "tcp" => CheckKind::Tcp,
        "http" => {
            if !path.starts_with('/') {
                return err(p.key("path"), format!("\"{path}\" must start with '/'"));
            }
            let expect = status_range(&expect_status).ok_or_else(|| {
                (
                    p.key("expect_status"),
                    format!("invalid status range \"{expect_status}\": expected e.g. \"200\" or \"200-399\" within 100-599"),
                )
            })?;
            CheckKind::Http { path, host, expect }
        }
        other => {
            return err(
                p.key("type"),
                format!("unknown check type \"{other}\": expected http or tcp"),
            )
        }
    };
    let interval = within(p.key("interval"), interval.0, MS, HOUR)?;
    let timeout = within(p.key("timeout"), timeout.0, MS, HOUR)?;
    if timeout > interval {
        return err(
            p.key("timeout"),
            format!(
                "timeout ({}) is longer than interval ({}): checks would overlap",
                super::units::Dur(timeout),
                super::units::Dur(interval)
            ),
        );
    }
    for (k, v) in [
        ("healthy_threshold", healthy_threshold),
        ("unhealthy_threshold", unhealthy_threshold),
    ] {
        if v == 0 {
            return err(p.key(k), "must be at least 1");
        }
    }
    Ok(HealthCheck {
        kind,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
    })
}

fn status_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v = s.trim().parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&a) && (100..=599).contains(&b) && a <= b).then_some((a, b))
}

fn validate_outlier(o: FileOutlier, p: &KeyPath) -> VResult<Option<Outlier>> {
    let FileOutlier {
        consecutive_failures,
        base_ejection,
        max_ejection,
        max_ejection_percent,
    } = o;
    if consecutive_failures == 0 {
        return Ok(None);
    }
    let base = within(p.key("base_ejection"), base_ejection.0, MS, DAY)?;
    within(p.key("max_ejection"), max_ejection.0, MS, DAY)?;
    if max_ejection.0 < base {
        return err(p.key("max_ejection"), "must be at least base_ejection");
    }
    if max_ejection_percent > 100 {
        return err(
            p.key("max_ejection_percent"),
            format!("{max_ejection_percent} is over 100"),
        );
    }
    Ok(Some(Outlier {
        consecutive_failures,
        base_ejection: base,
        max_ejection: max_ejection.0,
        max_ejection_percent,
    }))
}

fn validate_retry(r: FileRetry, p: &KeyPath) -> VResult<Retry> {
    let FileRetry {
        attempts,
        on,
        budget_percent,
        min_retries_per_second,
        backoff,
    } = r;
    if attempts > 10 {
        return err(p.key("attempts"), format!("{attempts} is over 10"));
    }
    let mut set = RetryOn::default();
    for (i, o) in on.iter().enumerate() {
        match o.as_str() {
            "connect_error" => set.connect_error = true,
            "timeout" => set.timeout = true,
            "error" => set.error = true,
            "502" => set.status_502 = true,
            "503" => set.status_503 = true,
            "504" => set.status_504 = true,
            other => {
                return err(
                    p.key("on").index(i),
                    format!("unknown retry condition \"{other}\": expected connect_error, timeout, error, 502, 503 or 504"),
                )
            }
        }
    }
    if budget_percent > 100 {
        return err(
            p.key("budget_percent"),
            format!("{budget_percent} is over 100"),
        );
    }
    Ok(Retry {
        attempts,
        on: set,
        budget_percent,
        min_retries_per_second,
        backoff: within(p.key("backoff"), backoff.0, Duration::ZERO, MINUTE)?,
    })
}

fn validate_route(
    r: FileRoute,
    p: &KeyPath,
    upstreams: &BTreeMap<String, Upstream>,
    limits: &BTreeMap<String, RateLimit>,
    store: bool,
) -> VResult<Route> {
    let FileRoute {
        name,
        hosts,
        path_prefix,
        upstream,
        strip_prefix,
        timeout,
        rate_limits,
        cache,
    } = r;
    let cache = match cache {
        Some(_) if !store => {
            return err(
                p.key("cache"),
                "route caching needs the shared store: add a [cache] section",
            );
        }
        Some(c) => Some(validate_route_cache(c, &p.key("cache"))?),
        None => None,
    };
    for (i, l) in rate_limits.iter().enumerate() {
        if !limits.contains_key(l) {
            let known: Vec<&str> = limits.keys().map(String::as_str).collect();
            return err(
                p.key("rate_limits").index(i),
                format!(
                    "route \"{name}\" names rate limit \"{l}\", which is not defined (defined: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
    if !name_ok(&name) {
        return err(p.key("name"), format!("invalid route name \"{name}\": use letters, digits, '_', '-', '.', starting with a letter or digit"));
    }
    let mut hs = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        hs.push(host_pattern(p.key("hosts").index(i), h)?);
    }
    if !path_prefix.starts_with('/') {
        return err(
            p.key("path_prefix"),
            format!("\"{path_prefix}\" must start with '/'"),
        );
    }
    if !upstreams.contains_key(&upstream) {
        let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        return err(
            p.key("upstream"),
            format!(
                "route \"{name}\" names upstream \"{upstream}\", which is not defined (defined: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        );
    }
    Ok(Route {
        name,
        hosts: hs,
        path_prefix,
        upstream,
        strip_prefix,
        timeout: within(p.key("timeout"), timeout.0, MS, DAY)?,
        rate_limits,
        cache,
    })
}

fn validate_route_cache(c: super::file::FileRouteCache, p: &KeyPath) -> VResult<RouteCache> {
    let super::file::FileRouteCache {
        default_ttl,
        max_ttl,
        stale_while_revalidate,
        stale_if_error,
        key_query,
        key_headers,
        lock_timeout,
        status_header,
        cache_set_cookie,
        heuristic,
    } = c;
    let max_ttl = within(p.key("max_ttl"), max_ttl.0, SEC, 365 * DAY)?;
    within(
        p.key("stale_while_revalidate"),
        stale_while_revalidate.0,
        Duration::ZERO,
        365 * DAY,
    )?;
    within(
        p.key("stale_if_error"),
        stale_if_error.0,
        Duration::ZERO,
        365 * DAY,
    )?;
    if default_ttl.0 > max_ttl {
        return err(p.key("default_ttl"), "is longer than max_ttl");
    }
    let key_query = match key_query {
        super::file::FileKeyQuery::Word(w) if w == "all" => KeyQuery::All,
        super::file::FileKeyQuery::Word(w) if w == "none" => KeyQuery::None,
        super::file::FileKeyQuery::Word(w) => {
            return err(
                p.key("key_query"),
                format!("\"{w}\": expected \"all\", \"none\" or a list of parameter names"),
            )
        }
        super::file::FileKeyQuery::Names(mut n) => {
            n.sort();
            n.dedup();
            KeyQuery::Only(n)
        }
    };
    let mut headers = Vec::new();
    for (i, h) in key_headers.iter().enumerate() {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return err(
                p.key("key_headers").index(i),
                format!("invalid header name \"{h}\""),
            );
        }
        headers.push(h.to_ascii_lowercase());
    }
    Ok(RouteCache {
        default_ttl: default_ttl.0,
        max_ttl,
        stale_while_revalidate: stale_while_revalidate.0,
        stale_if_error: stale_if_error.0,
        key_query,
        key_headers: headers,
        lock_timeout: within(p.key("lock_timeout"), lock_timeout.0, MS, MINUTE)?,
        status_header,
        cache_set_cookie,
        heuristic,
    })
}
