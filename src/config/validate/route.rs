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
        scope,
        on_store_error,
        lease,
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
    // Default lease: a fiftieth of a second's rate, at most a quarter of the bucket, so that
    // tokens held by instances and not yet spent stay a small part of the budget.
    let per_sec = (f64::from(rate) / per.as_secs_f64()) as u64;
    let lease = match lease {
        Some(0) => return err(p.key("lease"), "must be at least 1"),
        Some(n) if n > burst => {
            return err(
                p.key("lease"),
                format!("{n} is more than burst = {burst}: a lease cannot exceed the bucket"),
            )
        }
        Some(n) => n,
        None => (per_sec / 50).min(u64::from(burst / 4)).max(1) as u32,
    };
    Ok(RateLimitConfig {
        key,
        rate,
        per,
        burst,
        status,
        shadow,
        max_keys,
        scope,
        on_store_error,
        lease,
    })
}

pub(super) fn validate_route(
    r: FileRoute,
    p: &KeyPath,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    limits: &BTreeMap<String, RateLimitConfig>,
    store: bool,
    base: &Path,
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
        allow,
        deny,
        basic_auth,
        forward_authorization,
        path_case_insensitive,
        refuse_path_parameters,
        priority,
        hedge,
        canary,
        mirror,
        deadline,
        cors,
        error_pages,
        maintenance,
        maintenance_allow,
        request_headers,
        response_headers,
    } = r;
    let hedge = hedge
        .map(|h| super::hedge::validate_hedge(h, &p.key("hedge"), upstreams.get(&upstream)))
        .transpose()?;
    let canary = canary
        .map(|c| super::canary::validate_canary(c, &p.key("canary"), &upstream, upstreams))
        .transpose()?;
    let mirror = mirror
        .map(|m| super::canary::validate_mirror(m, &p.key("mirror"), &upstream, upstreams))
        .transpose()?;
    let access = AccessConfig {
        allow: networks(&p.key("allow"), &allow)?,
        deny: networks(&p.key("deny"), &deny)?,
        basic_auth: basic_auth
            .map(|b| validate_basic_auth(b, &p.key("basic_auth"), base))
            .transpose()?,
        forward_authorization,
    };
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
    // Routes match the normalised path, so a prefix must be in normal form to ever match.
    let never = |why: String| err(p.key("path_prefix"), format!("\"{path_prefix}\" {why}"));
    if path_prefix.contains(['?', '#']) {
        return never("can never match: the query is not part of the path".into());
    }
    match crate::path::normalize_path(&path_prefix) {
        Ok(n) if n != path_prefix => {
            return never(format!("can never match a normalised path; write \"{n}\""));
        }
        Ok(_) => {}
        Err(why) => return never(format!("can never match ({why}: such paths are refused)")),
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
        access,
        path_case_insensitive,
        refuse_path_parameters,
        priority: super::adaptive::priority(priority),
        hedge,
        canary,
        mirror,
        deadline: deadline
            .map(|d| within(p.key("deadline"), d.0, MS, HOUR))
            .transpose()?,
        cors: cors
            .map(|c| super::cors::validate_cors(c, &p.key("cors")))
            .transpose()?,
        error_pages: super::pages::validate_pages(error_pages, &p.key("error_pages"), base)?,
        maintenance,
        maintenance_allow: networks(&p.key("maintenance_allow"), &maintenance_allow)?,
        request_headers: super::headers::validate_rules(
            request_headers,
            &p.key("request_headers"),
        )?,
        response_headers: super::headers::validate_rules(
            response_headers,
            &p.key("response_headers"),
        )?,
    })
}

fn validate_basic_auth(b: FileBasicAuth, p: &KeyPath, base: &Path) -> VResult<BasicAuthConfig> {
    let FileBasicAuth { realm, users } = b;
    if realm.is_empty()
        || realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return err(
            p.key("realm"),
            "must be non-empty, without quotes, backslashes or control characters",
        );
    }
    let file = base.join(&users);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        (
            p.key("users"),
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let users = htpasswd(&text)
        .map_err(|(line, why)| (p.key("users"), format!("{}:{line}: {why}", file.display())))?;
    if users.is_empty() {
        return err(
            p.key("users"),
            format!(
                "{} has no users: every request would be refused",
                file.display()
            ),
        );
    }
    Ok(BasicAuthConfig { realm, file, users })
}

/// `user:hash` lines (`#` comments and blank lines skipped); only hashes that are still safe
/// to keep passwords with are accepted. Errors name the line.
fn htpasswd(text: &str) -> Result<Vec<(String, PasswordHash)>, (usize, String)> {
    let mut users: Vec<(String, PasswordHash)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err((n, "expected user:hash".into()));
        };
        if user.is_empty() {
            return Err((n, "empty user name".into()));
        }
        if users.iter().any(|(u, _)| u == user) {
            return Err((n, format!("user \"{user}\" is listed twice")));
        }
        let hash = password_hash(hash).map_err(|why| (n, format!("user \"{user}\": {why}")))?;
        users.push((user.to_owned(), hash));
    }
    users.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(users)
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

/// A bcrypt or argon2 hash, its format checked; older kinds are refused with what to use.
fn password_hash(h: &str) -> Result<PasswordHash, String> {
    let use_instead = "create it with `htpasswd -B` (bcrypt) or argon2";
    if h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$") {
        return h
            .parse::<bcrypt::HashParts>()
            .map(|_| PasswordHash::Bcrypt(h.to_owned()))
            .map_err(|e| format!("invalid bcrypt hash ({e})"));
    }
    if h.starts_with("$argon2") {
        return argon2::PasswordHash::new(h)
            .map(|_| PasswordHash::Argon2(h.to_owned()))
            .map_err(|e| format!("invalid argon2 hash ({e})"));
    }
    let kind = if h.starts_with("$apr1$") || h.starts_with("$1$") {
        "MD5"
    } else if h.starts_with("{SHA}") {
        "SHA-1"
    } else if h.starts_with("$5$") || h.starts_with("$6$") {
        "SHA-crypt"
    } else {
        "plain text or DES crypt"
    };
    Err(format!(
        "{kind} password hashes are not accepted (too fast to guess); {use_instead}"
    ))
}

#[cfg(test)]
mod tests;
