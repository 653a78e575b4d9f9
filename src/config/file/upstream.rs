//! The raw shape of `[upstream.NAME]` and its tables (health check, outlier, circuit breaker,
//! retry) and of a backend entry.

use super::*;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub backends: Vec<FileBackend>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Dur,
    #[serde(default = "default_upgrade_idle")]
    pub upgrade_idle_timeout: Dur,
    #[serde(default = "default_keepalive")]
    pub keepalive: usize,
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
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileBreaker {
    #[serde(default = "default_five")]
    pub consecutive_failures: u32,
    #[serde(default = "default_failure_ratio")]
    pub failure_ratio: f64,
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    #[serde(default = "default_window")]
    pub window: Dur,
    #[serde(default = "default_slow_call")]
    pub slow_call_duration: Dur,
    #[serde(default)]
    pub slow_call_ratio: f64,
    #[serde(default = "default_open")]
    pub open_duration: Dur,
    #[serde(default = "default_max_open")]
    pub max_open_duration: Dur,
    #[serde(default = "default_three")]
    pub half_open_requests: u32,
    #[serde(default = "default_failure_on")]
    pub failure_on: Vec<FailureClass>,
    #[serde(default)]
    pub mode: Mode,
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

fn default_failure_ratio() -> f64 {
    0.5
}
fn default_min_requests() -> u32 {
    20
}
fn default_window() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_slow_call() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_open() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_max_open() -> Dur {
    Dur(Duration::from_secs(120))
}
fn default_failure_on() -> Vec<FailureClass> {
    vec![
        FailureClass::ConnectError,
        FailureClass::Timeout,
        FailureClass::Http5xx,
    ]
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheck {
    #[serde(rename = "type", default)]
    pub kind: CheckType,
    #[serde(default = "default_hc_path")]
    pub path: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_hc_status")]
    pub expect_status: String,
    #[serde(default = "default_hc_interval")]
    pub interval: Dur,
    #[serde(default = "default_hc_timeout")]
    pub timeout: Dur,
    #[serde(default = "default_two")]
    pub healthy_threshold: u32,
    #[serde(default = "default_three")]
    pub unhealthy_threshold: u32,
}

/// `/`, as nginx Plus and HAProxy check by default: every app answers it, where a
/// `/healthz` that does not exist would mark every backend down.
fn default_hc_path() -> String {
    "/".into()
}
fn default_hc_status() -> String {
    "200-399".into()
}
fn default_hc_interval() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_hc_timeout() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_two() -> u32 {
    2
}
fn default_three() -> u32 {
    3
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileOutlier {
    #[serde(default = "default_five")]
    pub consecutive_failures: u32,
    #[serde(default = "default_base_ejection")]
    pub base_ejection: Dur,
    #[serde(default = "default_max_ejection")]
    pub max_ejection: Dur,
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
}

impl Default for FileOutlier {
    fn default() -> Self {
        FileOutlier {
            consecutive_failures: default_five(),
            base_ejection: default_base_ejection(),
            max_ejection: default_max_ejection(),
            max_ejection_percent: default_max_ejection_percent(),
        }
    }
}

fn default_five() -> u32 {
    5
}
fn default_base_ejection() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_max_ejection() -> Dur {
    Dur(Duration::from_secs(300))
}
fn default_max_ejection_percent() -> u32 {
    50
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileRetry {
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_retry_on")]
    pub on: Vec<RetryCondition>,
    #[serde(default = "default_budget_percent")]
    pub budget_percent: u32,
    #[serde(default = "default_min_retries")]
    pub min_retries_per_second: u32,
    #[serde(default = "default_backoff")]
    pub backoff: Dur,
}

impl Default for FileRetry {
    fn default() -> Self {
        FileRetry {
            attempts: default_attempts(),
            on: default_retry_on(),
            budget_percent: default_budget_percent(),
            min_retries_per_second: default_min_retries(),
            backoff: default_backoff(),
        }
    }
}

fn default_attempts() -> u32 {
    1
}
/// Like nginx's default `proxy_next_upstream error timeout`: a refused connection, one that
/// breaks (a backend that died mid-request) or a backend that said nothing for `read_timeout`.
/// Only idempotent requests are replayed after sending; all but connect failures draw on the
/// retry budget.
fn default_retry_on() -> Vec<RetryCondition> {
    vec![
        RetryCondition::ConnectError,
        RetryCondition::Error,
        RetryCondition::Timeout,
    ]
}
fn default_budget_percent() -> u32 {
    20
}
fn default_min_retries() -> u32 {
    10
}
fn default_backoff() -> Dur {
    Dur(Duration::from_millis(10))
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
