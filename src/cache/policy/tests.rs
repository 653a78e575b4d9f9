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
    let RespCacheable::Cacheable(meta) = cacheable(&get(&[]), &r, &p, &CacheCtx::default(), now())
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
        let RespCacheable::Cacheable(m) = cacheable(&g, &r, &p, &CacheCtx::default(), now()) else {
            panic!("stored");
        };
        let last = |serve: fn(&CacheMeta, SystemTime) -> bool| {
            (0..120u64)
                .take_while(|s| serve(&m, m.fresh_until() + Duration::from_millis(s * 1000 + 500)))
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
        invalidated(&post, Some(&r), own, "h.test", 201),
        ["http://h.test/a", "http://h.test/b"]
    );
    let r = resp(200, &[("location", "HTTP://H.test/d")]);
    assert_eq!(
        invalidated(&post, Some(&r), own, "h.test", 200),
        ["http://h.test/a", "HTTP://H.test/d"]
    );
    assert!(invalidated(&post, None, own, "h.test", 500).is_empty());
    assert!(invalidated(&get(&[]), None, own, "h.test", 200).is_empty());
}

mod revalidation;
