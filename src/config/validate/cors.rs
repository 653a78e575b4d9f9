//! Validation of `[route.cors]`: origins that can only match what the operator meant, and
//! never "any origin, with credentials".

use super::*;
use crate::config::cors::*;

pub(super) fn validate_cors(c: FileCors, p: &KeyPath) -> VResult<CorsConfig> {
    let FileCors {
        origins,
        methods,
        headers,
        expose_headers,
        credentials,
        max_age,
    } = c;
    if origins.is_empty() {
        return err(
            p.key("origins"),
            "give at least one origin, e.g. [\"https://app.example.com\"]",
        );
    }
    let mut patterns = Vec::new();
    for (i, o) in origins.iter().enumerate() {
        let at = p.key("origins").index(i);
        let pattern = origin_pattern(o).ok_or(()).or_else(|()| {
            err(
                at.clone(),
                format!("\"{o}\": an origin is scheme://host[:port] (no path), \"https://*.example.com\" or \"*\"; \"null\" is never allowed"),
            )
        })?;
        if pattern == OriginPattern::Any && credentials {
            return err(
                at,
                "\"*\" with credentials = true would let any site read answers made with the user's cookies: list the origins",
            );
        }
        patterns.push(pattern);
    }
    let methods = match methods {
        None => DEFAULT_METHODS.iter().map(|m| m.to_string()).collect(),
        Some(ms) => {
            let mut out = Vec::new();
            for (i, m) in ms.iter().enumerate() {
                if http::Method::from_bytes(m.as_bytes()).is_err() || m.is_empty() {
                    return err(
                        p.key("methods").index(i),
                        format!("\"{m}\" is not a method"),
                    );
                }
                out.push(m.to_ascii_uppercase());
            }
            out
        }
    };
    let names = |key: &str, list: Vec<String>| -> VResult<Vec<String>> {
        let mut out = Vec::new();
        for (i, h) in list.iter().enumerate() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return err(p.key(key).index(i), format!("\"{h}\" is not a header name"));
            }
            out.push(h.to_ascii_lowercase());
        }
        Ok(out)
    };
    Ok(CorsConfig {
        origins: patterns,
        methods,
        headers: names("headers", headers)?,
        expose_headers: names("expose_headers", expose_headers)?,
        credentials,
        max_age: within(
            p.key("max_age"),
            max_age.map_or(DEFAULT_MAX_AGE, |d| d.0),
            Duration::ZERO,
            DAY,
        )?,
    })
}

/// An `origins` entry, or `None` when it could never be a browser's `Origin`.
fn origin_pattern(o: &str) -> Option<OriginPattern> {
    if o == "*" {
        return Some(OriginPattern::Any);
    }
    let lower = o.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
    {
        return None;
    }
    let host_ok = |h: &str| {
        !h.is_empty()
            && h.split(':').next().is_some_and(|name| {
                !name.is_empty()
                    && name.split('.').all(|l| {
                        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
            })
            && h.split_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_ok())
    };
    match rest.strip_prefix("*.") {
        Some(suffix) if host_ok(suffix) => Some(OriginPattern::Subdomain {
            scheme: format!("{scheme}://"),
            suffix: format!(".{suffix}"),
        }),
        Some(_) => None,
        None if host_ok(rest) => Some(OriginPattern::Exact(lower)),
        None => None,
    }
}
