//! Everything one request needs, immutable. A request pins one `Arc<Snapshot>` in `new_ctx`
//! and reads only from it, so it never sees half of two configs.

use crate::config::Config;
use crate::metrics::RouteStats;
use crate::route::Router;
use crate::upstream::pool::Pool;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Snapshot {
    pub config: Arc<Config>,
    /// Hash of the config file that built this snapshot.
    pub hash: String,
    /// The text of that file, for `GET /api/config`.
    pub source: Arc<str>,
    pub router: Router,
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub limiters: BTreeMap<String, Arc<crate::limit::Limiter>>,
    /// Maintenance flags by route name (`runtime::maintenance`; carried by a reload that
    /// leaves the route's `maintenance` unchanged).
    pub maintenance: BTreeMap<String, Arc<std::sync::atomic::AtomicBool>>,
    /// Canary rollouts by route name (carried by a reload that keeps `[route.canary]`).
    pub rollouts: BTreeMap<String, Arc<crate::canary::Rollout>>,
    /// The process's metrics (the same for every snapshot).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The shared response store, when `[cache]` is configured.
    pub cache: Option<Arc<crate::cache::Store>>,
    /// The fleet's shared store, when `[cluster]` is set (the same for every snapshot).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub rate_limit_headers: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub client_max_body_size: u64,
    pub access_log: bool,
    pub debug_headers: bool,
    /// Metric handles for requests that matched no route (`route="_unmatched"`).
    pub unmatched: RouteStats,
    /// Metric handles for requests refused before routing (`route="-"`).
    pub refused: RouteStats,
}

/// The `route` label for requests no route matched. Route names must start with a letter or
/// digit, so it cannot collide with one.
pub const UNMATCHED: &str = "_unmatched";
/// The route label of requests refused before routing.
pub const REFUSED: &str = "-";

impl Snapshot {
    /// True when `ip` is a proxy whose `X-Forwarded-*` headers are believed.
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}
