//! A fleet on one real `redis-server`: two or three brace processes sharing a global rate
//! limit, purging each other's caches, seeing each other in `/api/fleet`; and Redis killed
//! under them.

mod support;
use support::redis::Redis;
use support::*;

/// `[cluster]` for `redis`, with `id` and a fast heartbeat.
fn cluster(redis: &Redis, id: &str, extra: &str) -> String {
    format!(
        "[cluster]\nredis = \"{}\"\ninstance_id = \"{id}\"\nheartbeat = \"200ms\"\n{extra}\n\n",
        redis.url()
    )
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn post_json(addr: std::net::SocketAddr, path: &str, body: &str) -> Response {
    send(
        addr,
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
    )
    .unwrap()
}

fn get_key(b: &Brace, key: &str) -> Response {
    send(
        b.addr(),
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap()
}

const GLOBAL: &str = "rate_limits = [\"per_key\"]";

fn limit(extra: &str) -> String {
    format!("[rate_limit.per_key]\nkey = \"header:x-api-key\"\nrate = 30\nper = \"60s\"\nburst = 30\nscope = \"global\"\n{extra}\n")
}

#[test]
fn a_global_limit_is_one_budget_across_three_instances() {
    let redis = Redis::start();
    let up = Upstream::start("app");
    let fleet: Vec<Brace> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            Brace::start(&format!(
                "{}{}{}",
                cluster(&redis, id, ""),
                limit("lease = 4"),
                simple_config(GLOBAL, &[&up], TOUCHY)
            ))
        })
        .collect();
    // 90 requests for one key, spread over the three: 30 pass (the bucket), wherever they land.
    let mut passed = 0;
    let mut refused = Vec::new();
    for i in 0..90 {
        let r = get_key(&fleet[i % 3], "k1");
        match r.status {
            200 => passed += 1,
            429 => refused.push(r),
            s => panic!("status {s}: {}", r.text()),
        }
    }
    assert_eq!(
        passed, 30,
        "the fleet let {passed} of 90 through a limit of 30"
    );
    assert_eq!(up.count(), 30);
    // Refusals look like a local limit's.
    let r = &refused[0];
    assert!(r
        .header("retry-after")
        .is_some_and(|v| v.parse::<u64>().unwrap() >= 1));
    assert_eq!(r.header("ratelimit-policy"), Some("\"per_key\";q=30;w=60"));
    assert!(r
        .header("ratelimit")
        .is_some_and(|v| v.starts_with("\"per_key\";r=0;")));
    // Another key has its own budget; a key of 8 KiB is just another key.
    assert_eq!(get_key(&fleet[1], "k2").status, 200);
    assert_eq!(get_key(&fleet[2], &"x".repeat(8192)).status, 200);
    // No request fell back: Redis answered every lease.
    for b in &fleet {
        assert_eq!(
            b.metric("brace_rate_limit_store_fallbacks_total{limit=\"per_key\"}"),
            0.0
        );
        assert_eq!(b.metric("brace_cluster_connected"), 1.0);
    }
    // 60 refusals and an 8 KiB key charged nothing to the backend.
    for b in &fleet {
        assert_no_backend_blamed(b);
    }
    // What Redis holds is keyed by namespace, limit and key.
    let keys: Vec<String> = redis.cmd(&["KEYS", "brace:rl:per_key:*"]);
    assert!(
        keys.contains(&"brace:rl:per_key:k1".to_string()),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| k.len() < 64), "{keys:?}");
}

/// A store that flaps (Redis pauses every client for 700 ms, again and again, keeping its
/// data, as a black-holed link does) never lets a key through more than its budget plus one
/// local burst: the local fallback starts each outage from what this instance already
/// spent, and what the fallback lets through is paid to the shared bucket when it answers
/// again. The budget is counted from the test's own elapsed time (20 a second, burst 20).
#[test]
fn a_flapping_store_never_lets_a_key_through_more_than_its_budget() {
    let redis = Redis::start();
    let up = Upstream::start("app");
    let b = Brace::start(&format!(
        "{}[rate_limit.per_key]\nkey = \"header:x-api-key\"\nrate = 20\nper = \"1s\"\nburst = 20\n\
         scope = \"global\"\nlease = 4\n{}",
        cluster(&redis, "a", "expected_instances = 1\ntimeout = \"100ms\""),
        simple_config(GLOBAL, &[&up], TOUCHY)
    ));
    let t = std::time::Instant::now();
    let mut passed = 0u32;
    let mut send = |until: std::time::Duration| {
        // Bounded in count and time: a stream of requests for one key while the store flaps.
        let end = std::time::Instant::now() + until;
        for _ in 0..20_000 {
            if std::time::Instant::now() >= end {
                break;
            }
            match get_key(&b, "k1").status {
                200 => passed += 1,
                429 => {}
                s => panic!("status {s}"),
            }
        }
    };
    send(std::time::Duration::from_millis(700));
    for _ in 0..6 {
        let _: String = redis.cmd(&["CLIENT", "PAUSE", "700"]);
        send(std::time::Duration::from_millis(1400));
    }
    let budget = 20.0 + 20.0 * t.elapsed().as_secs_f64();
    let bound = budget + 20.0 + 2.0;
    assert!(
        f64::from(passed) <= bound,
        "{passed} passed against a budget of {budget:.1} plus one local burst"
    );
    assert!(b.metric("brace_rate_limit_store_fallbacks_total{limit=\"per_key\"}") >= 1.0);
    assert_no_backend_blamed(&b);
}

/// The other order: the store is gone first, so the fallback spends; when the store comes
/// back (empty, as a restarted Redis is) what the fallback spent is taken from it.
#[test]
fn what_the_fallback_let_through_is_paid_to_the_store_when_it_returns() {
    let redis = Redis::start();
    let up = Upstream::start("app");
    let b = Brace::start(&format!(
        "{}{}{}",
        cluster(&redis, "a", "expected_instances = 1\ntimeout = \"100ms\""),
        limit("lease = 4"),
        simple_config(GLOBAL, &[&up], TOUCHY)
    ));
    assert_eq!(get_key(&b, "warm").status, 200);
    b.wait_metric("brace_cluster_connected", 1.0);
    redis.stop();
    let t = std::time::Instant::now();
    let mut passed = (0..40).filter(|_| get_key(&b, "k1").status == 200).count() as f64;
    redis.restart();
    wait_for(
        "the store to be used again",
        std::time::Duration::from_secs(10),
        || {
            passed += f64::from(u8::from(get_key(&b, "k1").status == 200));
            let keys: Vec<String> = redis.cmd(&["KEYS", "brace:rl:per_key:k1"]);
            keys.len() == 1
        },
    );
    passed += (0..40).filter(|_| get_key(&b, "k1").status == 200).count() as f64;
    let bound = 30.0 + 2.0 * t.elapsed().as_secs_f64() * 0.5 + 2.0;
    assert!(
        passed <= bound,
        "{passed} passed against a budget of {bound:.1}"
    );
    assert_no_backend_blamed(&b);
}

#[test]
fn with_redis_gone_each_instance_limits_to_its_share_and_recovers_when_it_returns() {
    let redis = Redis::start();
    let up = Upstream::start("app");
    let config = |fallback: &str| {
        format!(
            "{}{}{}",
            cluster(&redis, "a", "expected_instances = 3\ntimeout = \"100ms\""),
            limit(fallback),
            simple_config(GLOBAL, &[&up], TOUCHY)
        )
    };
    let b = Brace::start(&config(""));
    assert_eq!(get_key(&b, "k1").status, 200);
    b.wait_metric("brace_cluster_connected", 1.0);

    redis.stop();
    // rate 30 over 3 instances: 10 each, then 429; never an error.
    let statuses: Vec<u16> = (0..20).map(|_| get_key(&b, "k9").status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(b.metric("brace_rate_limit_store_fallbacks_total{limit=\"per_key\"}") >= 20.0);
    // The failure is counted by the task that met it (a lease, or the heartbeat when it
    // found the store gone first and marked it down), which may end after the requests did.
    let store_errors = |b: &Brace| -> f64 {
        b.metrics()
            .lines()
            .filter(|l| l.starts_with("brace_cluster_store_errors_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    wait_for(
        "the store error to be counted",
        std::time::Duration::from_secs(10),
        || store_errors(&b) >= 1.0,
    );
    assert_eq!(b.metric("brace_cluster_connected"), 0.0);
    assert_eq!(get(b.admin(), "/readyz").status, 200);
    // A failed store is not asked by every request: it counts as down for a second after a
    // failure, so 20 requests make at most one lease attempt per second they took (counted,
    // not timed: a busy machine may take longer, and is allowed one attempt per second).
    let leases = "brace_rate_limit_store_errors_total{limit=\"per_key\"}";
    let before = b.metric(leases);
    let t = std::time::Instant::now();
    for _ in 0..20 {
        get_key(&b, "k8");
    }
    let per_second = 1.0 + t.elapsed().as_secs_f64().ceil();
    assert!(
        b.metric(leases) - before <= per_second,
        "{} lease attempts in {:?}",
        b.metric(leases) - before,
        t.elapsed()
    );

    redis.restart();
    // Back to the shared budget: a fresh key gets all 30 from Redis.
    // Back to the shared bucket: a request's key shows up in Redis again.
    wait_for(
        "the store to be used again",
        std::time::Duration::from_secs(10),
        || {
            get_key(&b, "k7");
            let keys: Vec<String> = redis.cmd(&["KEYS", "brace:rl:per_key:k7"]);
            keys.len() == 1
        },
    );
    assert_eq!(b.metric("brace_cluster_connected"), 1.0);
    // A fresh key gets the whole shared budget again, not the fallback's share.
    let passed = (0..40).filter(|_| get_key(&b, "k4").status == 200).count();
    assert_eq!(passed, 30);

    // "deny" and "allow" fallbacks.
    redis.stop();
    b.rewrite(&config("on_store_error = \"deny\""));
    assert_eq!(b.reload().status, 200);
    // A fresh key: the local fallback would let its first 10 through; "deny" lets none.
    let statuses: Vec<u16> = (0..5).map(|_| get_key(&b, "k6").status).collect();
    assert_eq!(statuses, [429; 5]);
    b.rewrite(&config("on_store_error = \"allow\""));
    assert_eq!(b.reload().status, 200);
    assert!((0..40).all(|_| get_key(&b, "k5").status == 200));
    assert_no_backend_blamed(&b);
}

#[test]
fn a_store_that_accepts_and_never_answers_costs_requests_at_most_the_timeout() {
    // A black hole where Redis should be: connections are accepted and never answered.
    let hole = BlackHole::start();
    let port = hole.addr.port();
    let up = Upstream::start("app");
    let b = Brace::start(&format!(
        "[cluster]\nredis = \"redis://127.0.0.1:{port}/0\"\ninstance_id = \"a\"\ntimeout = \"100ms\"\nheartbeat = \"200ms\"\n\n{}{}",
        limit(""),
        simple_config(GLOBAL, &[&up], TOUCHY)
    ));
    let t = std::time::Instant::now();
    let statuses: Vec<u16> = (0..40)
        .map(|i| get_key(&b, &format!("k{}", i % 4)).status)
        .collect();
    // Decided by the local fallback (one live instance known: the whole rate), never an error,
    // and the stall is paid at most once per second of outage, not per request: the timed-out
    // commands are counted, whatever the machine's speed.
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Time spent waiting on the store, summed over all 40 requests: at most one `timeout`
    // (100 ms) per second of the run, plus one.
    let waited = b.metric("brace_rate_limit_store_wait_seconds_sum{limit=\"per_key\"}");
    let allowed = 0.1 * (2.0 + t.elapsed().as_secs_f64().ceil()) + 0.05;
    assert!(
        waited <= allowed,
        "{waited} s waited on the store in {:?}",
        t.elapsed()
    );
    assert!(b.metric("brace_rate_limit_store_fallbacks_total{limit=\"per_key\"}") >= 40.0);
    assert_eq!(b.metric("brace_cluster_connected"), 0.0);
    assert_eq!(get(b.admin(), "/readyz").status, 200);
    assert_eq!(get(b.admin(), "/api/fleet").status, 503);
    assert_no_backend_blamed(&b);
    assert!(hole.accepted() > 0, "brace never tried the store");
}

fn cached(redis: &Redis, id: &str, origin: &Upstream) -> Brace {
    Brace::start(&format!(
        "{}[cache]\nmax_size = \"8MiB\"\n\n{}",
        cluster(redis, id, ""),
        simple_config("[route.cache]", &[origin], "")
    ))
}

fn cache_get(b: &Brace, path: &str) -> String {
    let r = shop_get(b, path, "");
    assert_eq!(r.status, 200, "{}", r.text());
    cache_status(&r).to_string()
}

fn origin() -> Upstream {
    Upstream::with_mode(
        "o",
        script(|_, n| {
            (
                200,
                "Cache-Control: max-age=600\r\n".into(),
                format!("body {n}").into_bytes(),
            )
        }),
    )
}

/// Waits until `b`'s purge subscription is up (the purge below must reach it).
fn subscribed(redis: &Redis, n: usize) {
    wait_for(
        "every instance to subscribe",
        std::time::Duration::from_secs(10),
        || {
            let v: Vec<::redis::Value> = redis.cmd(&["PUBSUB", "NUMSUB", "brace:purge"]);
            matches!(v.get(1), Some(::redis::Value::Int(k)) if *k as usize == n)
        },
    );
}

#[test]
fn a_purge_on_one_instance_removes_the_entry_on_the_others() {
    let redis = Redis::start();
    let o = origin();
    let (a, b) = (cached(&redis, "a", &o), cached(&redis, "b", &o));
    subscribed(&redis, 2);
    for x in [&a, &b] {
        for p in ["/p/1", "/p/2", "/q/1"] {
            assert_eq!(cache_get(x, p), "MISS");
            assert_eq!(cache_get(x, p), "HIT");
        }
    }
    let r = post_json(
        a.admin(),
        "/api/cache/purge",
        r#"{"url": "http://Shop.Example/p/1"}"#,
    );
    let v = json(&r);
    assert_eq!(v["purged"], 1, "{v}");
    assert_eq!(v["cluster"]["instances"]["a"], 1, "{v}");
    assert_eq!(v["cluster"]["instances"]["b"], 1, "{v}");
    assert_eq!(v["cluster"]["unanswered"], 0, "{v}");
    assert_eq!(cache_get(&b, "/p/1"), "MISS");
    assert_eq!(cache_get(&b, "/p/2"), "HIT");

    // By prefix from b, and a clear from a.
    let v = json(&post_json(
        b.admin(),
        "/api/cache/purge",
        r#"{"prefix": "http://shop.example/p/"}"#,
    ));
    assert_eq!(v["cluster"]["instances"]["a"], 1, "{v}"); // p/2 (p/1 went already)
    assert_eq!(cache_get(&a, "/p/2"), "MISS");
    let v = json(&post_json(a.admin(), "/api/cache/clear", ""));
    assert!(v["cluster"]["instances"]["b"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(cache_get(&b, "/q/1"), "MISS");

    // An unsafe request through one instance invalidates the URL on the other (RFC 9111 §4.4).
    assert_eq!(cache_get(&a, "/q/1"), "MISS");
    assert_eq!(cache_get(&a, "/q/1"), "HIT");
    let received = a.metric("brace_cluster_purges_total{direction=\"received\"}");
    let r = send(
        b.addr(),
        b"POST /q/1 HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    wait_for(
        "the invalidation to reach a",
        std::time::Duration::from_secs(5),
        || a.metric("brace_cluster_purges_total{direction=\"received\"}") > received,
    );
    assert_eq!(cache_get(&a, "/q/1"), "MISS");

    // Garbage on the channel (anyone with the store can publish) is ignored.
    let _: i64 = redis.cmd(&["PUBLISH", "brace:purge", "{not json"]);
    let _: i64 = redis.cmd(&[
        "PUBLISH",
        "brace:purge",
        r#"{"id":0,"from":"x","op":"explode"}"#,
    ]);
    assert_eq!(cache_get(&a, "/q/1"), "HIT");
    let v = json(&post_json(
        b.admin(),
        "/api/cache/purge",
        r#"{"url": "http://shop.example/q/1"}"#,
    ));
    assert_eq!(v["cluster"]["instances"]["a"], 1, "{v}");
    assert_no_backend_blamed(&a);
    assert_no_backend_blamed(&b);
}

#[test]
fn an_instance_that_lost_its_subscription_clears_its_cache() {
    let redis = Redis::start();
    let o = origin();
    let a = cached(&redis, "a", &o);
    subscribed(&redis, 1);
    assert_eq!(cache_get(&a, "/r/1"), "MISS");
    assert_eq!(cache_get(&a, "/r/1"), "HIT");
    // While Redis is away a purge elsewhere cannot reach a; it serves what it has.
    redis.stop();
    assert_eq!(cache_get(&a, "/r/1"), "HIT");
    // Purging on a with the store gone purges here and says the rest was not reached.
    assert_eq!(cache_get(&a, "/r/2"), "MISS");
    let v = json(&post_json(
        a.admin(),
        "/api/cache/purge",
        r#"{"url": "http://shop.example/r/2"}"#,
    ));
    assert_eq!(v["purged"], 1, "{v}");
    assert!(v["cluster"]["error"].as_str().is_some(), "{v}");
    redis.restart();
    wait_for(
        "the cache to be cleared on resubscribing",
        std::time::Duration::from_secs(15),
        || a.metric("brace_cluster_cache_resyncs_total") >= 1.0,
    );
    assert_eq!(cache_get(&a, "/r/1"), "MISS");
}

#[test]
fn the_fleet_view_flags_an_instance_with_another_config() {
    let redis = Redis::start();
    let up = Upstream::start("app");
    // Each instance has its own ports and id; only the rest of the config is compared.
    let config = |id: &str, balance: &str| {
        format!(
            "{}{}",
            cluster(&redis, id, ""),
            simple_config("", &[&up], &format!("balance = \"{balance}\""))
        )
    };
    let a = Brace::start(&config("a", "ewma"));
    let b = Brace::start(&config("b", "ewma"));
    let c = Brace::start(&config("c", "round_robin"));
    let fleet = |x: &Brace| json(&get(x.admin(), "/api/fleet"));
    wait_for(
        "three live instances",
        std::time::Duration::from_secs(10),
        || fleet(&a)["instances"].as_array().map_or(0, |v| v.len()) == 3,
    );
    let v = fleet(&b);
    assert_eq!(v["drift"], true, "{v}");
    let drifted: Vec<&str> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["drift"] == true)
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(drifted, ["c"], "{v}");
    let c_row = &v["instances"][2];
    assert_eq!(c_row["admin"], format!("127.0.0.1:{}", c.admin_port), "{v}");
    assert_eq!(c_row["version"], env!("CARGO_PKG_VERSION"), "{v}");
    let majority = v["config_hash"].as_str().unwrap().to_owned();
    wait_for(
        "the drift metrics",
        std::time::Duration::from_secs(5),
        || {
            a.metric("brace_fleet_drift") == 1.0
                && a.metric(&format!(
                    "brace_fleet_instances{{config_hash=\"{majority}\"}}"
                )) == 2.0
        },
    );

    // brace check --against fleet says who would change, and how.
    let next = a.dir.path().join("next.toml");
    std::fs::write(&next, config("next", "p2c")).unwrap();
    let out = std::process::Command::new(BRACE)
        .args(["check", "--against", "fleet", "-c"])
        .arg(&next)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 live instance(s)"), "{text}");
    assert!(
        text.contains("a (") && text.contains("b (") && text.contains("c ("),
        "{text}"
    );
    assert_eq!(text.matches("would change").count(), 2, "{text}");
    assert!(text.contains("Ewma") || text.contains("ewma"), "{text}");
    assert!(
        !text.contains("listen"),
        "own addresses are not changes: {text}"
    );

    // c loads the majority's config: no more drift.
    c.rewrite(&config("c", "ewma"));
    assert_eq!(c.reload().status, 200);
    wait_for("drift to clear", std::time::Duration::from_secs(5), || {
        a.metric("brace_fleet_drift") == 0.0
    });
    // An instance that stops leaves the fleet at once.
    let mut c = c;
    c.signal("TERM");
    c.wait_exit(std::time::Duration::from_secs(10));
    wait_for(
        "two live instances",
        std::time::Duration::from_secs(5),
        || fleet(&a)["instances"].as_array().map_or(0, |v| v.len()) == 2,
    );
}

#[test]
fn bad_cluster_settings_are_refused_with_their_key() {
    let up = Upstream::start("app");
    let base = simple_config("", &[&up], "");
    let cases = [
        ("[cluster]\nredis = \"http://127.0.0.1:6379\"\n", "cluster.redis"),
        ("[cluster]\nredis = \"redis://:secret@127.0.0.1:6379/0\"\n", "password_env"),
        ("[cluster]\nredis = \"redis://127.0.0.1:6379/0\"\npassword_env = \"BRACE_TEST_UNSET_VAR\"\n", "is not set"),
        ("[cluster]\nredis = \"redis://127.0.0.1:6379/0\"\nheartbeat = \"1ms\"\n", "cluster.heartbeat"),
        ("[cluster]\nredis = \"redis://127.0.0.1:6379/0\"\ninstance_id = \"a b\"\n", "cluster.instance_id"),
        ("[cluster]\nredis = \"redis://127.0.0.1:6379/0\"\nexpected_instances = 0\n", "cluster.expected_instances"),
    ];
    for (section, want) in cases {
        let (code, _, err, _) = check(&format!("{section}\n{base}"));
        assert_eq!(code, 1, "{section}");
        assert!(err.contains(want), "{section}: {err}");
    }
    let limit = "[rate_limit.l]\nkey = \"client_ip\"\nrate = 10\nburst = 10\nscope = \"global\"\n";
    let routed = simple_config("rate_limits = [\"l\"]", &[&up], "");
    let (code, _, err, _) = check(&format!("{limit}\n{routed}"));
    assert_eq!(code, 1);
    assert!(
        err.contains("rate_limit.l.scope") && err.contains("[cluster]"),
        "{err}"
    );
    let (code, _, err, _) = check(&format!(
        "[cluster]\nredis = \"redis://127.0.0.1:1/0\"\n\n{limit}lease = 11\n\n{routed}"
    ));
    assert_eq!(code, 1);
    assert!(err.contains("rate_limit.l.lease"), "{err}");
}

#[test]
fn the_store_over_tls_with_a_password_from_the_environment() {
    let pki = support::pki::Pki::new();
    pki.ca("ca");
    pki.cert("redis", "DNS:localhost,IP:127.0.0.1", "ca");
    let path = |f: &str| pki.path(f).display().to_string();
    let redis = Redis::start_with(&[
        "--tls-port",
        "PORT",
        "--tls-cert-file",
        &path("redis.pem"),
        "--tls-key-file",
        &path("redis.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret",
    ]);
    let up = Upstream::start("app");
    let body = |id: &str| {
        format!(
            "[cluster]\nredis = \"rediss://localhost:{}/0\"\ninstance_id = \"{id}\"\npassword_env = \"BRACE_TEST_REDIS_PASSWORD\"\nheartbeat = \"200ms\"\n\n{}",
            redis.port,
            simple_config("", &[&up], "")
        )
    };
    let ca = path("ca.pem");
    // The store's certificate is checked against the system's roots (here: SSL_CERT_FILE).
    let good = Brace::start_env(
        &body("good"),
        &[
            ("BRACE_TEST_REDIS_PASSWORD", "s3cret"),
            ("SSL_CERT_FILE", &ca),
        ],
    );
    wait_for(
        "the TLS store to answer",
        std::time::Duration::from_secs(10),
        || {
            json(&get(good.admin(), "/api/fleet"))["instances"]
                .as_array()
                .is_some_and(|v| v.len() == 1)
        },
    );
    assert_eq!(good.metric("brace_cluster_connected"), 1.0);
    // A wrong password, or a certificate it cannot trust: not connected, still serving.
    for (pw, roots) in [("wrong", ca.as_str()), ("s3cret", "/dev/null")] {
        let bad = Brace::start_env(
            &body("bad"),
            &[("BRACE_TEST_REDIS_PASSWORD", pw), ("SSL_CERT_FILE", roots)],
        );
        wait_for(
            "a failed heartbeat",
            std::time::Duration::from_secs(10),
            || bad.metric("brace_cluster_store_errors_total{op=\"heartbeat\"}") >= 1.0,
        );
        assert_eq!(bad.metric("brace_cluster_connected"), 0.0);
        assert_eq!(bad.get("/").status, 200);
        assert_eq!(get(bad.admin(), "/readyz").status, 200);
        assert_eq!(get(bad.admin(), "/api/fleet").status, 503);
    }
    // The password is nowhere in what brace shows.
    assert!(!get(good.admin(), "/api/config").text().contains("s3cret"));
}
