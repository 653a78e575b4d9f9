//! Rate limits against real upstreams: burst, refill, keys, headers, XFF, memory bound, shadow.

mod support;
use std::time::{Duration, Instant};
use support::*;

fn limited_config(up: &Upstream, limit: &str) -> String {
    format!(
        "[rate_limit.per_client]\n{limit}\n\n[[route]]\nname = \"main\"\nupstream = \"pool\"\nrate_limits = [\"per_client\"]\n\n[upstream.pool]\nbackends = [\"{}\"]\n",
        up.addr
    )
}

fn req(b: &Brace, headers: &str) -> Response {
    send(
        b.addr(),
        format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .unwrap()
}

#[test]
fn exactly_burst_pass_then_refusals_with_headers_and_nothing_reaches_the_upstream() {
    let up = Upstream::start("u");
    // Touchy tables: a refusal counted against the backend would eject it at once.
    let b = Brace::start(&format!(
        "{}{TOUCHY}",
        limited_config(
            &up,
            "key = \"client_ip\"\nrate = 1\nper = \"60s\"\nburst = 5"
        )
    ));
    for _ in 0..5 {
        assert_eq!(b.get("/").status, 200);
    }
    let r = b.get("/");
    assert_eq!(r.status, 429);
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((50..=60).contains(&ra), "retry-after {ra}");
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"per_client\";q=1;w=60")
    );
    let rl = r.header("ratelimit").unwrap();
    assert!(rl.starts_with("\"per_client\";r=0;t="), "{rl}");
    assert!(
        r.text().contains(&format!(
            "rate limit \"per_client\" exceeded; retry in {ra} s"
        )),
        "{}",
        r.text()
    );
    for _ in 0..5 {
        assert_eq!(b.get("/").status, 429);
    }
    assert_eq!(up.count(), 5);
    b.wait_metric("brace_rate_limit_decisions_total{decision=\"allowed\",limit=\"per_client\",route=\"main\"}", 5.0);
    b.wait_metric("brace_rate_limit_decisions_total{decision=\"limited\",limit=\"per_client\",route=\"main\"}", 6.0);
    b.wait_metric("brace_requests_total{code=\"429\",route=\"main\"}", 6.0);
    assert_no_backend_blamed(&b);
}

#[test]
fn the_bucket_refills_at_rate_per_period() {
    let up = Upstream::start("u");
    let b = Brace::start(&limited_config(
        &up,
        "key = \"client_ip\"\nrate = 5\nper = \"1s\"\nburst = 1",
    ));
    assert_eq!(b.get("/").status, 200);
    let refused = Instant::now();
    assert_eq!(b.get("/").status, 429);
    // One request refills every 200 ms.
    wait_for("the next token", Duration::from_secs(3), || {
        b.get("/").status == 200
    });
    // Not before the refill (its arithmetic is unit-tested on a stepped clock in `limit`);
    // how soon after depends on the machine, so only `wait_for`'s deadline bounds it.
    let waited = refused.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
}

#[test]
fn keys_are_isolated_and_a_missing_key_is_not_limited() {
    let up = Upstream::start("u");
    let b = Brace::start(&limited_config(
        &up,
        "key = \"header:x-api-key\"\nrate = 1\nper = \"60s\"\nburst = 2",
    ));
    for _ in 0..2 {
        assert_eq!(req(&b, "X-Api-Key: a\r\n").status, 200);
    }
    assert_eq!(req(&b, "X-Api-Key: a\r\n").status, 429);
    assert_eq!(req(&b, "X-Api-Key: b\r\n").status, 200);
    for _ in 0..5 {
        assert_eq!(req(&b, "").status, 200, "no key, no limit");
    }
}

#[test]
fn client_ip_comes_from_xff_only_behind_a_trusted_proxy() {
    let up = Upstream::start("u");
    let limit = "key = \"client_ip\"\nrate = 1\nper = \"60s\"\nburst = 1";
    // 127.0.0.1 is trusted by default: two clients behind it have their own buckets.
    let b = Brace::start(&limited_config(&up, limit));
    assert_eq!(req(&b, "X-Forwarded-For: 203.0.113.1\r\n").status, 200);
    assert_eq!(req(&b, "X-Forwarded-For: 203.0.113.2\r\n").status, 200);
    assert_eq!(req(&b, "X-Forwarded-For: 203.0.113.1\r\n").status, 429);
    // Untrusted: a spoofed header does not buy a fresh bucket.
    let b = Brace::start_with(
        &limited_config(&up, limit),
        "trusted_proxies = [\"10.0.0.0/8\"]",
    );
    assert_eq!(req(&b, "X-Forwarded-For: 203.0.113.1\r\n").status, 200);
    assert_eq!(req(&b, "X-Forwarded-For: 203.0.113.2\r\n").status, 429);
}

#[test]
fn max_keys_bounds_memory_under_a_key_flood() {
    let up = Upstream::start("u");
    let b = Brace::start(&format!(
        "{}{TOUCHY}",
        limited_config(
            &up,
            "key = \"header:x-k\"\nrate = 1\nper = \"60s\"\nburst = 1\nmax_keys = 100",
        )
    ));
    let addr = b.addr();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..500 {
                    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nX-K: key-{t}-{i}\r\nConnection: close\r\n\r\n");
                    assert_eq!(send(addr, raw.as_bytes()).unwrap().status, 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let keys = b.metric("brace_rate_limit_keys{limit=\"per_client\"}");
    assert!(
        keys > 0.0 && keys <= 100.0,
        "{keys} keys held for max_keys = 100"
    );
    assert_no_backend_blamed(&b);
}

#[test]
fn shadow_mode_passes_everything_but_counts() {
    let up = Upstream::start("u");
    let b = Brace::start(&limited_config(
        &up,
        "key = \"client_ip\"\nrate = 1\nper = \"60s\"\nburst = 2\nmode = \"shadow\"",
    ));
    for _ in 0..5 {
        assert_eq!(b.get("/").status, 200);
    }
    assert_eq!(up.count(), 5);
    b.wait_metric("brace_rate_limit_decisions_total{decision=\"shadow_limited\",limit=\"per_client\",route=\"main\"}", 3.0);
}

#[test]
fn allowed_responses_carry_ratelimit_when_asked() {
    let up = Upstream::start("u");
    let b = Brace::start_with(
        &limited_config(
            &up,
            "key = \"client_ip\"\nrate = 10\nper = \"60s\"\nburst = 3",
        ),
        "rate_limit_headers = true",
    );
    let r1 = b.get("/");
    assert_eq!(
        r1.header("ratelimit")
            .map(|v| v.split(';').nth(1).unwrap().to_owned()),
        Some("r=2".into())
    );
    let r2 = b.get("/");
    assert_eq!(
        r2.header("ratelimit")
            .map(|v| v.split(';').nth(1).unwrap().to_owned()),
        Some("r=1".into())
    );
    let plain = Brace::start(&limited_config(
        &up,
        "key = \"client_ip\"\nrate = 10\nper = \"60s\"\nburst = 3",
    ));
    assert_eq!(plain.get("/").header("ratelimit"), None);
}
