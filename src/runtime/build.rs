//! Config (+ the old snapshot) → new Snapshot, off the request path.
//!
//! Earned state survives a reload by identity, whatever else changed: a backend's health,
//! ejection, breaker and latency by its address (its weight is a setting), a pool's in-flight count and
//! retry budget by the pool's name, a limit's buckets by its name (when key and bucket size
//! are the same). A section that is unchanged is reused whole, as the same `Arc`.

use super::snapshot::{Snapshot, REFUSED, UNMATCHED};
use crate::cache::stats::RouteCacheStats;
use crate::config::{AccessLog, Loaded};
use crate::limit::Limiter;
use crate::limit::RouteLimit;
use crate::metrics::{ByLabel, Metrics};
use crate::route::{Route, Router};
use crate::upstream::pool::Pool;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a snapshot is built from: a config and the file it came from.
pub struct Input {
    pub config: Arc<crate::config::Config>,
    /// The file's hash, exported as `brace_config_info{hash}`.
    pub hash: String,
    /// The file's text, for `GET /api/config`.
    pub source: Arc<str>,
}

impl From<&Loaded> for Input {
    fn from(l: &Loaded) -> Input {
        Input {
            config: Arc::new(l.config.clone()),
            hash: l.hash.clone(),
            source: Arc::from(l.source.as_str()),
        }
    }
}

impl Input {
    /// The running snapshot's own config and file, to build again (new DNS answers).
    pub fn running(s: &Snapshot) -> Input {
        Input {
            config: s.config.clone(),
            hash: s.hash.clone(),
            source: s.source.clone(),
        }
    }
}

/// `env`: the fleet's store (global limits use it) and the DNS answers (pools add them).
pub fn build(
    input: Input,
    metrics: &Arc<Metrics>,
    env: &super::Env,
    old: Option<&Snapshot>,
) -> Snapshot {
    let cluster = env.cluster.as_ref();
    let config = input.config;
    let mut pools = BTreeMap::new();
    for (name, u) in &config.upstreams {
        let prev = old.and_then(|o| o.pools.get(name));
        let found = u
            .dns
            .as_ref()
            .map(|d| env.dns.backends(name, d, &u.backends))
            .unwrap_or_default();
        let pool = match prev {
            Some(p) if p.config == *u && p.resolved == found => p.clone(),
            _ => Arc::new(Pool::new(name, u, metrics, prev.map(|p| p.as_ref()), found)),
        };
        pools.insert(name.clone(), pool);
    }
    let mut limiters = BTreeMap::new();
    for (name, l) in &config.rate_limits {
        let limiter = match old.and_then(|o| o.limiters.get(name)) {
            Some(prev) if prev.config == *l => prev.clone(),
            // Other settings: a new limiter, with the buckets clients have drawn down when
            // they still mean the same.
            prev => Arc::new(Limiter::new(
                name,
                l,
                metrics,
                prev.map(|p| p.as_ref()),
                cluster,
            )),
        };
        limiters.insert(name.clone(), limiter);
    }
    let cache = config
        .cache
        .as_ref()
        .map(|c| match old.and_then(|o| o.cache.as_ref()) {
            // The store and its entries outlive a reload unless its size settings change;
            // then a new, empty cache replaces the old, which is freed.
            Some(prev) if prev.config == *c => prev.clone(),
            _ => Arc::new(crate::cache::Store::new(c, metrics)),
        });
    if let Some(o) = old {
        // A rollout that left the config leaves no share behind in the metrics.
        for route in o.rollouts.keys().filter(|r| {
            !config
                .routes
                .iter()
                .any(|c| &c.name == *r && c.canary.is_some())
        }) {
            let _ = metrics.deploy.percent.remove_label_values(&[route]);
        }
    }
    let mut maintenance = BTreeMap::new();
    for r in &config.routes {
        let before = old.and_then(|o| {
            let same = o
                .config
                .routes
                .iter()
                .any(|x| x.name == r.name && x.maintenance == r.maintenance);
            same.then(|| o.maintenance.get(&r.name).cloned()).flatten()
        });
        let flag =
            before.unwrap_or_else(|| Arc::new(std::sync::atomic::AtomicBool::new(r.maintenance)));
        maintenance.insert(r.name.clone(), flag);
    }
    let mut rollouts = BTreeMap::new();
    for r in &config.routes {
        let Some(c) = &r.canary else { continue };
        let rollout = match old.and_then(|o| o.rollouts.get(&r.name)) {
            // Where the rollout stands is earned: a reload that keeps it keeps its step.
            Some(prev) if prev.config == *c => prev.clone(),
            _ => Arc::new(crate::canary::Rollout::new(c, crate::clock::now_ms())),
        };
        rollouts.insert(r.name.clone(), rollout);
    }
    let routes: Vec<_> = config
        .routes
        .iter()
        .map(|r| {
            let route = Arc::new(Route {
                name: r.name.clone(),
                path_prefix: r.path_prefix.clone(),
                strip_prefix: r.strip_prefix,
                path_case_insensitive: r.path_case_insensitive,
                refuse_path_parameters: r.refuse_path_parameters,
                priority: r.priority,
                hedge: r.hedge.clone(),
                timeout: r.timeout,
                deadline: r.deadline,
                // Validation guarantees every route's upstream exists.
                pool: pools[&r.upstream].clone(),
                stats: metrics.route_stats(&r.name),
                limits: r
                    .rate_limits
                    .iter()
                    .map(|l| RouteLimit {
                        limiter: limiters[l].clone(),
                        decisions: ByLabel::new(&metrics.rate_limit_decisions_total, &[&r.name, l]),
                    })
                    .collect(),
                cache: r.cache.clone(),
                cache_stats: r
                    .cache
                    .as_ref()
                    .map(|_| RouteCacheStats::new(metrics, &r.name)),
                access: crate::access::RouteAccess::new(&r.name, &r.access, metrics),
                cors: r.cors.as_ref().map(crate::cors::Cors::new),
                error_pages: r.error_pages.clone(),
                request_headers: r.request_headers.clone(),
                response_headers: r.response_headers.clone(),
                maintenance: maintenance[&r.name].clone(),
                maintenance_allow: r.maintenance_allow.clone(),
                mirror: r.mirror.as_ref().map(|m| {
                    let results = &metrics.deploy.mirror_requests_total;
                    crate::mirror::Mirror::new(
                        m,
                        pools[&m.upstream].clone(),
                        ByLabel::new(results, &[&r.name, &m.upstream]),
                    )
                }),
                canary: r.canary.as_ref().map(|c| crate::route::RouteCanary {
                    pool: pools[&c.upstream].clone(),
                    rollout: rollouts[&r.name].clone(),
                    requests: ["baseline", "canary"].map(|side| {
                        ["ok", "failed"].map(|result| {
                            metrics
                                .deploy
                                .requests_total
                                .with_label_values(&[&r.name, side, result])
                        })
                    }),
                }),
            });
            (r.clone(), route)
        })
        .collect();
    Snapshot {
        router: Router::new(&routes),
        hash: input.hash,
        source: input.source,
        pools,
        limiters,
        rollouts,
        maintenance,
        cluster: cluster.cloned(),
        metrics: metrics.clone(),
        cache,
        rate_limit_headers: config.server.rate_limit_headers,
        trusted_proxies: config.server.trusted_proxies.clone(),
        client_max_body_size: config.server.client_max_body_size,
        access_log: config.log.access_log != AccessLog::Off,
        debug_headers: config.server.debug_headers,
        unmatched: metrics.route_stats(UNMATCHED),
        refused: metrics.route_stats(REFUSED),
        config,
    }
}

#[cfg(test)]
mod tests {
    //! Routing over a snapshot built from a config.
    use super::*;

    fn snapshot() -> Snapshot {
        let text = "[[route]]\nname = \"exact\"\nhosts = [\"api.example.com\"]\nupstream = \"u\"\n\
                    [[route]]\nname = \"exact_v2\"\nhosts = [\"api.example.com\"]\npath_prefix = \"/v2/\"\nupstream = \"u\"\n\
                    [[route]]\nname = \"wild\"\nhosts = [\"*.example.org\"]\nupstream = \"u\"\n\
                    [[route]]\nname = \"any\"\nupstream = \"u\"\n\
                    [upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n";
        let loaded = crate::config::parse(text, "t", std::path::Path::new(".")).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        build((&loaded).into(), &metrics, &Default::default(), None)
    }

    fn found(s: &Snapshot, host: &str, path: &str) -> String {
        let host = crate::route::normalize_host(host);
        s.router
            .find(&host, path)
            .map_or("-".into(), |r| r.name.clone())
    }

    #[test]
    fn the_most_specific_host_wins_then_the_longest_prefix() {
        let s = snapshot();
        assert_eq!(found(&s, "api.example.com", "/x"), "exact");
        assert_eq!(found(&s, "API.Example.com.:8080", "/v2/x"), "exact_v2");
        assert_eq!(found(&s, "a.b.example.org", "/"), "wild");
        // The wildcard needs a subdomain; the bare domain falls through to any host.
        assert_eq!(found(&s, "example.org", "/"), "any");
        assert_eq!(found(&s, "[::1]:8080", "/"), "any");
        assert_eq!(found(&s, "", "/"), "any");
    }

    fn snapshot_of(text: &str) -> Snapshot {
        let loaded = crate::config::parse(text, "t", std::path::Path::new(".")).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        build((&loaded).into(), &metrics, &Default::default(), None)
    }

    #[test]
    fn a_case_insensitive_prefix_matches_any_case_and_the_others_do_not() {
        let s = snapshot_of(
            "[[route]]\nname = \"ci\"\npath_prefix = \"/Docs/\"\npath_case_insensitive = true\nupstream = \"u\"\n\
             [[route]]\nname = \"cs\"\npath_prefix = \"/api/\"\nupstream = \"u\"\n\
             [[route]]\nname = \"rest\"\nupstream = \"u\"\n\
             [upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n",
        );
        assert_eq!(found(&s, "", "/docs/a"), "ci");
        assert_eq!(found(&s, "", "/DOCS/a"), "ci");
        assert_eq!(found(&s, "", "/API/x"), "rest");
        assert_eq!(found(&s, "", "/api/x"), "cs");
    }

    /// As nginx picks a server block by host and then a location in it: a host that has
    /// routes of its own never falls through to another host's (or any host's) routes.
    #[test]
    fn a_host_with_its_own_routes_does_not_fall_through_to_any_host() {
        let s = snapshot_of(
            "[[route]]\nname = \"shop\"\nhosts = [\"shop.test\"]\npath_prefix = \"/cart/\"\nupstream = \"u\"\n\
             [[route]]\nname = \"any\"\nupstream = \"u\"\n\
             [upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n",
        );
        assert_eq!(found(&s, "shop.test", "/cart/1"), "shop");
        assert_eq!(found(&s, "shop.test", "/other"), "-");
        assert_eq!(found(&s, "else.test", "/other"), "any");
    }
}
