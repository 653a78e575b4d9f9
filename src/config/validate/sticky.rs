//! Validation of an upstream's `sticky = { cookie = "brace_srv", ttl = "1h" }`.

use super::*;
use crate::config::sticky::{StickyConfig, DEFAULT_COOKIE, DEFAULT_TTL};

pub(super) fn validate_sticky(
    s: FileSticky,
    p: &KeyPath,
    balance: &Balance,
) -> VResult<StickyConfig> {
    let FileSticky { cookie, ttl } = s;
    let cookie = cookie.unwrap_or_else(|| DEFAULT_COOKIE.to_owned());
    // A cookie name is an RFC 9110 token (RFC 6265 §4.1.1).
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if cookie.is_empty() || !cookie.chars().all(tchar) {
        return err(
            p.key("cookie"),
            format!("\"{cookie}\": a cookie name is letters, digits and !#$%&'*+-.^_`|~"),
        );
    }
    if matches!(balance, Balance::ConsistentHash(_)) {
        return err(
            p.clone(),
            "sticky and balance = \"consistent_hash\" both pin a client to a backend: use one",
        );
    }
    let ttl = within(
        p.key("ttl"),
        ttl.map_or(DEFAULT_TTL, |t| t.0),
        SEC,
        400 * 24 * HOUR,
    )?;
    Ok(StickyConfig { cookie, ttl })
}
