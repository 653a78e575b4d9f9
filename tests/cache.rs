//! The response cache, one group per RFC 9111 section, against scripted origins that count
//! requests. Plus coalescing, stale serving, bounds, purge and targeted fields.

mod support;
use std::time::Duration;
use support::*;
use support::{cache_status as status, shop_get as req};

const ROUTE_CACHE: &str = "[route.cache]";

fn cached(origin: &Upstream, route_cache: &str) -> Brace {
    Brace::start(&format!(
        "[cache]\nmax_size = \"8MiB\"\nmax_object_size = \"64KiB\"\n\n[[route]]\nname = \"main\"\nupstream = \"pool\"\n{ROUTE_CACHE}\n{route_cache}\n\n[upstream.pool]\nbackends = [\"{}\"]\n",
        origin.addr
    ))
}

/// An origin answering 200 with `headers` and a body that counts requests.
fn origin(headers: &'static str) -> Upstream {
    Upstream::with_mode(
        "o",
        script(move |_, n| (200, headers.to_string(), format!("body {n}").into_bytes())),
    )
}

fn http_date(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

// ---------------------------------------------------------------- §4.2 freshness

#[test]
fn max_age_makes_a_hit_with_age_and_the_origin_sees_one_request() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    let r1 = req(&b, "/a", "");
    assert_eq!(
        (r1.status, status(&r1), r1.text().as_str()),
        (200, "MISS", "body 0")
    );
    let r2 = req(&b, "/a", "");
    assert_eq!((status(&r2), r2.text().as_str()), ("HIT", "body 0"));
    assert!(r2.header("age").is_some(), "Age missing on a hit");
    assert_eq!(o.count(), 1);
    b.wait_metric(
        "brace_cache_requests_total{route=\"main\",status=\"HIT\"}",
        1.0,
    );
}

#[test]
fn s_maxage_wins_over_max_age_for_a_shared_cache() {
    let o = origin("Cache-Control: max-age=0, s-maxage=60\r\n");
    let b = cached(&o, "");
    req(&b, "/s", "");
    assert_eq!(status(&req(&b, "/s", "")), "HIT");
    assert_eq!(o.count(), 1);
}

#[test]
fn expires_minus_date_gives_freshness_and_a_past_expires_is_not_stored() {
    let now = std::time::SystemTime::now();
    let future: &'static str = Box::leak(
        format!(
            "Date: {}\r\nExpires: {}\r\n",
            http_date(now),
            http_date(now + Duration::from_secs(60))
        )
        .into_boxed_str(),
    );
    let o = origin(future);
    let b = cached(&o, "");
    req(&b, "/e", "");
    assert_eq!(status(&req(&b, "/e", "")), "HIT");

    let past: &'static str = Box::leak(
        format!(
            "Date: {}\r\nExpires: {}\r\n",
            http_date(now),
            http_date(now - Duration::from_secs(60))
        )
        .into_boxed_str(),
    );
    let o2 = origin(past);
    let b2 = cached(&o2, "");
    req(&b2, "/e", "");
    let r = req(&b2, "/e", "");
    assert_ne!(status(&r), "HIT");
    assert_eq!(o2.count(), 2);
}

#[test]
fn age_from_upstream_counts_against_freshness() {
    let o = origin("Cache-Control: max-age=100\r\nAge: 95\r\n");
    let b = cached(&o, "");
    req(&b, "/g", "");
    let r = req(&b, "/g", "");
    assert_eq!(status(&r), "HIT");
    let age: u64 = r.header("age").unwrap().parse().unwrap();
    assert!(age >= 95, "Age {age} forgot the upstream's 95");
}

#[test]
fn no_freshness_is_not_stored_unless_default_ttl_says_so() {
    let o = origin("");
    let b = cached(&o, "");
    let r = req(&b, "/n", "");
    assert_eq!(
        (status(&r), r.header("x-cache-reason")),
        ("UNCACHEABLE", Some("no-freshness"))
    );
    req(&b, "/n", "");
    assert_eq!(o.count(), 2);
    b.wait_metric(
        "brace_cache_not_stored_total{reason=\"no-freshness\",route=\"main\"}",
        2.0,
    );

    let o2 = origin("");
    let b2 = cached(&o2, "default_ttl = \"30s\"");
    req(&b2, "/n", "");
    assert_eq!(status(&req(&b2, "/n", "")), "HIT");
}

#[test]
fn max_ttl_caps_freshness() {
    let o = origin("Cache-Control: max-age=3600\r\n");
    let b = cached(&o, "max_ttl = \"1s\"\nstale_if_error = \"0s\"");
    req(&b, "/m", "");
    assert_eq!(status(&req(&b, "/m", "")), "HIT");
    wait_for(
        "the entry to expire after max_ttl",
        Duration::from_secs(5),
        || status(&req(&b, "/m", "")) != "HIT",
    );
    assert_eq!(o.count(), 2);
}

// ---------------------------------------------------------------- §5.2.1 request directives

#[test]
fn request_no_cache_and_max_age_zero_go_to_the_origin() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    req(&b, "/r", "");
    let r = req(&b, "/r", "Cache-Control: no-cache\r\n");
    assert_ne!(status(&r), "HIT");
    assert_eq!(o.count(), 2);
    let r = req(&b, "/r", "Cache-Control: max-age=0\r\n");
    assert_ne!(status(&r), "HIT");
    assert_eq!(o.count(), 3);
    assert_eq!(status(&req(&b, "/r", "")), "HIT");
}

#[test]
fn only_if_cached_is_504_on_a_miss_and_a_hit_otherwise() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    let r = req(&b, "/o", "Cache-Control: only-if-cached\r\n");
    assert_eq!(r.status, 504);
    assert_eq!(o.count(), 0);
    req(&b, "/o", "");
    let r = req(&b, "/o", "Cache-Control: only-if-cached\r\n");
    assert_eq!((r.status, status(&r)), (200, "HIT"));
}

#[test]
fn request_no_store_bypasses() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    let r = req(&b, "/ns", "Cache-Control: no-store\r\n");
    assert_eq!(status(&r), "BYPASS");
    assert_eq!(
        status(&req(&b, "/ns", "")),
        "MISS",
        "the bypassed response was stored"
    );
}

// ---------------------------------------------------------------- §5.2.2 response directives

#[test]
fn response_no_store_and_private_are_not_stored() {
    for (cc, reason) in [("no-store", "no-store"), ("private, max-age=60", "private")] {
        let h: &'static str = Box::leak(format!("Cache-Control: {cc}\r\n").into_boxed_str());
        let o = origin(h);
        let b = cached(&o, "");
        let r = req(&b, "/p", "");
        assert_eq!(
            (status(&r), r.header("x-cache-reason")),
            ("UNCACHEABLE", Some(reason))
        );
        req(&b, "/p", "");
        assert_eq!(o.count(), 2, "{cc}");
    }
}

/// An origin with validators that answers 304 to a matching If-None-Match.
fn validating_origin(cc: &'static str) -> Upstream {
    Upstream::with_mode(
        "o",
        script(move |head, n| {
            let common = format!("Cache-Control: {cc}\r\nETag: \"v1\"\r\nX-Version: {n}\r\n");
            if head.contains("if-none-match: \"v1\"") {
                (304, common, Vec::new())
            } else {
                (200, common, b"original body".to_vec())
            }
        }),
    )
}

#[test]
fn response_no_cache_is_stored_but_revalidated_every_time() {
    let o = validating_origin("no-cache");
    let b = cached(&o, "");
    req(&b, "/v", "");
    let r = req(&b, "/v", "");
    assert_eq!(
        (status(&r), r.text().as_str()),
        ("REVALIDATED", "original body")
    );
    assert!(o.head().contains("if-none-match: \"v1\""), "{}", o.head());
    assert_eq!(o.count(), 2);
}

#[test]
fn must_revalidate_forbids_serving_stale_on_error() {
    let o = Upstream::with_mode(
        "o",
        script(|_, n| {
            if n == 0 {
                (
                    200,
                    "Cache-Control: max-age=1, must-revalidate\r\n".into(),
                    b"fresh".to_vec(),
                )
            } else {
                (500, String::new(), b"broken".to_vec())
            }
        }),
    );
    let b = cached(&o, "stale_if_error = \"5m\"");
    req(&b, "/mr", "");
    wait_for("expiry", Duration::from_secs(5), || {
        req(&b, "/mr", "").status == 500
    });
}

// ---------------------------------------------------------------- §4.1 Vary

fn vary_origin(vary: &'static str) -> Upstream {
    Upstream::with_mode(
        "o",
        script(move |head, n| {
            let lang = head
                .lines()
                .find_map(|l| l.strip_prefix("accept-language: "))
                .unwrap_or("-")
                .to_owned();
            (
                200,
                format!("Cache-Control: max-age=60\r\nVary: {vary}\r\n"),
                format!("{lang} {n}").into_bytes(),
            )
        }),
    )
}

#[test]
fn vary_splits_variants_and_star_is_not_stored() {
    let o = vary_origin("Accept-Language");
    let b = cached(&o, "");
    assert_eq!(req(&b, "/v", "Accept-Language: en\r\n").text(), "en 0");
    let r = req(&b, "/v", "Accept-Language: en\r\n");
    assert_eq!((status(&r), r.text().as_str()), ("HIT", "en 0"));
    let r = req(&b, "/v", "Accept-Language: fr\r\n");
    assert_eq!((status(&r), r.text().as_str()), ("MISS", "fr 1"));
    assert_eq!(req(&b, "/v", "Accept-Language: fr\r\n").text(), "fr 1");
    assert_eq!(req(&b, "/v", "Accept-Language: en\r\n").text(), "en 0");

    let star = vary_origin("*");
    let b2 = cached(&star, "");
    let r = req(&b2, "/v", "");
    assert_eq!(
        (status(&r), r.header("x-cache-reason")),
        ("UNCACHEABLE", Some("vary"))
    );
}

#[test]
fn vary_on_several_headers_with_whitespace_normalised() {
    let o = vary_origin("Accept-Language, Accept-Encoding");
    let b = cached(&o, "");
    req(
        &b,
        "/v",
        "Accept-Language: en\r\nAccept-Encoding: gzip,deflate\r\n",
    );
    let r = req(
        &b,
        "/v",
        "Accept-Language: en\r\nAccept-Encoding: gzip,   deflate\r\n",
    );
    assert_eq!(status(&r), "HIT", "whitespace split the variant");
    let r = req(&b, "/v", "Accept-Language: en\r\nAccept-Encoding: br\r\n");
    assert_eq!(status(&r), "MISS");
}

// ---------------------------------------------------------------- §4.3 validation

#[test]
fn etag_revalidation_merges_the_304_headers() {
    let o = validating_origin("max-age=0");
    let b = cached(&o, "");
    let r1 = req(&b, "/e", "");
    assert_eq!(r1.header("x-version"), Some("0"));
    let r2 = req(&b, "/e", "");
    assert_eq!(
        (status(&r2), r2.text().as_str()),
        ("REVALIDATED", "original body")
    );
    assert_eq!(
        r2.header("x-version"),
        Some("1"),
        "304's headers not merged"
    );
}

#[test]
fn last_modified_revalidation() {
    let lm = http_date(std::time::SystemTime::now() - Duration::from_secs(3600));
    let lm: &'static str = Box::leak(lm.into_boxed_str());
    let o = Upstream::with_mode(
        "o",
        script(move |head, _| {
            let h = format!("Cache-Control: max-age=0\r\nLast-Modified: {lm}\r\n");
            if head.contains("if-modified-since:") {
                (304, h, Vec::new())
            } else {
                (200, h, b"by date".to_vec())
            }
        }),
    );
    let b = cached(&o, "");
    req(&b, "/l", "");
    let r = req(&b, "/l", "");
    assert_eq!((status(&r), r.text().as_str()), ("REVALIDATED", "by date"));
    assert!(o.head().contains("if-modified-since:"));
}

#[test]
fn a_client_if_none_match_is_answered_from_cache() {
    let o = validating_origin("max-age=60");
    let b = cached(&o, "");
    req(&b, "/c", "");
    let r = req(&b, "/c", "If-None-Match: \"v1\"\r\n");
    assert_eq!(r.status, 304);
    assert_eq!(o.count(), 1);
}

// ---------------------------------------------------------------- §4.4 invalidation

#[test]
fn a_successful_unsafe_request_invalidates_the_url_and_its_location() {
    let o = Upstream::with_mode(
        "o",
        script(|head, n| {
            if head.starts_with("post") {
                (201, "Location: /items/2\r\n".into(), b"created".to_vec())
            } else {
                (
                    200,
                    "Cache-Control: max-age=60\r\n".into(),
                    format!("v{n}").into_bytes(),
                )
            }
        }),
    );
    let b = cached(&o, "");
    req(&b, "/items", "");
    req(&b, "/items/2", "");
    assert_eq!(status(&req(&b, "/items", "")), "HIT");
    let r = send(b.addr(), b"POST /items HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").unwrap();
    assert_eq!((r.status, status(&r)), (201, "BYPASS"));
    b.wait_metric("brace_cache_purged_total", 2.0);
    assert_eq!(status(&req(&b, "/items", "")), "MISS");
    assert_eq!(status(&req(&b, "/items/2", "")), "MISS");
}

// ---------------------------------------------------------------- §3.5, Set-Cookie, hosts, HEAD

#[test]
fn authorization_needs_public_and_set_cookie_is_not_stored() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    let r = req(&b, "/a", "Authorization: Bearer x\r\n");
    assert_eq!(r.header("x-cache-reason"), Some("authorization"));
    req(&b, "/a", "Authorization: Bearer x\r\n");
    assert_eq!(o.count(), 2);

    let public = origin("Cache-Control: public, max-age=60\r\n");
    let b2 = cached(&public, "");
    req(&b2, "/a", "Authorization: Bearer x\r\n");
    assert_eq!(
        status(&req(&b2, "/a", "Authorization: Bearer x\r\n")),
        "HIT"
    );

    let cookie = origin("Cache-Control: max-age=60\r\nSet-Cookie: s=1\r\n");
    let b3 = cached(&cookie, "");
    assert_eq!(
        req(&b3, "/c", "").header("x-cache-reason"),
        Some("set-cookie")
    );
}

#[test]
fn one_hosts_content_is_never_served_for_another() {
    let o = host_echo(
        "Cache-Control: max-age=60
",
    );
    let b = cached(&o, "");
    let get = |host: &str| {
        send(
            b.addr(),
            format!("GET /h HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(get("a.example").text(), "a.example");
    assert_eq!(get("b.example").text(), "b.example");
    let r = get("a.example");
    assert_eq!((status(&r), r.text().as_str()), ("HIT", "a.example"));
}

#[test]
fn head_is_answered_from_a_stored_get() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    req(&b, "/h", "");
    let r = head_request(b.addr(), "/h", "shop.example").unwrap();
    assert_eq!((r.status, status(&r)), (200, "HIT"));
    assert!(r.body.is_empty(), "HEAD got a body");
    assert_eq!(o.count(), 1);
    // A HEAD miss fetches (and stores) the GET, which a later GET then hits.
    let r = head_request(b.addr(), "/h2", "shop.example").unwrap();
    assert_eq!((r.status, status(&r)), (200, "MISS"));
    assert!(o.head().starts_with("get /h2 "), "{}", o.head());
    assert_eq!(status(&req(&b, "/h2", "")), "HIT");
}

// ---------------------------------------------------------------- coalescing and stale

#[test]
fn fifty_concurrent_misses_make_one_upstream_request() {
    let o = Upstream::with_mode(
        "o",
        script(|_, n| {
            std::thread::sleep(Duration::from_millis(500)); // allowed: a slow origin on purpose, so misses overlap
            (
                200,
                "Cache-Control: max-age=60\r\n".into(),
                format!("v{n}").into_bytes(),
            )
        }),
    );
    let b = cached(&o, "lock_timeout = \"5s\"");
    let addr = b.addr();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                send(
                    addr,
                    b"GET /hot HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
                )
                .unwrap()
            })
        })
        .collect();
    let bodies: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().text())
        .collect();
    assert!(bodies.iter().all(|t| t == "v0"), "{bodies:?}");
    assert_eq!(o.count(), 1, "the stampede reached the origin");
}

#[test]
fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let o = origin("Cache-Control: max-age=1, stale-while-revalidate=30\r\n");
    let b = cached(&o, "");
    req(&b, "/s", "");
    let mut stale = None;
    wait_for("a stale answer", Duration::from_secs(5), || {
        let r = req(&b, "/s", "");
        let is = status(&r) == "STALE";
        if is {
            stale = Some(r);
        }
        is
    });
    assert_eq!(stale.unwrap().text(), "body 0");
    wait_for("the background refresh", Duration::from_secs(5), || {
        o.count() == 2
    });
    wait_for("the refreshed copy", Duration::from_secs(5), || {
        req(&b, "/s", "").text() == "body 1"
    });
}

#[test]
fn stale_if_error_on_5xx_refused_and_open_breaker() {
    // 5xx from the origin.
    let o = Upstream::with_mode(
        "o",
        script(|_, n| {
            if n == 0 {
                (200, "Cache-Control: max-age=1\r\n".into(), b"old".to_vec())
            } else {
                (503, String::new(), b"down".to_vec())
            }
        }),
    );
    let b = cached(&o, "stale_if_error = \"5m\"");
    req(&b, "/x", "");
    wait_for("a stale answer on 503", Duration::from_secs(5), || {
        let r = req(&b, "/x", "");
        r.status == 200 && status(&r) == "STALE" && r.text() == "old"
    });

    // Refused connections.
    let o2 = origin("Cache-Control: max-age=1\r\n");
    let b2 = cached(&o2, "stale_if_error = \"5m\"");
    req(&b2, "/x", "");
    o2.stop();
    wait_for(
        "a stale answer when refused",
        Duration::from_secs(5),
        || {
            let r = req(&b2, "/x", "");
            r.status == 200 && status(&r) == "STALE"
        },
    );

    // A pool whose breaker is open: stale, without touching the upstream.
    let o3 = Upstream::with_mode(
        "o",
        script(|_, n| {
            if n == 0 {
                (
                    200,
                    "Cache-Control: max-age=1\r\n".into(),
                    b"cached".to_vec(),
                )
            } else {
                (500, String::new(), b"boom".to_vec())
            }
        }),
    );
    let b3 = Brace::start(&format!(
        "[cache]\n[[route]]\nname = \"main\"\nupstream = \"pool\"\n[route.cache]\n\n[[route]]\nname = \"raw\"\npath_prefix = \"/raw/\"\nupstream = \"pool\"\n\
         [upstream.pool]\nbackends = [\"{}\"]\n[upstream.pool.retry]\nattempts = 0\n\
         [upstream.pool.circuit_breaker]\nconsecutive_failures = 2\nfailure_ratio = 0.0\nopen_duration = \"60s\"\n",
        o3.addr
    ));
    req(&b3, "/x", "");
    // The miss's success is recorded after its answer was sent (while the body is stored):
    // wait for it, or under load it could land between the two failures and reset the
    // breaker's streak.
    b3.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"success\",upstream=\"pool\"}}",
            o3.addr
        ),
        1.0,
    );
    req(&b3, "/raw/1", "");
    req(&b3, "/raw/2", "");
    b3.wait_metric(
        &format!(
            "brace_circuit_breaker_state{{backend=\"{}\",upstream=\"pool\"}}",
            o3.addr
        ),
        2.0,
    );
    let before = o3.count();
    wait_for(
        "a stale answer with the breaker open",
        Duration::from_secs(5),
        || {
            let r = req(&b3, "/x", "");
            r.status == 200 && status(&r) == "STALE" && r.text() == "cached"
        },
    );
    assert_eq!(o3.count(), before, "an open breaker let a request through");
}

// ---------------------------------------------------------------- bounds, purge, targeted fields

#[test]
fn objects_over_max_object_size_are_abandoned() {
    let big = Upstream::with_mode(
        "o",
        script(|_, _| {
            (
                200,
                "Cache-Control: max-age=60\r\n".into(),
                vec![b'x'; 100 * 1024],
            )
        }),
    );
    let b = cached(&big, "");
    let r = req(&b, "/big", "");
    assert_eq!(
        r.body.len(),
        100 * 1024,
        "the client still gets the whole body"
    );
    assert_ne!(status(&req(&b, "/big", "")), "HIT");
    assert_eq!(big.count(), 2);
    b.wait_metric(
        "brace_cache_not_stored_total{reason=\"too-large\",route=\"main\"}",
        2.0,
    );
}

#[test]
fn stored_bytes_stay_within_max_size_under_a_key_flood() {
    let o = Upstream::with_mode(
        "o",
        script(|_, _| {
            (
                200,
                "Cache-Control: max-age=60\r\n".into(),
                vec![b'y'; 2048],
            )
        }),
    );
    let b = Brace::start(&format!(
        "[cache]\nmax_size = \"64KiB\"\nmax_object_size = \"4KiB\"\n[[route]]\nname = \"main\"\nupstream = \"pool\"\n[route.cache]\n[upstream.pool]\nbackends = [\"{}\"]\n",
        o.addr
    ));
    for i in 0..300 {
        assert_eq!(req(&b, &format!("/k{i}"), "").status, 200);
    }
    let bytes = b.metric("brace_cache_stored_bytes");
    assert!(
        bytes > 0.0 && bytes <= 65536.0,
        "{bytes} bytes stored for max_size 64KiB"
    );
    assert!(b.metric("brace_cache_evictions_total") > 0.0);
}

#[test]
fn purge_by_url_by_prefix_and_clear() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    for p in ["/a/1", "/a/2", "/b/1"] {
        req(&b, p, "");
    }
    let json = |r: Response| -> serde_json::Value { serde_json::from_slice(&r.body).unwrap() };
    let post_json = |path: &str, body: &str| {
        send(
            b.admin(),
            format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(
        json(post_json(
            "/api/cache/purge",
            r#"{"url": "http://Shop.Example/a/1"}"#
        ))["purged"],
        1
    );
    assert_eq!(status(&req(&b, "/a/1", "")), "MISS");
    assert_eq!(
        json(post_json(
            "/api/cache/purge",
            r#"{"prefix": "http://shop.example/a/"}"#
        ))["purged"],
        2
    );
    assert_eq!(status(&req(&b, "/a/2", "")), "MISS");
    assert_eq!(status(&req(&b, "/b/1", "")), "HIT");
    assert!(
        json(post_json("/api/cache/clear", ""))["purged"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(status(&req(&b, "/b/1", "")), "MISS");
    assert_eq!(post_json("/api/cache/purge", "nonsense").status, 400);
}

#[test]
fn targeted_fields_override_cache_control() {
    let cdn = origin("Cache-Control: no-store\r\nCDN-Cache-Control: max-age=60\r\n");
    let b = cached(&cdn, "");
    let r = req(&b, "/t", "");
    assert_eq!(
        r.header("cdn-cache-control"),
        Some("max-age=60"),
        "CDN-Cache-Control is forwarded"
    );
    assert_eq!(status(&req(&b, "/t", "")), "HIT");

    let own = origin("Cache-Control: no-store\r\nBrace-Cache-Control: max-age=60\r\n");
    let b2 = cached(&own, "");
    let r = req(&b2, "/t", "");
    assert_eq!(
        r.header("brace-cache-control"),
        None,
        "Brace-Cache-Control is for brace alone"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(status(&req(&b2, "/t", "")), "HIT");
}

#[test]
fn cache_survives_a_reload() {
    let o = origin("Cache-Control: max-age=60\r\n");
    let b = cached(&o, "");
    req(&b, "/r", "");
    let other = Upstream::start("other");
    b.rewrite(&format!(
        "[cache]\nmax_size = \"8MiB\"\nmax_object_size = \"64KiB\"\n\n[[route]]\nname = \"main\"\nupstream = \"pool\"\n{ROUTE_CACHE}\n\n\
         [[route]]\nname = \"new\"\npath_prefix = \"/new/\"\nupstream = \"o2\"\n[upstream.pool]\nbackends = [\"{}\"]\n[upstream.o2]\nbackends = [\"{}\"]\n",
        o.addr, other.addr
    ));
    assert_eq!(b.reload().status, 200);
    assert_eq!(status(&req(&b, "/r", "")), "HIT");
    assert_eq!(o.count(), 1, "the reload emptied the cache");
}
