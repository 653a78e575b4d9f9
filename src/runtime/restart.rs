//! The keys only a restart applies, declared once. [`carry_over`] puts the running value of
//! each into a new config, so a reloaded snapshot says what is in force, and returns the ones
//! that differ: the plan's "needs a restart" (`Plan::between` asks it too), and
//! `brace_config_restart_required` while any is pending.
//!
//! Listening sockets, threads and the per-connection read settings are fixed at start; so are
//! the admin listener, the log format, `[tracing]`, `[cluster]`, and each upstream's
//! `keepalive` (pingora sizes its one upstream connection pool from their sum at start). A TLS
//! listener added or removed needs a restart; one that stays takes new certificates live.

use super::change::Change;
use crate::config::{Config, TlsConfig};
use std::fmt::Debug;

/// `new` keeps the running value of every restart-only key; the keys that differed, with the
/// running (old) and the file's (new) values.
pub fn carry_over(running: &Config, new: &mut Config) -> Vec<Change> {
    let mut out = Vec::new();
    let (r, n) = (&running.server, &mut new.server);
    keep(&mut out, "server.listen", &r.listen, &mut n.listen);
    keep(&mut out, "server.threads", &r.threads, &mut n.threads);
    keep(
        &mut out,
        "server.client_header_timeout",
        &r.client_header_timeout,
        &mut n.client_header_timeout,
    );
    keep(
        &mut out,
        "server.max_request_header_size",
        &r.max_request_header_size,
        &mut n.max_request_header_size,
    );
    keep(&mut out, "server.h2c", &r.h2c, &mut n.h2c);
    keep(
        &mut out,
        "server.preserve_header_case",
        &r.preserve_header_case,
        &mut n.preserve_header_case,
    );
    tls_listeners(&r.tls, &mut n.tls, &mut out);
    keep(
        &mut out,
        "admin.listen",
        &running.admin.listen,
        &mut new.admin.listen,
    );
    keep(
        &mut out,
        "log.format",
        &running.log.format,
        &mut new.log.format,
    );
    for (name, u) in new.upstreams.iter_mut() {
        if let Some(old) = running.upstreams.get(name) {
            let key = format!("upstream.{name}.keepalive");
            keep(&mut out, &key, &old.keepalive, &mut u.keepalive);
        }
    }
    if running.tracing != new.tracing {
        // The collector's headers may hold a key: never shown.
        let show = |t: &Option<crate::config::TracingConfig>| {
            t.as_ref().map_or_else(
                || "off".to_string(),
                |t| format!("{} (sample_ratio {})", t.endpoint, t.sample_ratio),
            )
        };
        out.push(change(
            "tracing",
            show(&running.tracing),
            show(&new.tracing),
        ));
        new.tracing = running.tracing.clone();
    }
    if running.cluster != new.cluster {
        let show = |c: &Option<crate::config::ClusterConfig>| {
            c.as_ref().map_or_else(
                || "off".to_string(),
                |c| format!("{} ({})", c.redis, c.instance_id),
            )
        };
        out.push(change(
            "cluster",
            show(&running.cluster),
            show(&new.cluster),
        ));
        new.cluster = running.cluster.clone();
    }
    out
}

fn change(key: &str, old: String, new: String) -> Change {
    Change {
        key: key.into(),
        old,
        new,
    }
}

/// Compares typed values; `new` takes `running`'s when they differ.
fn keep<T: PartialEq + Clone + Debug>(out: &mut Vec<Change>, key: &str, running: &T, new: &mut T) {
    if running != new {
        out.push(change(key, format!("{running:?}"), format!("{new:?}")));
        *new = running.clone();
    }
}

/// A listener is bound at start: one the file adds waits for a restart, one it removes keeps
/// running with its settings; the others take the file's certificates and client auth.
fn tls_listeners(running: &[TlsConfig], new: &mut Vec<TlsConfig>, out: &mut Vec<Change>) {
    for t in new
        .iter()
        .filter(|t| !running.iter().any(|r| r.listen == t.listen))
    {
        let key = format!("server.tls {}", t.listen);
        out.push(change(&key, "absent".into(), format!("{t:?}")));
    }
    for r in running
        .iter()
        .filter(|r| !new.iter().any(|t| t.listen == r.listen))
    {
        let key = format!("server.tls {}", r.listen);
        out.push(change(&key, format!("{r:?}"), "absent".into()));
    }
    *new = running
        .iter()
        .map(|r| {
            new.iter()
                .find(|t| t.listen == r.listen)
                .unwrap_or(r)
                .clone()
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::carry_over;
    use crate::config::parse;
    use std::path::Path;

    fn config(extra_server: &str, extra_upstream: &str) -> crate::config::Config {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:8080\"]\n{extra_server}\n[[route]]\nname = \"r\"\nupstream = \"u\"\n\
             [upstream.u]\nbackends = [\"127.0.0.1:9000\"]\n{extra_upstream}"
        );
        parse(&text, "t.toml", Path::new(".")).unwrap().config
    }

    #[test]
    fn restart_only_keys_keep_their_running_values_and_are_listed() {
        let running = config("", "");
        let mut new = config(
            "threads = 3\nh2c = true",
            "keepalive = 16\nconnect_timeout = \"1s\"",
        );
        let changes = carry_over(&running, &mut new);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            ["server.threads", "server.h2c", "upstream.u.keepalive"],
            "{changes:?}"
        );
        assert_eq!(new.server.threads, running.server.threads);
        assert_eq!(new.server.h2c, running.server.h2c);
        assert_eq!(
            new.upstreams["u"].keepalive,
            running.upstreams["u"].keepalive
        );
        // A live key takes the file's value.
        assert_eq!(
            new.upstreams["u"].connect_timeout,
            std::time::Duration::from_secs(1)
        );
        // Carried over, the new config has nothing left that needs a restart.
        assert!(carry_over(&running, &mut new.clone()).is_empty());
    }

    #[test]
    fn tracing_cluster_admin_and_log_format_wait_for_a_restart() {
        let running = config("", "");
        let text = "[server]\nlisten = [\"127.0.0.1:8080\"]\n\
                    [admin]\nlisten = \"127.0.0.1:9999\"\n[log]\nformat = \"json\"\n\
                    [tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\n\
                    [tracing.headers]\nauthorization = \"Bearer secret\"\n\
                    [[route]]\nname = \"r\"\nupstream = \"u\"\n\
                    [upstream.u]\nbackends = [\"127.0.0.1:9000\"]\n";
        let mut new = parse(text, "t.toml", Path::new(".")).unwrap().config;
        let changes = carry_over(&running, &mut new);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["admin.listen", "log.format", "tracing"]);
        assert_eq!(new.admin.listen, running.admin.listen);
        assert_eq!(new.log.format, running.log.format);
        assert!(new.tracing.is_none());
        // The collector's headers may hold a key: the change shows the endpoint only.
        let tracing = &changes[2];
        assert_eq!(tracing.old, "off");
        assert!(
            tracing.new.starts_with("http://127.0.0.1:4318"),
            "{}",
            tracing.new
        );
        assert!(!tracing.new.contains("secret"));
    }

    #[test]
    fn a_new_upstreams_keepalive_is_not_a_change_and_nothing_is_listed_twice() {
        let running = config("", "");
        let text = "[server]\nlisten = [\"127.0.0.1:8080\"]\n\
                    [[route]]\nname = \"r\"\nupstream = \"v\"\n\
                    [upstream.v]\nbackends = [\"127.0.0.1:9000\"]\nkeepalive = 4\n";
        let mut new = parse(text, "t.toml", Path::new(".")).unwrap().config;
        assert!(carry_over(&running, &mut new).is_empty());
        assert_eq!(new.upstreams["v"].keepalive, 4);
    }
}
