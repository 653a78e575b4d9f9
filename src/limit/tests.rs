//! Unit tests of the limiter: buckets, keys, shadow mode and eviction.

use super::*;

/// A local limit on the client's address.
fn config(rate: u32, per_ms: u64, burst: u32, shadow: bool) -> RateLimitConfig {
    RateLimitConfig {
        key: LimitKey::ClientIp,
        rate,
        per: Duration::from_millis(per_ms),
        burst,
        status: 429,
        shadow,
        max_keys: 1000,
        scope: crate::config::Scope::Local,
        on_store_error: StoreFallback::Local,
        lease: 1,
    }
}

fn limiter(rate: u32, per_ms: u64, burst: u32, shadow: bool) -> Limiter {
    let cfg = config(rate, per_ms, burst, shadow);
    Limiter::new("t", &cfg, &Arc::new(Metrics::new()), None, None)
}

#[test]
fn a_full_key_table_is_counted_and_reported_once_a_minute() {
    let metrics = Arc::new(Metrics::new());
    let cfg = RateLimitConfig {
        max_keys: 8,
        ..config(10, 1000, 10, false)
    };
    let l = Limiter::new("t", &cfg, &metrics, None, None);
    for n in 0..=255u8 {
        let _ = l.check(ip(n), 1_000_000);
        l.refresh_gauge();
    }
    let evicted = metrics
        .rate_limit_keys_evicted_total
        .with_label_values(&["t"])
        .get();
    assert!(evicted >= 200, "evicted {evicted}");
    assert!(l.keys_gauge.get() <= 8);
    let events = metrics.events.since(0, usize::MAX);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, crate::events::Kind::RateLimit);
    assert_eq!(events[0].limit.as_deref(), Some("t"));
}

fn ip(n: u8) -> KeyValue {
    KeyValue::Ip(IpAddr::from([10, 0, 0, n]))
}

#[test]
fn exactly_burst_pass_at_once_then_refill_at_rate() {
    let l = limiter(10, 1000, 5, false); // one every 100 ms, bucket of 5
    let t0 = 1_000_000;
    for i in 0..5 {
        match l.check(ip(1), t0) {
            Decision::Allowed { remaining, .. } => assert_eq!(remaining, 4 - i),
            d => panic!("request {i}: {d:?}"),
        }
    }
    match l.check(ip(1), t0) {
        Decision::Limited {
            retry_after_secs, ..
        } => assert_eq!(retry_after_secs, 1),
        d => panic!("{d:?}"),
    }
    // 100 ms later exactly one more.
    assert!(matches!(
        l.check(ip(1), t0 + 100_000),
        Decision::Allowed { .. }
    ));
    assert!(matches!(
        l.check(ip(1), t0 + 100_000),
        Decision::Limited { .. }
    ));
    // Another key has its own bucket.
    assert!(matches!(
        l.check(ip(2), t0),
        Decision::Allowed { remaining: 4, .. }
    ));
}

#[test]
fn retry_after_is_the_wait_for_one_request() {
    let l = limiter(1, 10_000, 1, false); // one per 10 s
    assert!(matches!(l.check(ip(1), 1), Decision::Allowed { .. }));
    match l.check(ip(1), 1) {
        Decision::Limited {
            retry_after_secs, ..
        } => assert_eq!(retry_after_secs, 10),
        d => panic!("{d:?}"),
    }
    match l.check(ip(1), 4_000_001) {
        Decision::Limited {
            retry_after_secs, ..
        } => assert_eq!(retry_after_secs, 6),
        d => panic!("{d:?}"),
    }
}

#[test]
fn shadow_mode_passes_but_says_so() {
    let l = limiter(1, 1000, 1, true);
    assert!(matches!(l.check(ip(1), 1), Decision::Allowed { .. }));
    assert!(matches!(l.check(ip(1), 1), Decision::ShadowLimited { .. }));
}

#[test]
fn headers() {
    let l = limiter(100, 1000, 50, false);
    assert_eq!(l.policy_value, "\"t\";q=100;w=1");
    let d = l.check(ip(1), 1);
    assert_eq!(l.header(&d), "\"t\";r=49;t=1");
}

#[test]
fn keys_by_path_header_and_client_with_header() {
    let mut req = pingora::http::RequestHeader::build("GET", b"/a/b?q=1", None).unwrap();
    req.insert_header("x-api-key", "k1").unwrap();
    let ip = IpAddr::from([10, 0, 0, 1]);
    let client = Some(ip);
    let key = |k: &LimitKey, client_ip, req| {
        let path = "/a/b";
        let facts = Facts {
            client_ip,
            route: "r",
            host: "h.test",
            path,
            req,
        };
        key_value(k, &facts)
    };
    assert_eq!(
        key(&LimitKey::Path, client, &req),
        Some(KeyValue::Text("/a/b".into()))
    );
    assert_eq!(
        key(&LimitKey::Route, None, &req),
        Some(KeyValue::Text("r".into()))
    );
    let header = LimitKey::Header("x-api-key".into());
    assert_eq!(key(&header, None, &req), Some(KeyValue::Text("k1".into())));
    let both = LimitKey::ClientIpAndHeader("x-api-key".into());
    assert_eq!(
        key(&both, client, &req),
        Some(KeyValue::IpText(ip, "k1".into()))
    );
    // Without the header (or the client address) the limit does not apply.
    let bare = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
    assert_eq!(key(&both, client, &bare), None);
    assert_eq!(key(&header, client, &bare), None);
    assert_eq!(key(&both, None, &req), None);
    assert_eq!(key(&LimitKey::ClientIp, None, &req), None);
    // `host` is the derived host, present over HTTP/2 where no field carries it.
    let host = LimitKey::Header("host".into());
    assert_eq!(
        key(&host, None, &bare),
        Some(KeyValue::Text("h.test".into()))
    );
}

/// Issue 27: a request could wait on the store up to three times `[cluster] timeout` (once
/// per lease it waited for). Against a store that accepts and never answers, on tokio's
/// paused clock (so the machine's speed does not matter), one request waits `timeout` at
/// most, then asks its fallback.
#[tokio::test(start_paused = true)]
async fn a_request_waits_on_a_silent_store_at_most_the_timeout_in_all() {
    // Never accepted: the kernel completes the handshake into the backlog, then silence.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let metrics = Arc::new(Metrics::new());
    let timeout = Duration::from_millis(100);
    let cluster = crate::cluster::Cluster::new(
        &crate::config::ClusterConfig {
            redis: format!("redis://127.0.0.1:{port}/0"),
            password_env: None,
            instance_id: "a".into(),
            namespace: "t".into(),
            timeout,
            connect_timeout: timeout,
            heartbeat: Duration::from_secs(1),
            expected_instances: None,
        },
        &metrics,
    )
    .unwrap();
    cluster.connect().unwrap();
    let cfg = RateLimitConfig {
        scope: crate::config::Scope::Global,
        ..config(10, 1000, 10, false)
    };
    let g = global::Global::new("l", &cluster, &cfg, 100_000, 1_000_000, &metrics, None);
    let key = KeyValue::Text("k".into());
    let start = tokio::time::Instant::now();
    let decision = g.check(&key, crate::clock::now_us()).await;
    assert!(decision.is_none(), "the fallback decides: {decision:?}");
    let waited = start.elapsed();
    // It did ask the store (the key had no lease), and gave up at the timeout, not later.
    assert!(
        waited > Duration::ZERO && waited <= timeout,
        "waited {waited:?} on the store"
    );
    drop(hole);
}
