//! The typed tables that keep a pool standing when backends fail: active health checks,
//! outlier ejection and retries (`[upstream.NAME.health_check]`, `.outlier`, `.retry`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckConfig {
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
pub struct OutlierConfig {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejection_percent: u32,
    /// A backend this many times slower than its peers' median is slow (0 = off).
    pub latency_ratio: f64,
    /// Slow for this long: ejected.
    pub latency_ejection_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Extra tries after the first.
    pub attempts: u32,
    pub on: RetryOn,
    pub budget_percent: u32,
    pub min_retries_per_second: u32,
    pub backoff: Duration,
    /// A POST or PATCH with an `Idempotency-Key` field may be retried like a GET.
    pub idempotency_key: bool,
    /// A 503 (and a 429) whose `Retry-After` pauses the backend.
    pub pause_on_503: bool,
    pub pause_on_429: bool,
    /// The longest pause a `Retry-After` gets; zero: `Retry-After` is not honoured.
    pub max_pause: Duration,
    /// Bytes of a request body kept for a retry; a longer body is not replayed.
    pub buffer_body: u64,
}

/// The largest `retry.buffer_body`: a request's body is held in memory that long.
pub const MAX_BUFFER_BODY: u64 = 8 * 1024 * 1024;

impl RetryConfig {
    /// True when a `status` answer's `Retry-After` pauses its backend.
    pub fn pauses_on(&self, status: u16) -> bool {
        !self.max_pause.is_zero()
            && match status {
                503 => self.pause_on_503,
                429 => self.pause_on_429,
                _ => false,
            }
    }
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
