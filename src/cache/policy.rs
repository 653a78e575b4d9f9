//! A route's cache policy applied through pingora-cache's hooks. pingora-cache does freshness
//! arithmetic, conditional revalidation (304 merging), stale serving and the cache lock; this
//! module decides *what* may be stored and under which key, following RFC 9111, and adds what
//! pingora leaves to the application: targeted fields (RFC 9213), request directives, Vary
//! normalisation, and the reasons brace reports.

use super::stats::NotStored;
use super::{CacheCtx, CacheStatus};
use crate::config::{RouteCacheConfig, SetCookiePolicy};
use http::Method;
use pingora::cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora::cache::{CacheMeta, CachePhase, ForcedFreshness, NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorSource};
use std::time::{Duration, SystemTime};

static CDN_CACHE_CONTROL: http::HeaderName = http::HeaderName::from_static("cdn-cache-control");

/// `request_cache_filter`: why a request on a caching route may not use the cache (`None`:
/// it may): only GET and HEAD are cached, and a request's `no-store` keeps it out.
pub fn bypass(req: &RequestHeader) -> Option<&'static str> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Some(NotStored::Method.as_str());
    }
    if CacheControl::from_req_headers(req).is_some_and(|cc| cc.no_store()) {
        return Some(NotStored::NoStore.as_str());
    }
    None
}

/// `cache_hit_filter`: request directives (RFC 9111 §5.2.1). `no-cache` (or `Pragma:
/// no-cache` without Cache-Control), a `max-age` the stored response exceeds, or a `min-fresh`
/// it cannot meet make brace revalidate; `max-stale` lets a stale response be served as it is,
/// unless the response forbids that (`must-revalidate`, `proxy-revalidate`, `s-maxage`,
/// `no-cache`).
pub fn hit(req: &RequestHeader, meta: &CacheMeta, now: SystemTime) -> Option<ForcedFreshness> {
    let Some(cc) = CacheControl::from_req_headers(req) else {
        let pragma = req
            .headers
            .get(http::header::PRAGMA)
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"no-cache"));
        return pragma.then_some(ForcedFreshness::ForceExpired);
    };
    let secs = |key: &str| -> Option<Duration> {
        let v = cc
            .directives
            .get(&pingora::cache::cache_control::DirectiveKey::from_lowercase(key))?
            .as_ref()?;
        Some(Duration::from_secs(u64::from(
            v.parse_as_delta_seconds().ok()?,
        )))
    };
    // Exact age, not whole seconds: `max-age=0` must revalidate an entry stored a moment ago.
    let too_old = cc
        .max_age()
        .ok()
        .flatten()
        .is_some_and(|max| meta.age() > Duration::from_secs(u64::from(max)));
    let left = meta
        .fresh_until()
        .duration_since(now)
        .unwrap_or(Duration::ZERO);
    let not_fresh_enough = secs("min-fresh").is_some_and(|min| left < min);
    if cc.no_cache() || too_old || not_fresh_enough {
        return Some(ForcedFreshness::ForceExpired);
    }
    if cc.has_key("max-stale") && !meta.is_fresh(now) {
        let stored = CacheControl::from_resp_headers(meta.response_header());
        let forbidden = stored.as_ref().is_some_and(|c| {
            c.must_revalidate() || c.proxy_revalidate() || c.no_cache() || c.has_key("s-maxage")
        });
        let stale_for = now
            .duration_since(meta.fresh_until())
            .unwrap_or(Duration::ZERO);
        // `max-stale` without a value accepts any staleness.
        let max_stale = pingora::cache::cache_control::DirectiveKey::from_lowercase("max-stale");
        let within = match cc.directives.get(&max_stale) {
            Some(Some(_)) => secs("max-stale").is_some_and(|max| stale_for <= max),
            _ => true,
        };
        if within && !forbidden {
            return Some(ForcedFreshness::ForceFresh);
        }
    }
    None
}

/// RFC 9111 §5.2.1.7: `only-if-cached` and nothing usable stored → 504 (checked after a miss).
pub fn only_if_cached(req: &RequestHeader) -> bool {
    CacheControl::from_req_headers(req).is_some_and(|cc| cc.only_if_cached())
}

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1, "heuristically
/// cacheable"); `default_ttl` applies only to these.
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The freshness rules of a response: `Brace-Cache-Control` (brace alone) over
/// `CDN-Cache-Control` (RFC 9213) over `Cache-Control`. A targeted field that is present
/// replaces Cache-Control entirely for brace's decision.
fn rules(resp: &ResponseHeader, brace_cc: Option<&http::HeaderValue>) -> Option<CacheControl> {
    if let Some(v) = brace_cc {
        let mut map = http::HeaderMap::new();
        map.insert("brace-cache-control", v.clone());
        if let Some(cc) = CacheControl::from_headers_named("brace-cache-control", &map) {
            return Some(cc);
        }
    }
    let targeted = resp
        .headers
        .get_all(&CDN_CACHE_CONTROL)
        .iter()
        .all(|v| valid_targeted_field(v.as_bytes()));
    targeted
        .then(|| CacheControl::from_resp_headers_named("cdn-cache-control", resp))
        .flatten()
        .or_else(|| CacheControl::from_resp_headers(resp))
}

/// RFC 9213 §2.1: a targeted cache-control field is a Structured Fields dictionary (RFC 8941)
/// whose delta-seconds directives are integers. One that does not parse, or has a directive
/// of the wrong type, is ignored as a whole and Cache-Control applies.
fn valid_targeted_field(v: &[u8]) -> bool {
    let Ok(dict) = sfv::Parser::new(v).parse::<sfv::Dictionary>() else {
        return false;
    };
    dict.iter().all(|(k, entry)| match k.as_str() {
        "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error" => matches!(
            entry,
            sfv::ListEntry::Item(sfv::Item { bare_item: sfv::BareItem::Integer(i), .. })
                if i64::from(*i) >= 0
        ),
        _ => true,
    })
}

/// `Age` (RFC 9111 §5.1): the first member of the first line; an invalid value is ignored.
fn age_value(resp: &ResponseHeader) -> Option<u64> {
    let v = resp.headers.get(http::header::AGE)?.to_str().ok()?;
    let first = v.split(',').next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Larger than fits is "a very large age" (RFC 9111 §1.2.2), not an error.
    Some(first.parse().unwrap_or(u64::MAX))
}

fn header_date(resp: &ResponseHeader, name: &str) -> Option<SystemTime> {
    let v = resp.headers.get(name)?.to_str().ok()?;
    super::date::parse(v)
}

/// `response_cache_filter`: may this response to `req` be stored under `policy`, and for how
/// long, as of `now`?
pub fn cacheable(
    req: &RequestHeader,
    resp: &ResponseHeader,
    policy: &RouteCacheConfig,
    cc_ctx: &CacheCtx,
    now: SystemTime,
) -> RespCacheable {
    use NoCacheReason::Custom;
    // After a 304 the stored response is updated with the 304's fields first (RFC 9111
    // §4.3.4), so its freshness and age are worked out from the new `Date`, `Age`,
    // `Cache-Control` and `Expires`, not the old ones.
    let merged;
    let resp = match &cc_ctx.revalidation_headers {
        Some(fresh_304) => {
            merged = updated(resp, fresh_304);
            &merged
        }
        None => resp,
    };
    let status = resp.status.as_u16();
    if status == 206 {
        return RespCacheable::Uncacheable(Custom(NotStored::Status.as_str()));
    }
    let cc = rules(resp, cc_ctx.brace_cache_control.as_ref());
    if let Some(cc) = &cc {
        if cc.no_store() {
            return RespCacheable::Uncacheable(Custom(NotStored::NoStore.as_str()));
        }
        if cc.private() {
            return RespCacheable::Uncacheable(Custom(NotStored::Private.as_str()));
        }
    }
    let vary_star = resp.headers.get_all(http::header::VARY).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == b"*")
    });
    if vary_star {
        return RespCacheable::Uncacheable(Custom(NotStored::Vary.as_str()));
    }
    let set_cookie = resp.headers.contains_key(http::header::SET_COOKIE);
    if set_cookie && policy.cache_set_cookie == SetCookiePolicy::Never {
        return RespCacheable::Uncacheable(Custom(NotStored::SetCookie.as_str()));
    }
    if req.headers.contains_key(http::header::AUTHORIZATION)
        && !cc
            .as_ref()
            .is_some_and(|c| c.allow_caching_authorized_req())
    {
        return RespCacheable::Uncacheable(Custom(NotStored::Authorization.as_str()));
    }

    let date = header_date(resp, "date").unwrap_or(now);
    // The response's age when it arrived (RFC 9111 §4.2.3, without transit delay): the larger
    // of what `Age` says and how long ago the origin dated it.
    let apparent_age = now.duration_since(date).unwrap_or(Duration::ZERO);
    let age = Duration::from_secs(age_value(resp).unwrap_or(0)).max(apparent_age);
    let fresh = cc
        .as_ref()
        .and_then(|c| c.fresh_duration())
        .or_else(|| {
            // Expires: freshness is Expires - Date (RFC 9111 §4.2.1); an invalid date is past.
            let mut all = resp.headers.get_all(http::header::EXPIRES).iter();
            match (all.next(), all.next()) {
                (Some(v), None) => Some(
                    v.to_str()
                        .ok()
                        .and_then(super::date::parse)
                        .and_then(|e| e.duration_since(date).ok())
                        .unwrap_or(Duration::ZERO),
                ),
                _ => None,
            }
        })
        .or_else(|| {
            // RFC 9111 §4.2.2: 10% of the time since Last-Modified, as the RFC suggests.
            let last_modified = header_date(resp, "last-modified")?;
            (policy.heuristic && heuristically_cacheable(status))
                .then(|| date.duration_since(last_modified).ok())
                .flatten()
                .map(|d| d / 10)
        })
        .or_else(|| {
            (!policy.default_ttl.is_zero() && heuristically_cacheable(status))
                .then_some(policy.default_ttl)
        });
    let Some(fresh) = fresh else {
        return RespCacheable::Uncacheable(Custom(NotStored::NoFreshness.as_str()));
    };
    if fresh.is_zero() && !cc.as_ref().is_some_and(|c| c.no_cache()) {
        // max-age=0 / an Expires in the past: stale at once; storing it only helps revalidation
        // when there is a validator.
        let validator = resp.headers.contains_key(http::header::ETAG)
            || resp.headers.contains_key(http::header::LAST_MODIFIED);
        if !validator {
            return RespCacheable::Uncacheable(Custom(NotStored::NoFreshness.as_str()));
        }
    }
    // An age larger than the clock reaches back is "very old": stale on arrival, not new.
    let created = now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
    let fresh_until = if fresh.is_zero() {
        created
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(created)
    } else {
        // max_ttl caps how long brace keeps serving it, counted from now: a response that
        // arrives already old is not stale on arrival because of the cap.
        (created + fresh).min(now + policy.max_ttl)
    };
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let swr = cc
        .as_ref()
        .and_then(|c| c.serve_stale_while_revalidate_duration())
        .unwrap_or(policy.stale_while_revalidate);
    let sie = cc
        .as_ref()
        .and_then(|c| c.serve_stale_if_error_duration())
        .unwrap_or(policy.stale_if_error);
    // no-cache responses are stored but always revalidated; never served stale.
    let (swr, sie) = if cc.as_ref().is_some_and(|c| c.no_cache()) {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (swr, sie)
    };
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    if set_cookie && policy.cache_set_cookie == SetCookiePolicy::Strip {
        header.remove_header(&http::header::SET_COOKIE);
    }
    RespCacheable::Cacheable(CacheMeta::new(
        fresh_until,
        created,
        secs(swr),
        secs(sie),
        header,
    ))
}

/// The stored response `resp` updated with a 304's fields. pingora merges only a few
/// (Cache-Control, Expires, ETag, ...); RFC 9111 §3.2 asks for every field the 304 carries
/// except Content-Length (and hop-by-hop fields, already stripped).
fn updated(resp: &ResponseHeader, fresh_304: &http::HeaderMap) -> ResponseHeader {
    let mut header = resp.clone();
    for name in fresh_304.keys() {
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        header.remove_header(name);
        for v in fresh_304.get_all(name) {
            let _ = header.append_header(name.clone(), v.clone());
        }
    }
    header
}

/// `should_serve_stale`: during revalidation (no error) as the response allows, and on any
/// failure that is not the client's (refused, timed out, 5xx, no available backend).
pub fn serve_stale(error: Option<&Error>) -> bool {
    error.is_none_or(|e| e.esource() != &ErrorSource::Downstream)
}

/// What the cache did for a request on a caching route, and why nothing was stored.
pub fn status(cc_ctx: &CacheCtx, phase: CachePhase) -> (CacheStatus, Option<&'static str>) {
    if let Some(why) = cc_ctx.bypass {
        return (CacheStatus::Bypass, Some(why));
    }
    match phase {
        CachePhase::Hit => (CacheStatus::Hit, None),
        CachePhase::Miss => (CacheStatus::Miss, None),
        CachePhase::Expired => (CacheStatus::Expired, None),
        CachePhase::Stale | CachePhase::StaleUpdating => (CacheStatus::Stale, None),
        CachePhase::Revalidated => (CacheStatus::Revalidated, None),
        CachePhase::RevalidatedNoCache(r) => (CacheStatus::Revalidated, Some(reason(&r))),
        CachePhase::Bypass => (CacheStatus::Bypass, None),
        CachePhase::Disabled(NoCacheReason::NeverEnabled)
        | CachePhase::Uninit
        | CachePhase::CacheKey => (CacheStatus::Bypass, None),
        CachePhase::Disabled(r) => (CacheStatus::Uncacheable, Some(reason(&r))),
    }
}

fn reason(r: &NoCacheReason) -> &'static str {
    match r {
        NoCacheReason::Custom(s) => s,
        NoCacheReason::ResponseTooLarge | NoCacheReason::PredictedResponseTooLarge => {
            NotStored::TooLarge.as_str()
        }
        NoCacheReason::OriginNotCache => NotStored::NoFreshness.as_str(),
        NoCacheReason::UpstreamError => NotStored::UpstreamError.as_str(),
        NoCacheReason::CacheLockTimeout | NoCacheReason::CacheLockGiveUp => {
            NotStored::LockTimeout.as_str()
        }
        other => other.as_str(),
    }
}

/// RFC 9111 §4.4: the URLs a request invalidates when it succeeds with `status`: for an
/// unsafe method, its own URL (`own`, as [`super::key::url`] gives it, for a request to
/// `host`; built only then, since most requests invalidate nothing) and
/// `Location`/`Content-Location` of the response on the same origin.
pub fn invalidated(
    req: &RequestHeader,
    resp: Option<&ResponseHeader>,
    own: impl FnOnce() -> String,
    host: &str,
    status: u16,
) -> Vec<String> {
    let m = &req.method;
    let unsafe_method =
        !(m == Method::GET || m == Method::HEAD || m == Method::OPTIONS || m == Method::TRACE);
    if !unsafe_method || !(200..400).contains(&status) {
        return Vec::new();
    }
    let own = own();
    let origin_end = own.find("://").map_or(0, |i| i + 3) + host.len();
    let origin = own[..origin_end.min(own.len())].to_owned();
    let mut targets = vec![own];
    if let Some(resp) = resp {
        for h in ["location", "content-location"] {
            if let Some(v) = resp.headers.get(h).and_then(|v| v.to_str().ok()) {
                if v.starts_with('/') {
                    targets.push(format!("{origin}{v}"));
                } else if v
                    .to_ascii_lowercase()
                    .starts_with(&origin.to_ascii_lowercase())
                {
                    targets.push(v.to_owned());
                }
            }
        }
    }
    targets
}

#[cfg(test)]
mod tests;
