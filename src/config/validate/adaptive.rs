//! Validation of `[upstream.NAME.adaptive]` and a route's `priority`.

use super::*;

/// The largest limit one backend may be given (requests in flight at once).
const MAX_LIMIT: u32 = 100_000;

pub(super) fn validate_adaptive(a: Option<FileAdaptive>, p: &KeyPath) -> VResult<AdaptiveConfig> {
    let d = AdaptiveConfig::default();
    let o = match a {
        None | Some(FileAdaptive::On(true)) => return Ok(d),
        Some(FileAdaptive::On(false)) => {
            return Ok(AdaptiveConfig {
                enabled: false,
                ..d
            })
        }
        Some(FileAdaptive::Options(o)) => o,
    };
    let FileAdaptiveOptions {
        enabled,
        mode,
        initial_limit,
        min_limit,
        max_limit,
        window,
        queue_timeout,
        max_queue,
    } = o;
    let min_limit = min_limit.unwrap_or(d.min_limit);
    let max_limit = max_limit.unwrap_or(d.max_limit);
    if min_limit == 0 {
        return err(
            p.key("min_limit"),
            "must be at least 1: a backend at 0 would never be tried again",
        );
    }
    if max_limit > MAX_LIMIT {
        return err(p.key("max_limit"), format!("at most {MAX_LIMIT}"));
    }
    if max_limit < min_limit {
        return err(
            p.key("max_limit"),
            format!("{max_limit} is below min_limit ({min_limit})"),
        );
    }
    let initial_limit = initial_limit.unwrap_or(d.initial_limit.clamp(min_limit, max_limit));
    if !(min_limit..=max_limit).contains(&initial_limit) {
        return err(
            p.key("initial_limit"),
            format!("{initial_limit} is outside min_limit..=max_limit ({min_limit}..={max_limit})"),
        );
    }
    let window = within(
        p.key("window"),
        window.map_or(d.window, |w| w.0),
        Duration::from_millis(10),
        Duration::from_secs(10),
    )?;
    let queue_timeout = within(
        p.key("queue_timeout"),
        queue_timeout.map_or(d.queue_timeout, |w| w.0),
        Duration::ZERO,
        Duration::from_secs(60),
    )?;
    let max_queue = max_queue.unwrap_or(d.max_queue);
    if max_queue > 1_000_000 {
        return err(p.key("max_queue"), "at most 1000000");
    }
    Ok(AdaptiveConfig {
        enabled,
        shadow: mode == Mode::Shadow,
        initial_limit,
        min_limit,
        max_limit,
        window,
        queue_timeout,
        max_queue,
    })
}

pub(super) fn priority(p: FilePriority) -> Priority {
    match p {
        FilePriority::Critical => Priority::Critical,
        FilePriority::Normal => Priority::Normal,
        FilePriority::Sheddable => Priority::Sheddable,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Priority};
    use std::path::Path;

    fn load(upstream_extra: &str, route_extra: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "[[route]]\nname = \"r\"\nupstream = \"p\"\n{route_extra}\n[upstream.p]\nbackends = [\"127.0.0.1:1\"]\n{upstream_extra}"
        );
        parse(&text, "t.toml", Path::new("."))
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_on_and_off_and_shadow() {
        let c = load("", "").unwrap();
        let a = &c.upstreams["p"].adaptive;
        assert!(a.enforced() && a.initial_limit == 10 && a.min_limit == 2);
        assert_eq!(c.routes[0].priority, Priority::Normal);
        assert!(
            !load("adaptive = false", "").unwrap().upstreams["p"]
                .adaptive
                .enabled
        );
        let shadow = load("[upstream.p.adaptive]\nmode = \"shadow\"", "").unwrap();
        assert!(
            shadow.upstreams["p"].adaptive.enabled && !shadow.upstreams["p"].adaptive.enforced()
        );
        let crit = load("", "priority = \"critical\"").unwrap();
        assert_eq!(crit.routes[0].priority, Priority::Critical);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (extra, key, words) in [
            (
                "min_limit = 0",
                "upstream.p.adaptive.min_limit",
                "at least 1",
            ),
            (
                "min_limit = 5\nmax_limit = 4",
                "upstream.p.adaptive.max_limit",
                "below min_limit",
            ),
            (
                "initial_limit = 2000",
                "upstream.p.adaptive.initial_limit",
                "outside",
            ),
            (
                "max_limit = 200000",
                "upstream.p.adaptive.max_limit",
                "at most",
            ),
            (
                "window = \"1ms\"",
                "upstream.p.adaptive.window",
                "out of range",
            ),
            (
                "queue_timeout = \"2m\"",
                "upstream.p.adaptive.queue_timeout",
                "out of range",
            ),
            ("mode = \"loud\"", "mode", "unknown variant"),
            ("limit = 3", "limit", "unknown field"),
        ] {
            let e = load(&format!("[upstream.p.adaptive]\n{extra}"), "").unwrap_err();
            assert!(e.contains(key) && e.contains(words), "{extra}: {e}");
        }
        let e = load("", "priority = \"urgent\"").unwrap_err();
        assert!(
            e.contains("unknown variant") && e.contains("critical"),
            "{e}"
        );
    }
}
