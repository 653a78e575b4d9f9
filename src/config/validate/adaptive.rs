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
