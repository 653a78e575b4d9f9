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
            .get("pragma")
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
        .get_all("cdn-cache-control")
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
    let v = resp.headers.get("age")?.to_str().ok()?;
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
    let vary_star = resp.headers.get_all("vary").iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == b"*")
    });
    if vary_star {
        return RespCacheable::Uncacheable(Custom(NotStored::Vary.as_str()));
    }
    let set_cookie = resp.headers.contains_key("set-cookie");
    if set_cookie && policy.cache_set_cookie == SetCookiePolicy::Never {
        return RespCacheable::Uncacheable(Custom(NotStored::SetCookie.as_str()));
    }
    if req.headers.contains_key("authorization")
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
            let mut all = resp.headers.get_all("expires").iter();
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
        let validator =
            resp.headers.contains_key("etag") || resp.headers.contains_key("last-modified");
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
    // pingora merges only a few fields of a 304 into the stored header (Cache-Control,
    // Expires, ETag, ...). RFC 9111 §3.2 asks for every field the 304 carries except
    // Content-Length (and hop-by-hop fields, already stripped), so add the rest here.
    if let Some(fresh_304) = &cc_ctx.revalidation_headers {
        for name in fresh_304.keys() {
            if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
                continue;
            }
            header.remove_header(name);
            for v in fresh_304.get_all(name) {
                let _ = header.append_header(name.clone(), v.clone());
            }
        }
    }
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    if set_cookie && policy.cache_set_cookie == SetCookiePolicy::Strip {
        header.remove_header("set-cookie");
    }
    RespCacheable::Cacheable(CacheMeta::new(
        fresh_until,
        created,
        secs(swr),
        secs(sie),
        header,
    ))
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
/// `host`) and `Location`/`Content-Location` of the response on the same origin.
pub fn invalidated(
    req: &RequestHeader,
    resp: Option<&ResponseHeader>,
    own: String,
    host: &str,
    status: u16,
) -> Vec<String> {
    let m = &req.method;
    let unsafe_method =
        !(m == Method::GET || m == Method::HEAD || m == Method::OPTIONS || m == Method::TRACE);
    if !unsafe_method || !(200..400).contains(&status) {
        return Vec::new();
    }
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
mod tests {
    //! Freshness and storability over headers alone, at a fixed `now`.
    use super::*;
    use crate::config::KeyQuery;

    fn policy() -> RouteCacheConfig {
        RouteCacheConfig {
            default_ttl: Duration::ZERO,
            max_ttl: Duration::from_secs(86_400),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::from_secs(60),
            key_query: KeyQuery::All,
            key_headers: Vec::new(),
            lock_timeout: Duration::from_secs(5),
            status_header: true,
            cache_set_cookie: SetCookiePolicy::Never,
            heuristic: true,
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn http_date(t: SystemTime) -> String {
        httpdate::fmt_http_date(t)
    }

    fn get(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/p", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    /// Stored for how long from `now`, or why not.
    fn decide(
        p: &RouteCacheConfig,
        req: &RequestHeader,
        r: &ResponseHeader,
    ) -> Result<Duration, String> {
        decide_with(p, req, r, &CacheCtx::default())
    }

    fn decide_with(
        p: &RouteCacheConfig,
        req: &RequestHeader,
        r: &ResponseHeader,
        c: &CacheCtx,
    ) -> Result<Duration, String> {
        match cacheable(req, r, p, c, now()) {
            RespCacheable::Cacheable(meta) => Ok(meta
                .fresh_until()
                .duration_since(now())
                .unwrap_or(Duration::ZERO)),
            RespCacheable::Uncacheable(why) => Err(reason(&why).to_owned()),
        }
    }

    fn secs(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(n))
    }

    fn no(why: &str) -> Result<Duration, String> {
        Err(why.to_owned())
    }

    #[test]
    fn max_age_less_what_the_response_has_aged() {
        let date = http_date(now() - Duration::from_secs(10));
        let p = policy();
        assert_eq!(
            decide(
                &p,
                &get(&[]),
                &resp(200, &[("cache-control", "max-age=100")])
            ),
            secs(100)
        );
        // Age and Date both count; the larger wins.
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=100"),
                ("age", "30"),
                ("date", &date),
            ],
        );
        assert_eq!(decide(&p, &get(&[]), &r), secs(70));
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=100"),
                ("age", "5"),
                ("date", &date),
            ],
        );
        assert_eq!(decide(&p, &get(&[]), &r), secs(90));
        // An invalid Age is ignored; a huge one is "very old", not an error.
        let r = resp(200, &[("cache-control", "max-age=100"), ("age", "-3")]);
        assert_eq!(decide(&p, &get(&[]), &r), secs(100));
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=100"),
                ("age", "99999999999999999999999"),
            ],
        );
        assert!(decide(&p, &get(&[]), &r).unwrap().is_zero());
    }

    #[test]
    fn expires_counts_from_date_and_an_invalid_one_is_past() {
        let p = policy();
        let date = http_date(now());
        let expires = http_date(now() + Duration::from_secs(300));
        let r = resp(200, &[("date", &date), ("expires", &expires)]);
        assert_eq!(decide(&p, &get(&[]), &r), secs(300));
        // Cache-Control wins over Expires.
        let r = resp(
            200,
            &[
                ("date", &date),
                ("expires", &expires),
                ("cache-control", "max-age=5"),
            ],
        );
        assert_eq!(decide(&p, &get(&[]), &r), secs(5));
        // An unparseable Expires means already expired: with no validator, not stored.
        let r = resp(200, &[("date", &date), ("expires", "0")]);
        assert_eq!(decide(&p, &get(&[]), &r), no("no-freshness"));
        // Two Expires lines are not trusted at all.
        let r = resp(
            200,
            &[
                ("date", &date),
                ("expires", &expires),
                ("expires", &expires),
            ],
        );
        assert_eq!(decide(&p, &get(&[]), &r), no("no-freshness"));
    }

    #[test]
    fn heuristic_is_a_tenth_since_last_modified_and_only_for_listed_statuses() {
        let mut p = policy();
        let lm = http_date(now() - Duration::from_secs(1000));
        let r = resp(200, &[("last-modified", &lm)]);
        assert_eq!(decide(&p, &get(&[]), &r), secs(100));
        assert_eq!(
            decide(&p, &get(&[]), &resp(302, &[("last-modified", &lm)])),
            no("no-freshness")
        );
        p.heuristic = false;
        assert_eq!(decide(&p, &get(&[]), &r), no("no-freshness"));
        // default_ttl applies to heuristically cacheable statuses without freshness only.
        p.default_ttl = Duration::from_secs(42);
        assert_eq!(decide(&p, &get(&[]), &resp(404, &[])), secs(42));
        assert_eq!(decide(&p, &get(&[]), &resp(503, &[])), no("no-freshness"));
    }

    #[test]
    fn max_ttl_caps_from_now() {
        let mut p = policy();
        p.max_ttl = Duration::from_secs(60);
        let r = resp(200, &[("cache-control", "max-age=3600"), ("age", "600")]);
        assert_eq!(decide(&p, &get(&[]), &r), secs(60));
    }

    #[test]
    fn what_is_never_stored_and_why() {
        let p = policy();
        let g = get(&[]);
        assert_eq!(
            decide(
                &p,
                &g,
                &resp(200, &[("cache-control", "no-store, max-age=60")])
            ),
            no("no-store")
        );
        assert_eq!(
            decide(
                &p,
                &g,
                &resp(200, &[("cache-control", "private, max-age=60")])
            ),
            no("private")
        );
        assert_eq!(
            decide(
                &p,
                &g,
                &resp(
                    200,
                    &[("cache-control", "max-age=60"), ("vary", "accept, *")]
                )
            ),
            no("vary")
        );
        assert_eq!(
            decide(&p, &g, &resp(206, &[("cache-control", "max-age=60")])),
            no("status")
        );
        let cookie = resp(
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
        );
        assert_eq!(decide(&p, &g, &cookie), no("set-cookie"));
        let authed = get(&[("authorization", "Bearer x")]);
        assert_eq!(
            decide(&p, &authed, &resp(200, &[("cache-control", "max-age=60")])),
            no("authorization")
        );
        // ... unless the response says a shared cache may (RFC 9111 §3.5).
        assert_eq!(
            decide(
                &p,
                &authed,
                &resp(200, &[("cache-control", "public, max-age=60")])
            ),
            secs(60)
        );
    }

    #[test]
    fn set_cookie_strip_stores_without_the_cookie() {
        let mut p = policy();
        p.cache_set_cookie = SetCookiePolicy::Strip;
        let r = resp(
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
        );
        let RespCacheable::Cacheable(meta) =
            cacheable(&get(&[]), &r, &p, &CacheCtx::default(), now())
        else {
            panic!("a response with Set-Cookie under `strip` is stored");
        };
        assert!(!meta.response_header().headers.contains_key("set-cookie"));
    }

    #[test]
    fn zero_freshness_is_stored_only_with_a_validator() {
        let p = policy();
        let g = get(&[]);
        assert_eq!(
            decide(&p, &g, &resp(200, &[("cache-control", "max-age=0")])),
            no("no-freshness")
        );
        assert_eq!(
            decide(
                &p,
                &g,
                &resp(200, &[("cache-control", "max-age=0"), ("etag", "\"a\"")])
            ),
            secs(0)
        );
    }

    #[test]
    fn targeted_fields_take_precedence_and_a_malformed_one_is_ignored() {
        let p = policy();
        let g = get(&[]);
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=500"),
            ],
        );
        assert_eq!(decide(&p, &g, &r), secs(500));
        // A targeted field replaces Cache-Control entirely, `private` included.
        let r = resp(
            200,
            &[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=500"),
            ],
        );
        assert_eq!(decide(&p, &g, &r), secs(500));
        // Not a structured-field dictionary, or a non-integer max-age: Cache-Control applies.
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=\"500\""),
            ],
        );
        assert_eq!(decide(&p, &g, &r), secs(10));
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=10"),
                ("cdn-cache-control", "max-age=5.5"),
            ],
        );
        assert_eq!(decide(&p, &g, &r), secs(10));
        // Brace-Cache-Control (taken off the response by the proxy) outranks both.
        let c = CacheCtx {
            brace_cache_control: Some(http::HeaderValue::from_static("max-age=7")),
            ..CacheCtx::default()
        };
        let r = resp(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=500"),
            ],
        );
        assert_eq!(decide_with(&p, &g, &r, &c), secs(7));
    }

    #[test]
    fn stale_windows_come_from_the_response_or_the_route() {
        let p = policy();
        let g = get(&[]);
        // Seconds past freshness at which the entry may still be served while revalidating,
        // and on an upstream error: the last whole second of each window.
        let windows = |cc: &str| {
            let r = resp(200, &[("cache-control", cc)]);
            let RespCacheable::Cacheable(m) = cacheable(&g, &r, &p, &CacheCtx::default(), now())
            else {
                panic!("stored");
            };
            let last = |serve: fn(&CacheMeta, SystemTime) -> bool| {
                (0..120u64)
                    .take_while(|s| {
                        serve(&m, m.fresh_until() + Duration::from_millis(s * 1000 + 500))
                    })
                    .count()
            };
            (
                last(CacheMeta::serve_stale_while_revalidate),
                last(CacheMeta::serve_stale_if_error),
            )
        };
        assert_eq!(windows("max-age=1"), (0, 60));
        assert_eq!(
            windows("max-age=1, stale-while-revalidate=9, stale-if-error=3"),
            (9, 3)
        );
        // no-cache: stored, always revalidated, never served stale.
        assert_eq!(windows("no-cache, max-age=60, stale-if-error=30"), (0, 0));
    }

    #[test]
    fn a_304_merges_every_field_but_framing() {
        let p = policy();
        let c = CacheCtx {
            revalidation_headers: Some(
                resp(
                    304,
                    &[("x-new", "1"), ("content-length", "0"), ("etag", "\"b\"")],
                )
                .headers
                .clone(),
            ),
            ..CacheCtx::default()
        };
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"a\""),
                ("content-length", "5"),
            ],
        );
        let RespCacheable::Cacheable(meta) = cacheable(&get(&[]), &r, &p, &c, now()) else {
            panic!("stored");
        };
        let h = &meta.response_header().headers;
        assert_eq!(h["x-new"], "1");
        assert_eq!(h["etag"], "\"b\"");
        assert_eq!(h["content-length"], "5");
    }

    fn stored(fresh_for: i64, cc: &str) -> CacheMeta {
        let created = now() - Duration::from_secs(100);
        let fresh_until = if fresh_for >= 0 {
            now() + Duration::from_secs(fresh_for as u64)
        } else {
            now() - Duration::from_secs((-fresh_for) as u64)
        };
        let h = if cc.is_empty() {
            resp(200, &[])
        } else {
            resp(200, &[("cache-control", cc)])
        };
        CacheMeta::new(fresh_until, created, 0, 0, h)
    }

    #[test]
    fn request_directives_on_a_hit() {
        let fresh = stored(50, "");
        let at = |req: &RequestHeader, m: &CacheMeta| hit(req, m, now());
        assert_eq!(at(&get(&[]), &fresh), None);
        assert_eq!(
            at(&get(&[("cache-control", "no-cache")]), &fresh),
            Some(ForcedFreshness::ForceExpired)
        );
        assert_eq!(
            at(&get(&[("pragma", "no-cache")]), &fresh),
            Some(ForcedFreshness::ForceExpired)
        );
        // Pragma is ignored when Cache-Control is present.
        assert_eq!(
            at(
                &get(&[("pragma", "no-cache"), ("cache-control", "max-stale")]),
                &fresh
            ),
            None
        );
        assert_eq!(
            at(&get(&[("cache-control", "min-fresh=60")]), &fresh),
            Some(ForcedFreshness::ForceExpired)
        );
        assert_eq!(at(&get(&[("cache-control", "min-fresh=40")]), &fresh), None);
        let stale = stored(-20, "");
        assert_eq!(
            at(&get(&[("cache-control", "max-stale=30")]), &stale),
            Some(ForcedFreshness::ForceFresh)
        );
        assert_eq!(at(&get(&[("cache-control", "max-stale=10")]), &stale), None);
        assert_eq!(
            at(&get(&[("cache-control", "max-stale")]), &stale),
            Some(ForcedFreshness::ForceFresh)
        );
        // The response may forbid serving it stale.
        let strict = stored(-20, "must-revalidate");
        assert_eq!(at(&get(&[("cache-control", "max-stale")]), &strict), None);
    }

    #[test]
    fn bypass_and_only_if_cached() {
        assert_eq!(bypass(&get(&[])), None);
        assert_eq!(
            bypass(&RequestHeader::build("POST", b"/", None).unwrap()),
            Some("method")
        );
        assert_eq!(
            bypass(&get(&[("cache-control", "no-store")])),
            Some("no-store")
        );
        assert!(only_if_cached(&get(&[(
            "cache-control",
            "max-age=0, only-if-cached"
        )])));
        assert!(!only_if_cached(&get(&[])));
    }

    #[test]
    fn unsafe_success_invalidates_own_url_and_same_origin_locations() {
        let post = RequestHeader::build("POST", b"/a", None).unwrap();
        let own = || "http://h.test/a".to_owned();
        let r = resp(
            201,
            &[
                ("location", "/b"),
                ("content-location", "http://other.test/c"),
            ],
        );
        assert_eq!(
            invalidated(&post, Some(&r), own(), "h.test", 201),
            ["http://h.test/a", "http://h.test/b"]
        );
        let r = resp(200, &[("location", "HTTP://H.test/d")]);
        assert_eq!(
            invalidated(&post, Some(&r), own(), "h.test", 200),
            ["http://h.test/a", "HTTP://H.test/d"]
        );
        assert!(invalidated(&post, None, own(), "h.test", 500).is_empty());
        assert!(invalidated(&get(&[]), None, own(), "h.test", 200).is_empty());
    }
}
