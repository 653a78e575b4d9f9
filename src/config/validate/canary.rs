//! Validation of a route's deploy tools: `[route.canary]` and `mirror`.

use super::*;
use crate::config::canary::*;

pub(super) fn validate_canary(
    c: FileCanary,
    p: &KeyPath,
    route_upstream: &str,
    upstreams: &BTreeMap<String, UpstreamConfig>,
) -> VResult<CanaryConfig> {
    let FileCanary {
        upstream,
        steps,
        interval,
        window,
        min_requests,
        error_margin_percent,
        latency_ratio,
        match_header,
        match_cookie,
        sticky,
    } = c;
    other_upstream(
        &upstream,
        p,
        route_upstream,
        upstreams,
        "a canary compares another upstream with it",
    )?;
    let steps = steps.unwrap_or_else(|| DEFAULT_STEPS.to_vec());
    if steps.is_empty() {
        return err(
            p.key("steps"),
            "give at least one step, e.g. [1, 5, 25, 50, 100]",
        );
    }
    for (i, s) in steps.iter().enumerate() {
        if !(1..=100).contains(s) {
            return err(
                p.key("steps").index(i),
                format!("{s}: a step is 1 to 100 percent"),
            );
        }
        if i > 0 && *s <= steps[i - 1] {
            return err(p.key("steps").index(i), format!("{s}: steps must increase"));
        }
    }
    let interval = within(
        p.key("interval"),
        interval.map_or(DEFAULT_INTERVAL, |d| d.0),
        SEC,
        DAY,
    )?;
    let max_window = Duration::from_secs(MAX_WINDOW_SECS);
    let window = within(
        p.key("window"),
        window.map_or(DEFAULT_WINDOW, |d| d.0),
        5 * SEC,
        max_window,
    )?;
    let min_requests = min_requests.unwrap_or(DEFAULT_MIN_REQUESTS);
    if min_requests == 0 {
        return err(
            p.key("min_requests"),
            "must be at least 1: a canary is judged on its requests",
        );
    }
    let error_margin_percent = error_margin_percent.unwrap_or(DEFAULT_ERROR_MARGIN_PERCENT);
    if error_margin_percent > 100 {
        return err(
            p.key("error_margin_percent"),
            format!("{error_margin_percent} is over 100"),
        );
    }
    let latency_ratio = latency_ratio.unwrap_or(DEFAULT_LATENCY_RATIO);
    if !(1.1..=100.0).contains(&latency_ratio) {
        return err(
            p.key("latency_ratio"),
            format!("{latency_ratio}: from 1.1 to 100"),
        );
    }
    let mut matching = Vec::new();
    if let Some(FileMatch { name, value }) = match_header {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() || value.is_empty() {
            return err(
                p.key("match_header"),
                format!("\"{name}: {value}\": a header name and a non-empty value"),
            );
        }
        matching.push(Match::Header(name.to_ascii_lowercase(), value));
    }
    if let Some(FileMatch { name, value }) = match_cookie {
        if name.is_empty()
            || value.is_empty()
            || name.contains([';', '=', ' '])
            || value.contains([';', ' '])
        {
            return err(
                p.key("match_cookie"),
                format!("\"{name}={value}\": a cookie name and a non-empty value"),
            );
        }
        matching.push(Match::Cookie(name, value));
    }
    let sticky = match sticky {
        None => None,
        Some(k) => match super::upstream::parse_hash_key(&k) {
            Some(HashKey::Path) | None => {
                return err(
                    p.key("sticky"),
                    format!("\"{k}\": client_ip, header:NAME or cookie:NAME"),
                );
            }
            key => key,
        },
    };
    Ok(CanaryConfig {
        upstream,
        steps,
        interval,
        window,
        min_requests,
        error_margin_percent,
        latency_ratio,
        matching,
        sticky,
    })
}

pub(super) fn validate_mirror(
    m: FileMirror,
    p: &KeyPath,
    route_upstream: &str,
    upstreams: &BTreeMap<String, UpstreamConfig>,
) -> VResult<crate::config::mirror::MirrorConfig> {
    use crate::config::mirror::*;
    let FileMirror {
        upstream,
        percent,
        max_body,
    } = m;
    other_upstream(
        &upstream,
        p,
        route_upstream,
        upstreams,
        "mirroring to it would send it every request twice",
    )?;
    let percent = percent.unwrap_or(DEFAULT_PERCENT);
    if !(1..=100).contains(&percent) {
        return err(p.key("percent"), format!("{percent}: from 1 to 100"));
    }
    let max_body = max_body.map_or(DEFAULT_MAX_BODY, |s| s.0);
    if max_body > MAX_BODY_LIMIT {
        return err(
            p.key("max_body"),
            format!("{max_body} bytes: at most 1MiB (a copy's body is held in memory)"),
        );
    }
    Ok(MirrorConfig {
        upstream,
        percent,
        max_body,
    })
}

/// `upstream` (at `p.upstream`) names a defined upstream other than the route's own (`why`
/// says why not that one).
fn other_upstream(
    upstream: &str,
    p: &KeyPath,
    route_upstream: &str,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    why: &str,
) -> VResult<()> {
    if !upstreams.contains_key(upstream) {
        let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        return err(
            p.key("upstream"),
            format!(
                "\"{upstream}\" is not defined (defined: {})",
                known.join(", ")
            ),
        );
    }
    if upstream == route_upstream {
        return err(
            p.key("upstream"),
            format!("is the route's own upstream: {why}"),
        );
    }
    Ok(())
}
