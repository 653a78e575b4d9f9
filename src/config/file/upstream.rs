//! The raw shape of `[upstream.NAME]` and its tables (health check, outlier, circuit breaker,
//! retry) and of a backend entry.

use super::*;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    #[serde(default)]
    pub backends: Vec<FileBackend>,
    /// Re-resolve host-name backends this often (and when their records' TTL ends, if sooner).
    #[serde(default)]
    pub resolve: Option<Dur>,
    /// The DNS server to ask (`IP` or `IP:PORT`); default: the system's (`/etc/resolv.conf`).
    #[serde(default)]
    pub resolver: Option<String>,
    /// An SRV name whose records give backends with their ports and weights.
    #[serde(default)]
    pub srv: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Dur,
    /// Each attempt's limit on the wait for the response header.
    #[serde(default)]
    pub first_byte_timeout: Option<Dur>,
    #[serde(default = "default_upgrade_idle")]
    pub upgrade_idle_timeout: Dur,
    #[serde(default = "default_keepalive")]
    pub keepalive: usize,
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: Dur,
    #[serde(default)]
    pub balance: BalanceName,
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default)]
    pub backup: Option<String>,
    #[serde(default = "zero_duration")]
    pub slow_start: Dur,
    #[serde(default)]
    pub panic_threshold: f64,
    #[serde(default)]
    pub health_check: Option<FileHealthCheck>,
    #[serde(default)]
    pub outlier: Option<FileOutlier>,
    #[serde(default)]
    pub retry: FileRetry,
    #[serde(default)]
    pub circuit_breaker: Option<FileBreaker>,
    #[serde(default)]
    pub max_in_flight: u32,
    /// `tls = true`, or a table of TLS settings.
    #[serde(default)]
    pub tls: Option<FileUpstreamTls>,
    /// What brace speaks to the backends in plaintext.
    #[serde(default)]
    pub protocol: FileProtocol,
    /// gRPC status codes (names, `"unavailable"`) that count as the backend's failure.
    #[serde(default = "default_grpc_failure")]
    pub grpc_failure: Vec<String>,
    /// `adaptive = false`, or a table of adaptive-concurrency settings.
    #[serde(default)]
    pub adaptive: Option<FileAdaptive>,
    /// `sticky = { cookie = "brace_srv", ttl = "1h" }`.
    #[serde(default)]
    pub sticky: Option<FileSticky>,
}

/// `[upstream.NAME] sticky = { cookie = "brace_srv", ttl = "1h" }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileSticky {
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub ttl: Option<Dur>,
}

/// `[[route]] priority`: who is shed first when the route's upstream is full (`adaptive`).
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FilePriority {
    Critical,
    #[default]
    Normal,
    Sheddable,
}

/// `[[route]] hedge = { after = "p95" | "50ms", max_extra_percent = 5 }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileHedge {
    pub after: String,
    #[serde(default)]
    pub max_extra_percent: Option<u32>,
}

/// `adaptive = false` (off) or `[upstream.NAME.adaptive]`. Not `#[serde(untagged)]`, whose
/// error ("did not match any variant") would hide which key of the table is wrong.
#[derive(Debug)]
pub enum FileAdaptive {
    On(bool),
    Options(FileAdaptiveOptions),
}

impl<'de> Deserialize<'de> for FileAdaptive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileAdaptive;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a table of adaptive concurrency settings")
            }
            fn visit_bool<E>(self, b: bool) -> Result<FileAdaptive, E> {
                Ok(FileAdaptive::On(b))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<FileAdaptive, A::Error> {
                let d = serde::de::value::MapAccessDeserializer::new(m);
                FileAdaptiveOptions::deserialize(d).map(FileAdaptive::Options)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileAdaptiveOptions {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub initial_limit: Option<u32>,
    #[serde(default)]
    pub min_limit: Option<u32>,
    #[serde(default)]
    pub max_limit: Option<u32>,
    #[serde(default)]
    pub window: Option<Dur>,
    #[serde(default)]
    pub queue_timeout: Option<Dur>,
    #[serde(default)]
    pub max_queue: Option<u32>,
}

fn yes() -> bool {
    true
}

/// `[upstream.NAME] protocol`.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileProtocol {
    #[default]
    Http1,
    /// Cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3).
    H2c,
}

/// The gRPC codes a server sends for its own failures (RFC-style names as in gRPC's
/// `statuscodes.md`). Not `deadline_exceeded` (a client sets the deadline) nor
/// `unimplemented` (a client picks the method): either would let a client eject a backend.
fn default_grpc_failure() -> Vec<String> {
    ["unknown", "internal", "unavailable", "data_loss"]
        .map(String::from)
        .to_vec()
}

/// `tls = true` (defaults) or `tls = { ca = "...", ... }` / `[upstream.NAME.tls]`.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum FileUpstreamTls {
    On(bool),
    Options(FileUpstreamTlsOptions),
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileUpstreamTlsOptions {
    pub sni: Option<String>,
    pub ca: Option<String>,
    pub verify: bool,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// The protocols offered by ALPN, most wanted first.
    pub alpn: Vec<String>,
}

impl Default for FileUpstreamTlsOptions {
    fn default() -> Self {
        FileUpstreamTlsOptions {
            sni: None,
            ca: None,
            verify: true,
            client_cert: None,
            client_key: None,
            alpn: vec!["http/1.1".into()],
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileBreaker {
    pub consecutive_failures: u32,
    pub failure_ratio: f64,
    pub min_requests: u32,
    pub window: Dur,
    pub slow_call_duration: Dur,
    pub slow_call_ratio: f64,
    pub open_duration: Dur,
    pub max_open_duration: Dur,
    pub half_open_requests: u32,
    pub failure_on: Vec<FailureClass>,
    pub mode: Mode,
}

impl Default for FileBreaker {
    fn default() -> Self {
        FileBreaker {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_requests: 20,
            window: Dur(Duration::from_secs(10)),
            slow_call_duration: Dur(Duration::from_secs(2)),
            slow_call_ratio: 0.0,
            open_duration: Dur(Duration::from_secs(10)),
            max_open_duration: Dur(Duration::from_secs(120)),
            half_open_requests: 3,
            failure_on: vec![
                FailureClass::ConnectError,
                FailureClass::Timeout,
                FailureClass::Http5xx,
            ],
            mode: Mode::default(),
        }
    }
}

/// A `failure_on` entry: which outcomes a breaker counts as failures.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    ConnectError,
    Timeout,
    Error,
    #[serde(rename = "5xx")]
    Http5xx,
}

/// A `retry.on` entry.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RetryCondition {
    ConnectError,
    Timeout,
    Error,
    #[serde(rename = "502")]
    Status502,
    #[serde(rename = "503")]
    Status503,
    #[serde(rename = "504")]
    Status504,
}

/// `balance`: the algorithm (`hash_key` is read with `consistent_hash`).
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BalanceName {
    /// Steers away from slow, failing and silent backends (`upstream::latency`).
    #[default]
    Ewma,
    RoundRobin,
    LeastRequests,
    P2c,
    Random,
    ConsistentHash,
}

/// A health check's `type`.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    #[default]
    Http,
    Tcp,
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileHealthCheck {
    #[serde(rename = "type")]
    pub kind: CheckType,
    pub path: String,
    pub host: Option<String>,
    pub expect_status: String,
    pub interval: Dur,
    pub timeout: Dur,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl Default for FileHealthCheck {
    fn default() -> Self {
        FileHealthCheck {
            kind: CheckType::default(),
            // `/`, as nginx Plus and HAProxy check by default: every app answers it, where a
            // `/healthz` that does not exist would mark every backend down.
            path: "/".into(),
            host: None,
            expect_status: "200-399".into(),
            interval: Dur(Duration::from_secs(2)),
            timeout: Dur(Duration::from_secs(1)),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileOutlier {
    pub consecutive_failures: u32,
    pub base_ejection: Dur,
    pub max_ejection: Dur,
    pub max_ejection_percent: u32,
    pub latency_ratio: f64,
    pub latency_ejection_after: Dur,
}

impl Default for FileOutlier {
    fn default() -> Self {
        FileOutlier {
            consecutive_failures: 5,
            base_ejection: Dur(Duration::from_secs(30)),
            max_ejection: Dur(Duration::from_secs(300)),
            latency_ratio: 2.5,
            latency_ejection_after: Dur(Duration::from_secs(30)),
            max_ejection_percent: 50,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileRetry {
    pub attempts: u32,
    pub on: Vec<RetryCondition>,
    pub budget_percent: u32,
    pub min_retries_per_second: u32,
    pub backoff: Dur,
    /// A POST or PATCH with an `Idempotency-Key` field may be retried like a GET.
    pub idempotency_key: bool,
    /// Statuses whose `Retry-After` pauses the backend.
    pub pause_on: Vec<PauseStatus>,
    /// The longest pause a `Retry-After` gets (0: none).
    pub max_pause: Dur,
    /// How much of a request body is kept for a retry.
    pub buffer_body: Size,
}

/// A `retry.pause_on` entry.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseStatus {
    #[serde(rename = "429")]
    Status429,
    #[serde(rename = "503")]
    Status503,
}

impl Default for FileRetry {
    fn default() -> Self {
        FileRetry {
            attempts: 1,
            // Like nginx's default `proxy_next_upstream error timeout`: a refused connection,
            // one that breaks (a backend that died mid-request) or a backend that said nothing
            // for `read_timeout`. Only idempotent requests are replayed after sending; all but
            // connect failures draw on the retry budget.
            on: vec![
                RetryCondition::ConnectError,
                RetryCondition::Error,
                RetryCondition::Timeout,
            ],
            budget_percent: 20,
            min_retries_per_second: 10,
            backoff: Dur(Duration::from_millis(10)),
            idempotency_key: false,
            // 429 is often about one client (a per-user limit): pausing the whole backend
            // for it would let one client take a backend from everyone. Opt in.
            pause_on: vec![PauseStatus::Status503],
            max_pause: Dur(Duration::from_secs(30)),
            buffer_body: Size(64 * 1024),
        }
    }
}

fn default_connect_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_read_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_upgrade_idle() -> Dur {
    Dur(Duration::from_secs(3600))
}
fn default_keepalive() -> usize {
    128
}
/// nginx's upstream `keepalive_timeout`.
fn default_keepalive_timeout() -> Dur {
    Dur(Duration::from_secs(60))
}

/// A backend is either `"host:port"` or `{ addr = "host:port", weight = 2 }`.
///
/// Deserialized by hand rather than `#[serde(untagged)]`, which would replace the precise
/// error from the table form (an unknown key, a bad weight) with "did not match any variant".
#[derive(Debug)]
pub enum FileBackend {
    Addr(String),
    Full(FileBackendFull),
}

impl<'de> Deserialize<'de> for FileBackend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileBackend;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"host:port\" or { addr = \"host:port\", weight = N }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileBackend, E> {
                Ok(FileBackend::Addr(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<FileBackend, A::Error> {
                FileBackendFull::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(FileBackend::Full)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileBackendFull {
    pub addr: String,
    #[serde(default = "default_weight")]
    pub weight: i64,
}

fn default_weight() -> i64 {
    1
}
