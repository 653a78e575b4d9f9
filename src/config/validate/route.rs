//! Validation of `[[route]]`, `[route.cache]` and `[rate_limit.NAME]`.

use super::*;

pub(super) fn validate_rate_limit(r: FileRateLimit, p: &KeyPath) -> VResult<RateLimitConfig> {
    let FileRateLimit {
        key,
        rate,
        per,
        burst,
        status,
        mode,
        max_keys,
    } = r;
    let header = |n: &str| -> VResult<String> {
        if http::HeaderName::from_bytes(n.as_bytes()).is_ok() {
            Ok(n.to_ascii_lowercase())
        } else {
            err(p.key("key"), format!("invalid header name \"{n}\""))
        }
    };
    let key = match key.as_str() {
        "client_ip" => LimitKey::ClientIp,
        "route" => LimitKey::Route,
        "path" => LimitKey::Path,
        k => match (k.strip_prefix("header:"), k.strip_prefix("client_ip+header:")) {
            (Some(n), _) => LimitKey::Header(header(n)?),
            (_, Some(n)) => LimitKey::ClientIpAndHeader(header(n)?),
            _ => {
                return err(
                    p.key("key"),
                    format!("invalid key \"{k}\": expected client_ip, header:NAME, route, path or client_ip+header:NAME"),
                )
            }
        },
    };
    if rate == 0 {
        return err(p.key("rate"), "must be at least 1");
    }
    let per = within(p.key("per"), per.0, MS, DAY)?;
    if !(1..=10_000_000).contains(&max_keys) {
        return err(p.key("max_keys"), "must be between 1 and 10000000");
    }
    if burst == 0 {
        return err(
            p.key("burst"),
            "must be at least 1: a bucket of 0 refuses everything",
        );
    }
    if !(400..=599).contains(&status) {
        return err(
            p.key("status"),
            format!("{status} is not a 4xx or 5xx status"),
        );
    }
    let shadow = mode == Mode::Shadow;
    if max_keys == 0 {
        return err(p.key("max_keys"), "must be at least 1");
    }
    Ok(RateLimitConfig {
        key,
        rate,
        per,
        burst,
        status,
        shadow,
        max_keys,
    })
}

pub(super) fn validate_route(
    r: FileRoute,
    p: &KeyPath,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    limits: &BTreeMap<String, RateLimitConfig>,
    store: bool,
) -> VResult<RouteConfig> {
    let FileRoute {
        name,
        hosts,
        path_prefix,
        upstream,
        strip_prefix,
        timeout,
        rate_limits,
        cache,
    } = r;
    let cache = match cache {
        Some(_) if !store => {
            return err(
                p.key("cache"),
                "route caching needs the shared store: add a [cache] section",
            );
        }
        Some(c) => Some(validate_route_cache(c, &p.key("cache"))?),
        None => None,
    };
    for (i, l) in rate_limits.iter().enumerate() {
        if !limits.contains_key(l) {
            let known: Vec<&str> = limits.keys().map(String::as_str).collect();
            return err(
                p.key("rate_limits").index(i),
                format!(
                    "route \"{name}\" names rate limit \"{l}\", which is not defined (defined: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
    if !name_ok(&name) {
        return err(p.key("name"), format!("invalid route name \"{name}\": use letters, digits, '_', '-', '.', starting with a letter or digit"));
    }
    let mut hs = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        hs.push(host_pattern(p.key("hosts").index(i), h)?);
    }
    if !path_prefix.starts_with('/') {
        return err(
            p.key("path_prefix"),
            format!("\"{path_prefix}\" must start with '/'"),
        );
    }
    if !upstreams.contains_key(&upstream) {
        let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        return err(
            p.key("upstream"),
            format!(
                "route \"{name}\" names upstream \"{upstream}\", which is not defined (defined: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        );
    }
    Ok(RouteConfig {
        name,
        hosts: hs,
        path_prefix,
        upstream,
        strip_prefix,
        timeout: within(p.key("timeout"), timeout.0, MS, DAY)?,
        rate_limits,
        cache,
    })
}

pub(super) fn validate_route_cache(
    c: crate::config::file::FileRouteCache,
    p: &KeyPath,
) -> VResult<RouteCacheConfig> {
    let crate::config::file::FileRouteCache {
        default_ttl,
        max_ttl,
        stale_while_revalidate,
        stale_if_error,
        key_query,
        key_headers,
        lock_timeout,
        status_header,
        cache_set_cookie,
        heuristic,
    } = c;
    let max_ttl = within(p.key("max_ttl"), max_ttl.0, SEC, 365 * DAY)?;
    within(
        p.key("stale_while_revalidate"),
        stale_while_revalidate.0,
        Duration::ZERO,
        365 * DAY,
    )?;
    within(
        p.key("stale_if_error"),
        stale_if_error.0,
        Duration::ZERO,
        365 * DAY,
    )?;
    if default_ttl.0 > max_ttl {
        return err(p.key("default_ttl"), "is longer than max_ttl");
    }
    let key_query = match key_query {
        crate::config::file::FileKeyQuery::Word(w) if w == "all" => KeyQuery::All,
        crate::config::file::FileKeyQuery::Word(w) if w == "none" => KeyQuery::None,
        crate::config::file::FileKeyQuery::Word(w) => {
            return err(
                p.key("key_query"),
                format!("\"{w}\": expected \"all\", \"none\" or a list of parameter names"),
            )
        }
        crate::config::file::FileKeyQuery::Names(mut n) => {
            n.sort();
            n.dedup();
            KeyQuery::Only(n)
        }
    };
    let mut headers = Vec::new();
    for (i, h) in key_headers.iter().enumerate() {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return err(
                p.key("key_headers").index(i),
                format!("invalid header name \"{h}\""),
            );
        }
        headers.push(h.to_ascii_lowercase());
    }
    Ok(RouteCacheConfig {
        default_ttl: default_ttl.0,
        max_ttl,
        stale_while_revalidate: stale_while_revalidate.0,
        stale_if_error: stale_if_error.0,
        key_query,
        key_headers: headers,
        lock_timeout: within(p.key("lock_timeout"), lock_timeout.0, MS, MINUTE)?,
        status_header,
        cache_set_cookie,
        heuristic,
    })
}
