//! Host + path → `Arc<Route>`. Built once per snapshot; a request does one hash lookup (exact
//! host), a short scan of wildcard suffixes, and a scan of that host's prefixes, longest first.
//!
//! Matching follows nginx's server/location and Envoy's virtual-host/route order: the most
//! specific host group wins first (exact, then the longest `*.` wildcard, then routes without
//! `hosts`), and within that group the longest `path_prefix`. A request whose host group has
//! no matching prefix gets 404; it does not fall through to a less specific host.

use crate::config::{HostPattern, RouteConfig};
use crate::metrics::RouteStats;
use crate::upstream::pool::Pool;
use std::collections::HashMap;
use std::sync::Arc;

/// A route with its names resolved: the pool is an `Arc`, the metric handles are ready.
pub struct Route {
    pub name: String,
    pub path_prefix: String,
    pub strip_prefix: bool,
    /// `path_prefix` matches without regard to ASCII case (for backends that ignore it).
    pub path_case_insensitive: bool,
    /// A path with `;` parameters in any segment is refused (400).
    pub refuse_path_parameters: bool,
    /// Who is shed first when the pool is full (`upstream::queue`).
    pub priority: crate::config::Priority,
    /// Hedged requests (`proxy::hedge`); `None` sends none.
    pub hedge: Option<crate::config::hedge::HedgeConfig>,
    pub timeout: std::time::Duration,
    /// The whole wait for a response header (`proxy::deadline`); `None`: none.
    pub deadline: Option<std::time::Duration>,
    pub pool: Arc<Pool>,
    pub stats: RouteStats,
    /// Rate limits in the order the route names them.
    pub limits: Vec<crate::limit::RouteLimit>,
    /// This route's cache policy; `None` = this route does not cache.
    pub cache: Option<crate::config::RouteCacheConfig>,
    /// Cache metric handles, present with `cache`.
    pub cache_stats: Option<crate::cache::stats::RouteCacheStats>,
    /// `allow`/`deny`/`basic_auth`; `None` when the route has none.
    pub access: Option<Arc<crate::access::RouteAccess>>,
    /// A canary rollout to another upstream (`canary`); `None` when the route has none.
    pub canary: Option<RouteCanary>,
    /// Maintenance mode (`runtime::maintenance`): shared with the snapshot's map by route
    /// name, so the admin API flips it without a reload.
    pub maintenance: Arc<std::sync::atomic::AtomicBool>,
    /// Networks that still reach the backends in maintenance.
    pub maintenance_allow: Vec<ipnet::IpNet>,
    /// Fields set and removed on the request (`proxy::rules`).
    pub request_headers: crate::config::headers::HeaderRules,
    /// Fields set and removed on the answer (`proxy::rules`).
    pub response_headers: crate::config::headers::HeaderRules,
    /// Pages for brace's own 429, 502, 503, 504 on this route (`[server]`'s come after).
    pub error_pages: crate::config::pages::ErrorPages,
    /// CORS answered by brace (`cors`); `None` when the route leaves it to its backends.
    pub cors: Option<crate::cors::Cors>,
    /// Copies of requests to a shadow upstream (`mirror`); `None` when the route has none.
    pub mirror: Option<crate::mirror::Mirror>,
}

/// A route's canary: the canary's pool, the rollout that says how much it gets, and the
/// `brace_canary_requests_total` handles by side (`[baseline, canary]`) and result
/// (`[ok, failed]`).
pub struct RouteCanary {
    pub pool: Arc<Pool>,
    pub rollout: Arc<crate::canary::Rollout>,
    pub requests: [[prometheus::IntCounter; 2]; 2],
}

impl RouteCanary {
    /// One request of the route ended on `side`, answered `status` (0: not answered).
    pub fn record(
        &self,
        side: crate::canary::window::Side,
        status: u16,
        took: std::time::Duration,
    ) {
        if status == 0 {
            return; // the client left: nothing to judge either side by
        }
        let failed = status >= 500;
        self.requests[side as usize][usize::from(failed)].inc();
        self.rollout
            .window
            .record(side, failed, took, crate::clock::now_ms());
    }
}

/// Routes of one host group, longest prefix first.
#[derive(Default)]
struct Group(Vec<Arc<Route>>);

impl Group {
    fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.0.iter().find(|r| r.prefix_len(path).is_some())
    }
}

impl Route {
    /// How much of `path` this route's `path_prefix` covers, when it matches.
    pub fn prefix_len(&self, path: &str) -> Option<usize> {
        let prefix = self.path_prefix.as_bytes();
        let head = path.as_bytes().get(..prefix.len())?;
        let matched = if self.path_case_insensitive {
            head.eq_ignore_ascii_case(prefix)
        } else {
            head == prefix
        };
        matched.then_some(prefix.len())
    }
}

#[derive(Default)]
pub struct Router {
    exact: HashMap<String, Group>,
    /// (suffix such as ".example.org", group), longest suffix first.
    wildcard: Vec<(String, Group)>,
    any: Group,
}

impl Router {
    pub fn new(routes: &[(RouteConfig, Arc<Route>)]) -> Router {
        let mut r = Router::default();
        for (cfg, route) in routes {
            if cfg.hosts.is_empty() {
                r.any.0.push(route.clone());
            }
            for h in &cfg.hosts {
                match h {
                    HostPattern::Exact(name) => r
                        .exact
                        .entry(name.clone())
                        .or_default()
                        .0
                        .push(route.clone()),
                    HostPattern::Suffix(sfx) => {
                        match r.wildcard.iter_mut().find(|(s, _)| s == sfx) {
                            Some((_, g)) => g.0.push(route.clone()),
                            None => r.wildcard.push((sfx.clone(), Group(vec![route.clone()]))),
                        }
                    }
                }
            }
        }
        let by_prefix = |g: &mut Group| g.0.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        r.exact.values_mut().for_each(by_prefix);
        r.wildcard.iter_mut().for_each(|(_, g)| by_prefix(g));
        by_prefix(&mut r.any);
        r.wildcard
            .sort_by_key(|(sfx, _)| std::cmp::Reverse(sfx.len()));
        r
    }

    /// `host` must be lower-case and without a port (see [`normalize_host`]).
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        if let Some(g) = self.exact.get(host) {
            return g.find(path);
        }
        if let Some((_, g)) = self
            .wildcard
            .iter()
            .find(|(sfx, _)| host.len() > sfx.len() && host.ends_with(sfx.as_str()))
        {
            return g.find(path);
        }
        self.any.find(path)
    }
}

/// Lower-cases a Host value and drops its port (`API.example.com:8080` → `api.example.com`).
/// Returns a borrowed slice when nothing needs changing.
pub fn normalize_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let host = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop a port after them.
        match raw.find(']') {
            Some(i) => &raw[..=i],
            None => raw,
        }
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("API.Example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert!(matches!(
            normalize_host("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
