//! Revalidation: what a 304 changes in the stored response before freshness is worked out.

use super::*;

/// RFC 9111 §4.3.4: a 304's `Date` replaces the stored one before freshness is worked
/// out, so a response revalidated now is fresh again rather than aged from its first fetch.
#[test]
fn a_revalidated_response_is_fresh_from_the_304s_date() {
    let p = policy();
    let old = http_date(now() - Duration::from_secs(100));
    let stored = resp(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("date", &old),
            ("etag", "\"a\""),
        ],
    );
    let fresh_304 = resp(304, &[("date", &http_date(now())), ("etag", "\"a\"")]);
    let c = CacheCtx {
        revalidation_headers: Some(fresh_304.headers.clone()),
        ..CacheCtx::default()
    };
    let RespCacheable::Cacheable(meta) = cacheable(&get(&[]), &stored, &p, &c, now()) else {
        panic!("stored");
    };
    assert_eq!(meta.fresh_until(), now() + Duration::from_secs(60));
    // Without the 304 the same stored response is 40 s stale.
    let c = CacheCtx::default();
    let RespCacheable::Cacheable(meta) = cacheable(&get(&[]), &stored, &p, &c, now()) else {
        panic!("stored");
    };
    assert!(meta.fresh_until() < now());
}
