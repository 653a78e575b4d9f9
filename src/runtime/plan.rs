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

/// One field, compared as a typed value; shown by its `Debug` form when it differs.
fn field<T: PartialEq + std::fmt::Debug>(out: &mut Vec<Change>, key: String, old: &T, new: &T) {
    if old != new {
        out.push(Change {
            key,
            old: format!("{old:?}"),
            new: format!("{new:?}"),
        });
    }
}

/// Compares two values of a config struct field by field. Every field is listed: `live`
/// ones are diffed into `$out` under `$prefix`, `apart` ones are compared elsewhere (by
/// `restart`, or shown specially). The destructuring has no `..`: a field added to the
/// struct and not listed does not compile, so none is left out of the plan unseen.
macro_rules! compare {
    ($ty:ident, $old:expr, $new:expr, $prefix:expr, $out:expr,
     live [$($f:ident),* $(,)?], apart [$($g:ident),* $(,)?]) => {{
        let $ty { $($f: _,)* $($g: _,)* } = $new;
        $( field($out, format!("{}{}", $prefix, stringify!($f)), &$old.$f, &$new.$f); )*
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
        // Every section is compared: a section added to `Config` and not listed here does not
        // compile.
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
        routes(old, new, &mut p);
        upstreams(old, new, &mut p);
        rate_limits(old, new, &mut p);
        settings(old, new, &mut p);
        // `[tracing]`, `[cluster]`, listeners and the other restart-only keys.
        p.restart_required = super::restart::carry_over(old, &mut new.clone());
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

/// Routes by name: added, removed, and each changed field. A pure reordering is not
/// reported (the same routes match the same way).
fn routes(old: &Config, new: &Config, p: &mut Plan) {
    let r_old: BTreeMap<String, _> = old.routes.iter().map(|r| (r.name.clone(), r)).collect();
    let r_new: BTreeMap<String, _> = new.routes.iter().map(|r| (r.name.clone(), r)).collect();
    let (a, r, c) = keyed(&r_old, &r_new);
    (p.routes_added, p.routes_removed) = (a, r);
    for name in c {
        let (x, y) = (r_old[&name], r_new[&name]);
        compare!(RouteConfig, x, y, format!("route.{name}."), &mut p.routes_changed,
            live [hosts, path_prefix, upstream, strip_prefix, timeout, rate_limits, cache,
                  path_case_insensitive, refuse_path_parameters, priority, hedge, canary, mirror, deadline, cors, error_pages,
                  maintenance, maintenance_allow, request_headers, response_headers],
            apart [name, access]);
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
}

/// Upstreams by name, their backends by address, and each changed field (`keepalive` is
/// restart-only: `restart`).
fn upstreams(old: &Config, new: &Config, p: &mut Plan) {
    let (a, r, c) = keyed(&old.upstreams, &new.upstreams);
    (p.upstreams_added, p.upstreams_removed) = (a, r);
    for name in c {
        let (x, y) = (&old.upstreams[&name], &new.upstreams[&name]);
        let addrs = |u: &crate::config::UpstreamConfig| {
            u.backends.iter().map(|b| b.addr).collect::<Vec<_>>()
        };
        for b in addrs(y).iter().filter(|b| !addrs(x).contains(b)) {
            p.backends_added.push(format!("{name}/{b}"));
        }
        for b in addrs(x).iter().filter(|b| !addrs(y).contains(b)) {
            p.backends_removed.push(format!("{name}/{b}"));
        }
        compare!(UpstreamConfig, x, y, format!("upstream.{name}."), &mut p.upstreams_changed,
            live [backends, dns, connect_timeout, read_timeout, first_byte_timeout, upgrade_idle_timeout,
                  keepalive_timeout, balance, backup, slow_start, panic_threshold, health_check,
                  outlier, retry, circuit_breaker, max_in_flight, tls, protocol, grpc_failure,
                  adaptive, sticky],
            apart [keepalive]);
    }
}

fn rate_limits(old: &Config, new: &Config, p: &mut Plan) {
    let (a, r, c) = keyed(&old.rate_limits, &new.rate_limits);
    (p.rate_limits_added, p.rate_limits_removed) = (a, r);
    for name in c {
        let (x, y) = (&old.rate_limits[&name], &new.rate_limits[&name]);
        compare!(RateLimitConfig, x, y, format!("rate_limit.{name}."), &mut p.rate_limits_changed,
            live [key, rate, per, burst, status, shadow, max_keys, scope, on_store_error, lease],
            apart []);
    }
}

/// `[server]`, `[admin]`, `[log]` and `[cache]` keys that change live.
fn settings(old: &Config, new: &Config, p: &mut Plan) {
    let out = &mut p.settings_changed;
    field(out, "cache".into(), &old.cache, &new.cache);
    compare!(ServerConfig, old.server, new.server, "server.", out,
        live [grace_period, client_max_body_size, trusted_proxies, debug_headers,
              rate_limit_headers, watch_config, path_normalization, trust_forwarded_host,
              client_keepalive_timeout, client_body_timeout, client_send_timeout,
              max_connections, error_pages, https_redirect, hsts],
        apart [listen, threads, tls, client_header_timeout, max_request_header_size, h2c,
               preserve_header_case]);
    tls_listeners(&old.server, &new.server, p);
    let out = &mut p.settings_changed;
    compare!(LogConfig, old.log, new.log, "log.", out,
        live [level, access_log], apart [format]);
    compare!(AdminConfig, old.admin, new.admin, "admin.", out,
        live [hosts], apart [listen, token]);
    if old.admin.token != new.admin.token {
        out.push(Change {
            key: "admin.token".into(),
            old: "<redacted>".into(),
            new: "<redacted>".into(),
        });
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

    fn keys(v: &[Change]) -> Vec<String> {
        v.iter().map(|c| c.key.clone()).collect()
    }

    #[test]
    fn backends_are_listed_by_address_and_weights_as_a_field() {
        let one = "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\n";
        let parse = |t: &str| {
            crate::config::parse(t, "t", std::path::Path::new("."))
                .unwrap()
                .config
        };
        let old = parse(&format!(
            "{one}backends = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n"
        ));
        let new = parse(&format!(
            "{one}backends = [{{ addr = \"127.0.0.1:1\", weight = 5 }}, \"127.0.0.1:3\"]\n"
        ));
        let p = Plan::between(&old, &new);
        assert_eq!(p.backends_added, ["u/127.0.0.1:3"]);
        assert_eq!(p.backends_removed, ["u/127.0.0.1:2"]);
        assert_eq!(keys(&p.upstreams_changed), ["upstream.u.backends"]);
    }

    #[test]
    fn route_fields_and_the_admin_token_are_diffed_the_token_redacted() {
        let old = config("", "[admin]\ntoken = \"a\"\n");
        let mut new = config("", "[admin]\ntoken = \"b\"\n");
        new.routes[0].hedge = Some(crate::config::hedge::HedgeConfig {
            after: crate::config::hedge::HedgeAfter::Percentile(950),
            max_extra_percent: 5,
        });
        let p = Plan::between(&old, &new);
        assert_eq!(keys(&p.routes_changed), ["route.r.hedge"]);
        let token = &p.settings_changed[0];
        assert_eq!(token.key, "admin.token");
        assert!(token.old == "<redacted>" && token.new == "<redacted>");
    }

    #[test]
    fn routes_in_another_order_plan_nothing() {
        let two = |a: &str, b: &str| {
            let t = format!(
                "[[route]]\nname = \"{a}\"\npath_prefix = \"/{a}/\"\nupstream = \"u\"\n\
                 [[route]]\nname = \"{b}\"\npath_prefix = \"/{b}/\"\nupstream = \"u\"\n\
                 [upstream.u]\nbackends = [\"127.0.0.1:1\"]\n"
            );
            crate::config::parse(&t, "t", std::path::Path::new("."))
                .unwrap()
                .config
        };
        assert!(Plan::between(&two("x", "y"), &two("y", "x")).is_empty());
    }
}
