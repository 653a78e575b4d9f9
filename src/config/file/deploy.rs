//! The raw shapes of a route's deploy tools: `[route.canary]` (a share of the route's traffic
//! to another upstream, stepped up while it does as well as the baseline and pulled back when
//! it does worse) and `mirror` (copies of requests to a shadow upstream).

use super::*;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileCanary {
    /// The upstream that runs the new version.
    pub upstream: String,
    /// The canary's share of the route's requests at each step, in percent.
    #[serde(default)]
    pub steps: Option<Vec<u32>>,
    /// How long each step must stay healthy before the next.
    #[serde(default)]
    pub interval: Option<Dur>,
    /// The sliding window the analysis compares over.
    #[serde(default)]
    pub window: Option<Dur>,
    /// Canary requests in the window before it is judged.
    #[serde(default)]
    pub min_requests: Option<u32>,
    /// How many percentage points the canary's 5xx share may exceed the baseline's.
    #[serde(default)]
    pub error_margin_percent: Option<u32>,
    /// How many times the baseline's p99 the canary's may be.
    #[serde(default)]
    pub latency_ratio: Option<f64>,
    /// Requests with this header (`{ name, value }`) go to the canary while it runs.
    #[serde(default)]
    pub match_header: Option<FileMatch>,
    /// Requests with this cookie (`{ name, value }`) go to the canary while it runs.
    #[serde(default)]
    pub match_cookie: Option<FileMatch>,
    /// Keeps a client on one side: `client_ip`, `header:NAME` or `cookie:NAME`.
    #[serde(default)]
    pub sticky: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileMatch {
    pub name: String,
    pub value: String,
}

/// `mirror = { upstream = "shadow", percent = 10, max_body = "64KiB" }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileMirror {
    pub upstream: String,
    #[serde(default)]
    pub percent: Option<u32>,
    #[serde(default)]
    pub max_body: Option<Size>,
}
