//! Raw file structs → typed [`Config`]: every value parsed into a type that cannot hold a bad
//! one, every cross-reference checked. Errors carry the key path (`upstream.api.backends[1]`);
//! the loader turns that path into a line and column. The checks are split by section:
//! `server` (`[server]`, `[admin]`, `[log]`), `upstream` (`[upstream.NAME]` and its tables),
//! `route` (`[[route]]`, `[route.cache]`, `[rate_limit.NAME]`); shared helpers live here.

mod adaptive;
mod canary;
mod cors;
mod hedge;
mod resilience;
mod route;
mod server;
mod sticky;
mod upstream;

use route::{validate_rate_limit, validate_route};
use server::{validate_admin, validate_cluster, validate_log, validate_server, validate_tracing};
use upstream::validate_upstream;

use super::model::*;
use super::KeyPath;
use crate::config::file::*;
use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

mod headers;
mod net;
mod pages;
mod pem;
#[cfg(test)]
mod tests_support;
use net::networks;
use pem::{cert_key, pem_certs};

type VResult<T> = Result<T, (KeyPath, String)>;

fn err<T>(path: KeyPath, msg: impl Into<String>) -> VResult<T> {
    Err((path, msg.into()))
}

fn name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn socket_addr(path: KeyPath, s: &str) -> VResult<SocketAddr> {
    let a = any_socket_addr(path.clone(), s)?;
    if a.port() == 0 {
        return err(
            path,
            format!("\"{s}\": port 0 is not a port a backend listens on"),
        );
    }
    Ok(a)
}

fn any_socket_addr(path: KeyPath, s: &str) -> VResult<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if !s.contains(':') {
        return err(
            path,
            format!("invalid address \"{s}\": expected \"host:port\""),
        );
    }
    match s.to_socket_addrs() {
        Ok(mut it) => match it.next() {
            Some(a) => Ok(a),
            None => err(path, format!("address \"{s}\" resolved to nothing")),
        },
        Err(e) => err(path, format!("invalid address \"{s}\": {e}")),
    }
}

fn listen_addr(path: KeyPath, s: &str) -> VResult<SocketAddr> {
    s.parse().or_else(|_| {
        err(
            path,
            format!(
                "invalid listen address \"{s}\": expected \"ip:port\", e.g. \"127.0.0.1:8080\""
            ),
        )
    })
}

fn host_pattern(path: KeyPath, h: &str) -> VResult<HostPattern> {
    let h = h.trim().to_ascii_lowercase();
    let (suffix, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return err(
            path,
            format!("invalid host \"{h}\": expected a name like \"api.example.com\" or \"*.example.org\" (no port)"),
        );
    }
    Ok(if suffix {
        HostPattern::Suffix(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

impl Config {
    /// Validates a parsed file. `base` is the directory relative paths (TLS files) start from.
    pub fn from_file(f: FileConfig, base: &Path) -> VResult<Config> {
        let FileConfig {
            server,
            admin,
            log,
            route,
            upstream,
            rate_limit,
            cache,
            tracing,
            cluster,
        } = f;
        let cache = match cache {
            Some(c) => {
                let crate::config::file::FileCache {
                    max_size,
                    max_object_size,
                } = c;
                let p = KeyPath::root().key("cache");
                if max_size.0 == 0 {
                    return err(p.key("max_size"), "must be greater than 0");
                }
                let max_object_size = max_object_size.unwrap_or(crate::config::units::Size(
                    crate::config::file::DEFAULT_CACHE_OBJECT.min(max_size.0),
                ));
                if max_object_size.0 == 0 || max_object_size.0 > max_size.0 {
                    return err(
                        p.key("max_object_size"),
                        "must be greater than 0 and at most max_size",
                    );
                }
                if max_object_size.0 > u64::from(u32::MAX) {
                    return err(p.key("max_object_size"), "at most 4GiB");
                }
                Some(CacheConfig {
                    max_size: max_size.0,
                    max_object_size: max_object_size.0,
                })
            }
            None => None,
        };
        let root = KeyPath::root();

        let server = validate_server(server, &root.key("server"), base)?;
        let admin = validate_admin(admin, &root.key("admin"), &server)?;
        let log = validate_log(log, &root.key("log"), base)?;
        let tracing = tracing
            .map(|t| validate_tracing(t, &root.key("tracing")))
            .transpose()?;
        let cluster = cluster
            .map(|c| validate_cluster(c, &root.key("cluster")))
            .transpose()?;

        let mut upstreams = BTreeMap::new();
        for (name, u) in upstream {
            let p = root.key("upstream").key(&name);
            if !name_ok(&name) {
                return err(p, format!("invalid upstream name \"{name}\": use letters, digits, '_', '-', '.', starting with a letter or digit"));
            }
            upstreams.insert(name, validate_upstream(u, &p, base)?);
        }

        for (name, u) in &upstreams {
            if let Some(b) = &u.backup {
                let p = root.key("upstream").key(name).key("backup");
                if b == name {
                    return err(p, "an upstream cannot be its own backup");
                }
                match upstreams.get(b) {
                    None => return err(p, format!("backup upstream \"{b}\" is not defined")),
                    Some(bu) if bu.backup.is_some() => {
                        return err(p, format!("backup upstream \"{b}\" has a backup of its own; only one level is supported"))
                    }
                    Some(_) => {}
                }
            }
        }

        let mut rate_limits = BTreeMap::new();
        for (name, r) in rate_limit {
            let p = root.key("rate_limit").key(&name);
            if !name_ok(&name) {
                return err(p, format!("invalid rate limit name \"{name}\""));
            }
            let r = validate_rate_limit(r, &p)?;
            if r.scope == crate::config::Scope::Global && cluster.is_none() {
                return err(
                    p.key("scope"),
                    "\"global\" needs a [cluster] section naming the shared Redis",
                );
            }
            rate_limits.insert(name, r);
        }

        let mut routes = Vec::with_capacity(route.len());
        let mut names = HashSet::new();
        let mut places = HashSet::new();
        for (i, r) in route.into_iter().enumerate() {
            let p = root.key("route").index(i);
            let r = validate_route(r, &p, &upstreams, &rate_limits, cache.is_some(), base)?;
            if !names.insert(r.name.clone()) {
                return err(
                    p.key("name"),
                    format!("duplicate route name \"{}\"", r.name),
                );
            }
            let hosts: Vec<Option<&HostPattern>> = if r.hosts.is_empty() {
                vec![None]
            } else {
                r.hosts.iter().map(Some).collect()
            };
            for h in hosts {
                if !places.insert((h.cloned(), r.path_prefix.clone())) {
                    return err(
                        p.key("path_prefix"),
                        format!(
                            "route \"{}\" repeats host {} with path_prefix \"{}\" of an earlier route; the match would be ambiguous",
                            r.name,
                            h.map(|h| format!("{h:?}")).unwrap_or_else(|| "(any)".into()),
                            r.path_prefix
                        ),
                    );
                }
            }
            routes.push(r);
        }
        if routes.is_empty() {
            return err(
                root.key("route"),
                "no [[route]] defined: brace would answer 404 to everything",
            );
        }

        Ok(Config {
            server,
            admin,
            log,
            routes,
            upstreams,
            rate_limits,
            cache,
            tracing,
            cluster,
        })
    }
}

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

/// A duration between `min` and `max`, both included: every duration in the file is bounded
/// at load, so no value can panic a timer or a rate computation later.
fn within(p: KeyPath, d: Duration, min: Duration, max: Duration) -> VResult<Duration> {
    if d < min || d > max {
        let f = humantime::format_duration;
        return err(
            p,
            format!(
                "{} is out of range: must be between {} and {}",
                f(d),
                f(min),
                f(max)
            ),
        );
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const BASE: &str =
        "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n";

    fn error(text: &str) -> String {
        match parse(text, "t.toml", Path::new(".")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_bad_value_is_named_with_its_key_path_and_line() {
        for (text, want) in [
            (
                format!("{BASE}balance = \"fastest\"\n"),
                "t.toml:6:11: upstream.u.balance: unknown variant `fastest`, expected one of `ewma`",
            ),
            (
                format!("{BASE}connect_timeout = \"0s\"\n"),
                "upstream.u.connect_timeout: 0s is out of range",
            ),
            (
                format!("{BASE}[upstream.u.outlier]\nmax_ejection_percent = 101\n"),
                "upstream.u.outlier.max_ejection_percent: 101 is over 100",
            ),
            (
                format!("[server]\nmax_connections = 0\n{BASE}"),
                "server.max_connections: must be between 1 and 1000000",
            ),
            (
                "[[route]]\nname = \"r\"\nupstream = \"nope\"\n".to_string(),
                "route[0].upstream",
            ),
            (
                format!("{BASE}[upstream.u.retry]\non = [\"500\"]\n"),
                "upstream.u.retry.on[0]: unknown variant `500`, expected one of",
            ),
            (format!("{BASE}lisen = 1\n"), "unknown field `lisen`"),
            (
                format!("[log]\nformat = \"xml\"\n{BASE}"),
                "t.toml:2:10: log.format: unknown variant `xml`, expected `text` or `json`",
            ),
            // Names are exact: no case folding, no near spellings.
            (
                format!("[log]\nformat = \"JSON\"\n{BASE}"),
                "log.format: unknown variant `JSON`",
            ),
            (
                format!("[log]\nformat = \"json \"\n{BASE}"),
                "log.format: unknown variant `json `",
            ),
        ] {
            let e = error(&text);
            assert!(e.contains(want), "want {want:?} in {e}");
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(BASE, "t.toml", Path::new(".")).unwrap().config;
        let u = &c.upstreams["u"];
        assert_eq!(u.balance.as_str(), "ewma");
        assert_eq!(u.read_timeout.as_secs(), 30);
        assert_eq!(u.upgrade_idle_timeout.as_secs(), 3600);
        let o = u
            .outlier
            .as_ref()
            .expect("passive ejection is on by default");
        assert_eq!((o.consecutive_failures, o.max_ejection_percent), (5, 50));
        assert!(u.retry.on.connect_error && u.retry.on.error && u.retry.on.timeout);
        let s = &c.server;
        assert_eq!(s.client_keepalive_timeout.as_secs(), 75);
        assert_eq!(s.client_header_timeout.as_secs(), 60);
        assert_eq!(s.max_request_header_size, 64 * 1024);
        assert_eq!(s.max_connections, 10_000);
    }

    #[test]
    fn an_empty_table_takes_every_documented_default() {
        let text = format!(
            "{BASE}[upstream.u.health_check]\n[upstream.u.circuit_breaker]\n[cache]\n\
             [[route]]\nname = \"c\"\npath_prefix = \"/c\"\nupstream = \"u\"\n[route.cache]\n"
        );
        let c = parse(&text, "t.toml", Path::new(".")).unwrap().config;
        let u = &c.upstreams["u"];
        let h = u.health_check.as_ref().unwrap();
        assert_eq!((h.interval.as_secs(), h.timeout.as_secs()), (2, 1));
        assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (2, 3));
        let crate::config::CheckKind::Http { path, expect, .. } = &h.kind else {
            panic!("an HTTP check by default");
        };
        assert_eq!((path.as_str(), *expect), ("/", (200, 399)));
        let b = u.circuit_breaker.as_ref().unwrap();
        assert_eq!(
            (b.consecutive_failures, b.min_requests, b.half_open_requests),
            (5, 20, 3)
        );
        assert_eq!((b.failure_ratio, b.slow_call_ratio), (0.5, 0.0));
        let secs = |d: std::time::Duration| d.as_secs();
        assert_eq!(
            (
                secs(b.window),
                secs(b.open_duration),
                secs(b.max_open_duration)
            ),
            (10, 10, 120)
        );
        assert!(b.failure_on.connect_error && b.failure_on.timeout && b.failure_on.http_5xx);
        assert!(!b.failure_on.error);
        let r = (
            u.retry.attempts,
            u.retry.budget_percent,
            u.retry.backoff.as_millis(),
        );
        assert_eq!(r, (1, 20, 10));
        let cache = c.cache.as_ref().unwrap();
        assert_eq!(
            (cache.max_size, cache.max_object_size),
            (256 << 20, 8 << 20)
        );
        let rc = c.routes.iter().find_map(|r| r.cache.as_ref()).unwrap();
        assert_eq!(
            (
                secs(rc.max_ttl),
                secs(rc.stale_if_error),
                secs(rc.lock_timeout)
            ),
            (3600, 300, 2)
        );
        assert!(rc.default_ttl.is_zero() && rc.status_header && rc.heuristic);
        assert_eq!(
            (c.admin.listen.to_string(), c.log.level.as_str()),
            ("127.0.0.1:9901".to_string(), "info")
        );
        assert_eq!(c.server.listen, ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(c.server.client_max_body_size, 10 << 20);
    }
}
