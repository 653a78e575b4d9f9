//! What a new config changes compared with the running one: routes, upstreams, backends, rate
//! limits and settings (old → new), and which changes need a restart. Used by reloads (applied,
//! reported) and by `brace check --against` (only printed).

use crate::config::{
    AdminConfig, Config, LogConfig, RateLimitConfig, RouteConfig, ServerConfig, UpstreamConfig,
};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Plan {
    pub routes_added: Vec<String>,
    pub routes_removed: Vec<String>,
    pub routes_changed: Vec<Change>,
    pub upstreams_added: Vec<String>,
    pub upstreams_removed: Vec<String>,
    pub upstreams_changed: Vec<Change>,
    pub backends_added: Vec<String>,
    pub backends_removed: Vec<String>,
    pub rate_limits_added: Vec<String>,
    pub rate_limits_removed: Vec<String>,
    pub rate_limits_changed: Vec<Change>,
    /// Settings outside routes, upstreams and limits that change live.
    pub settings_changed: Vec<Change>,
    /// Changes that take effect only after a restart (or a graceful upgrade).
    pub restart_required: Vec<Change>,
}

pub use super::change::Change;

fn fields<T: std::fmt::Debug>(pairs: &[(&str, &T, &T)], prefix: &str, out: &mut Vec<Change>) {
    for (k, a, b) in pairs {
        let (a, b) = (format!("{a:?}"), format!("{b:?}"));
        if a != b {
            out.push(Change {
                key: format!("{prefix}{k}"),
                old: a,
                new: b,
            });
        }
    }
}

macro_rules! diff_fields {
    ($out:expr, $prefix:expr, $a:expr, $b:expr, [$($f:ident),* $(,)?]) => {{
        $( fields(&[(stringify!($f), &$a.$f, &$b.$f)], $prefix, $out); )*
    }};
}

fn keyed<T: PartialEq>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}

/// `[[server.tls]]`, by listener that stays: its certificates and client authentication
/// change live, including a renewed certificate in files whose names did not change (a
/// listener added or removed is `restart`'s).
fn tls_listeners(old: &ServerConfig, new: &ServerConfig, p: &mut Plan) {
    let find = |c: &ServerConfig, a| c.tls.iter().find(|t| t.listen == a).cloned();
    for t in &new.tls {
        let key = format!("server.tls {}", t.listen);
        match find(old, t.listen) {
            None => {}
            Some(o) if o != *t => {
                let (old, mut new) = (format!("{o:?}"), format!("{t:?}"));
                if old == new {
                    new.push_str(" (file contents changed)");
                }
                p.settings_changed.push(Change { key, old, new });
            }
            Some(_) => {}
        }
    }
}

impl Plan {
    pub fn between(old: &Config, new: &Config) -> Plan {
        let mut p = Plan::default();
        // Every section is compared below. The destructurings name every field without `..`,
        // so a field added to the config and forgotten here does not compile.
        let Config {
            server: _,
            admin: _,
            log: _,
            routes: _,
            upstreams: _,
            rate_limits: _,
            cache: _,
            tracing: _,
            cluster: _,
        } = new;

        let r_old: BTreeMap<String, _> = old.routes.iter().map(|r| (r.name.clone(), r)).collect();
        let r_new: BTreeMap<String, _> = new.routes.iter().map(|r| (r.name.clone(), r)).collect();
        let (a, r, c) = keyed(&r_old, &r_new);
        (p.routes_added, p.routes_removed) = (a, r);
        for name in c {
            let (x, y) = (r_old[&name], r_new[&name]);
            let RouteConfig {
                name: _,
                hosts: _,
                path_prefix: _,
                upstream: _,
                strip_prefix: _,
                timeout: _,
                rate_limits: _,
                cache: _,
                access: _,
                path_case_insensitive: _,
                refuse_path_parameters: _,
                priority: _,
                hedge: _,
            } = y;
            diff_fields!(
                &mut p.routes_changed,
                &format!("route.{name}."),
                x,
                y,
                [
                    hosts,
                    path_prefix,
                    upstream,
                    strip_prefix,
                    timeout,
                    rate_limits,
                    cache,
                    path_case_insensitive,
                    refuse_path_parameters,
                    priority,
                    hedge
                ]
            );
            if x.access != y.access {
                // Summed up: the users' hashes are not shown anywhere.
                let show = |a: &crate::config::AccessConfig| {
                    let users = a.basic_auth.as_ref().map_or(String::new(), |b| {
                        format!(", basic_auth {} users", b.users.len())
                    });
                    format!(
                        "allow {:?}, deny {:?}{users}, forward_authorization {}",
                        a.allow, a.deny, a.forward_authorization
                    )
                };
                p.routes_changed.push(Change {
                    key: format!("route.{name}.access"),
                    old: show(&x.access),
                    new: show(&y.access),
                });
            }
        }
        // Order matters too: the same routes in another order match the same way, so a pure
        // reordering is not reported.

        let (a, r, c) = keyed(&old.upstreams, &new.upstreams);
        (p.upstreams_added, p.upstreams_removed) = (a, r);
        for name in c {
            let (x, y) = (&old.upstreams[&name], &new.upstreams[&name]);
            let prefix = format!("upstream.{name}.");
            let addrs = |u: &crate::config::UpstreamConfig| {
                u.backends.iter().map(|b| b.addr).collect::<Vec<_>>()
            };
            for b in addrs(y).iter().filter(|b| !addrs(x).contains(b)) {
                p.backends_added.push(format!("{name}/{b}"));
            }
            for b in addrs(x).iter().filter(|b| !addrs(y).contains(b)) {
                p.backends_removed.push(format!("{name}/{b}"));
            }
            let UpstreamConfig {
                backends: _,
                dns: _,
                connect_timeout: _,
                read_timeout: _,
                upgrade_idle_timeout: _,
                keepalive: _,
                keepalive_timeout: _,
                balance: _,
                backup: _,
                slow_start: _,
                panic_threshold: _,
                health_check: _,
                outlier: _,
                retry: _,
                circuit_breaker: _,
                max_in_flight: _,
                tls: _,
                protocol: _,
                grpc_failure: _,
                adaptive: _,
            } = y;
            // `keepalive` needs a restart (`restart`).
            diff_fields!(
                &mut p.upstreams_changed,
                &prefix,
                x,
                y,
                [
                    backends,
                    dns,
                    connect_timeout,
                    read_timeout,
                    upgrade_idle_timeout,
                    keepalive_timeout,
                    balance,
                    backup,
                    slow_start,
                    panic_threshold,
                    health_check,
                    outlier,
                    retry,
                    circuit_breaker,
                    max_in_flight,
                    tls,
                    protocol,
                    grpc_failure,
                    adaptive
                ]
            );
        }

        let (a, r, c) = keyed(&old.rate_limits, &new.rate_limits);
        (p.rate_limits_added, p.rate_limits_removed) = (a, r);
        for name in c {
            let (x, y) = (&old.rate_limits[&name], &new.rate_limits[&name]);
            let RateLimitConfig {
                key: _,
                rate: _,
                per: _,
                burst: _,
                status: _,
                shadow: _,
                max_keys: _,
                scope: _,
                on_store_error: _,
                lease: _,
            } = y;
            diff_fields!(
                &mut p.rate_limits_changed,
                &format!("rate_limit.{name}."),
                x,
                y,
                [
                    key,
                    rate,
                    per,
                    burst,
                    status,
                    shadow,
                    max_keys,
                    scope,
                    on_store_error,
                    lease
                ]
            );
        }

        let (s, t) = (&old.server, &new.server);
        let ServerConfig {
            listen: _,
            threads: _,
            grace_period: _,
            client_max_body_size: _,
            trusted_proxies: _,
            tls: _,
            debug_headers: _,
            rate_limit_headers: _,
            watch_config: _,
            path_normalization: _,
            trust_forwarded_host: _,
            client_keepalive_timeout: _,
            client_header_timeout: _,
            client_body_timeout: _,
            client_send_timeout: _,
            max_request_header_size: _,
            max_connections: _,
            h2c: _,
            preserve_header_case: _,
        } = t;
        let AdminConfig {
            listen: _,
            token: _,
            hosts: _,
        } = &new.admin;
        let LogConfig {
            level: _,
            access_log: _,
            format: _,
        } = &new.log;
        fields(
            &[("cache", &old.cache, &new.cache)],
            "",
            &mut p.settings_changed,
        );
        diff_fields!(
            &mut p.settings_changed,
            "server.",
            s,
            t,
            [
                grace_period,
                client_max_body_size,
                trusted_proxies,
                debug_headers,
                rate_limit_headers,
                watch_config,
                path_normalization,
                trust_forwarded_host,
                client_keepalive_timeout,
                client_body_timeout,
                client_send_timeout,
                max_connections
            ]
        );
        // listen, threads, client_header_timeout, max_request_header_size, h2c,
        // preserve_header_case, TLS listeners added or removed, admin.listen, log.format,
        // [tracing], [cluster] and upstream keepalive need a restart: `restart` lists them.
        p.restart_required = super::restart::carry_over(old, &mut new.clone());
        tls_listeners(s, t, &mut p);
        diff_fields!(
            &mut p.settings_changed,
            "log.",
            old.log,
            new.log,
            [level, access_log]
        );
        diff_fields!(
            &mut p.settings_changed,
            "admin.",
            old.admin,
            new.admin,
            [hosts]
        );
        if old.admin.token != new.admin.token {
            p.settings_changed.push(Change {
                key: "admin.token".into(),
                old: "<redacted>".into(),
                new: "<redacted>".into(),
            });
        }
        p
    }

    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }

    /// The plan as text, one change per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let list = |out: &mut String, what: &str, items: &[String]| {
            for i in items {
                out.push_str(&format!("  {what} {i}\n"));
            }
        };
        list(&mut out, "+ route", &self.routes_added);
        list(&mut out, "- route", &self.routes_removed);
        list(&mut out, "+ upstream", &self.upstreams_added);
        list(&mut out, "- upstream", &self.upstreams_removed);
        list(&mut out, "+ backend", &self.backends_added);
        list(&mut out, "- backend", &self.backends_removed);
        list(&mut out, "+ rate_limit", &self.rate_limits_added);
        list(&mut out, "- rate_limit", &self.rate_limits_removed);
        for c in self
            .routes_changed
            .iter()
            .chain(&self.upstreams_changed)
            .chain(&self.rate_limits_changed)
            .chain(&self.settings_changed)
        {
            out.push_str(&format!("  ~ {}: {} -> {}\n", c.key, c.old, c.new));
        }
        for c in &self.restart_required {
            out.push_str(&format!(
                "  ! {}: {} -> {} (needs a restart; not applied by a reload)\n",
                c.key, c.old, c.new
            ));
        }
        if out.is_empty() {
            out.push_str("  no changes\n");
        }
        out
    }

    /// One line for the log: counts of each kind of change.
    pub fn summary(&self) -> String {
        format!(
            "routes +{} -{} ~{}; upstreams +{} -{} ~{}; backends +{} -{}; rate limits +{} -{} ~{}; settings ~{}; needing restart {}",
            self.routes_added.len(),
            self.routes_removed.len(),
            self.routes_changed.len(),
            self.upstreams_added.len(),
            self.upstreams_removed.len(),
            self.upstreams_changed.len(),
            self.backends_added.len(),
            self.backends_removed.len(),
            self.rate_limits_added.len(),
            self.rate_limits_removed.len(),
            self.rate_limits_changed.len(),
            self.settings_changed.len(),
            self.restart_required.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra_upstream: &str, extra_top: &str) -> Config {
        let text = format!(
            "{extra_top}[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n{extra_upstream}"
        );
        crate::config::parse(&text, "t", std::path::Path::new("."))
            .unwrap()
            .config
    }

    #[test]
    fn the_same_config_plans_nothing() {
        assert!(Plan::between(&config("", ""), &config("", "")).is_empty());
    }

    #[test]
    fn live_and_restart_only_changes_are_told_apart() {
        let p = Plan::between(
            &config("", ""),
            &config(
                "read_timeout = \"5s\"\nkeepalive = 8\n",
                "[server]\nthreads = 3\n",
            ),
        );
        let keys = |v: &[Change]| v.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&p.upstreams_changed), ["upstream.u.read_timeout"]);
        assert_eq!(
            keys(&p.restart_required),
            ["server.threads", "upstream.u.keepalive"]
        );
    }
}
