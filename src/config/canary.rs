//! The typed `[route.canary]` (`canary`).

use super::HashKey;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    pub upstream: String,
    /// Percent of the route's requests at each step: increasing, 1 to 100.
    pub steps: Vec<u32>,
    pub interval: Duration,
    pub window: Duration,
    pub min_requests: u32,
    pub error_margin_percent: u32,
    pub latency_ratio: f64,
    pub matching: Vec<Match>,
    /// Hash of this key picks the side (so a client stays on it as the share grows); `None`:
    /// each request draws.
    pub sticky: Option<HashKey>,
}

/// A request the operator sends to the canary while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    /// Header name (lower case) and value.
    Header(String, String),
    /// Cookie name and value.
    Cookie(String, String),
}

pub const DEFAULT_STEPS: [u32; 5] = [1, 5, 25, 50, 100];
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_MIN_REQUESTS: u32 = 20;
pub const DEFAULT_ERROR_MARGIN_PERCENT: u32 = 2;
pub const DEFAULT_LATENCY_RATIO: f64 = 2.0;
/// The longest window the analysis keeps (one bucket a second).
pub const MAX_WINDOW_SECS: u64 = 600;
