//! Load balancing, health checks, outlier ejection, retries, budgets and backup pools, against
//! real upstream servers. Waits are on metrics or `/api/upstreams`, with deadlines.

mod support;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn pool_config(backends: &[&Upstream], upstream_extra: &str) -> String {
    simple_config("", backends, upstream_extra)
}

fn healthy(b: &Brace, u: &Upstream) -> f64 {
    b.metric(&format!(
        "brace_upstream_backend_healthy{{backend=\"{}\",upstream=\"pool\"}}",
        u.addr
    ))
}

fn ejected(b: &Brace, u: &Upstream) -> f64 {
    b.metric(&format!(
        "brace_upstream_backend_ejected{{backend=\"{}\",upstream=\"pool\"}}",
        u.addr
    ))
}

#[test]
fn ewma_least_requests_and_p2c_avoid_a_backend_holding_slow_requests() {
    for balance in ["ewma", "least_requests", "p2c"] {
        let slow = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(400)));
        let fast = Upstream::start("fast");
        let b = Brace::start(&pool_config(
            &[&slow, &fast],
            &format!("balance = \"{balance}\""),
        ));
        let statuses = load(&b, 8, 80, "/");
        assert!(
            statuses.iter().all(|s| *s == 200),
            "{balance}: {statuses:?}"
        );
        // Round robin would give each 40.
        assert!(
            slow.count() <= 16 && fast.count() >= 64,
            "{balance}: slow {} fast {}",
            slow.count(),
            fast.count()
        );
    }
}

#[test]
fn round_robin_honours_weights_exactly_and_interleaves() {
    let (a, c) = (Upstream::start("a"), Upstream::start("c"));
    let cfg = format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbalance = \"round_robin\"\nbackends = [{{ addr = \"{}\", weight = 3 }}, {{ addr = \"{}\", weight = 2 }}]\n",
        a.addr, c.addr
    );
    let b = Brace::start(&cfg);
    // One request at a time. Smooth weighted round robin repeats "a c a c a": every 5
    // consecutive requests split 3 : 2, and no backend answers three times in a row (a plain
    // weighted list would send "a a a c c").
    let mut seen = String::new();
    for _ in 0..50 {
        let r = get(b.addr(), "/");
        assert_eq!(r.status, 200);
        seen.push_str(r.text().trim().trim_start_matches("hello from "));
    }
    assert_eq!((a.count(), c.count()), (30, 20), "order {seen}");
    assert!(
        !seen.contains("aaa") && !seen.contains("ccc"),
        "not interleaved: {seen}"
    );
    // And the metrics say the same, per backend and per route.
    b.wait_metric("brace_requests_total{code=\"200\",route=\"main\"}", 50.0);
    assert_eq!(
        b.metric(&format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"success\",upstream=\"pool\"}}",
            a.addr
        )),
        30.0
    );
}

#[test]
fn random_honours_weights() {
    let (a, c) = (Upstream::start("a"), Upstream::start("c"));
    let cfg = format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbalance = \"random\"\nbackends = [\"{}\", {{ addr = \"{}\", weight = 3 }}]\n",
        a.addr, c.addr
    );
    let b = Brace::start(&cfg);
    let statuses = load(&b, 4, 400, "/");
    assert!(statuses.iter().all(|s| *s == 200));
    // Expect 100 : 300; allow a wide margin for chance.
    assert!(
        (50..=160).contains(&a.count()),
        "a {} c {}",
        a.count(),
        c.count()
    );
}

#[test]
fn consistent_hash_keeps_keys_and_moves_few_when_a_backend_goes() {
    let ups: Vec<Upstream> = (0..3).map(|i| Upstream::start(&format!("u{i}"))).collect();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let b = Brace::start(&pool_config(
        &refs,
        "balance = \"consistent_hash\"\nhash_key = \"header:x-user\"\n\
         [upstream.pool.health_check]\ntype = \"http\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n",
    ));
    let who = |key: usize| {
        let r = send(
            b.addr(),
            format!("GET / HTTP/1.1\r\nHost: x\r\nX-User: user-{key}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        r.header("x-upstream").unwrap().to_owned()
    };
    let before: Vec<String> = (0..60).map(who).collect();
    for (k, was) in before.iter().enumerate().take(10) {
        assert_eq!(&who(k), was, "key {k} moved without a change");
    }
    let used: std::collections::HashSet<&String> = before.iter().collect();
    assert_eq!(
        used.len(),
        3,
        "60 keys should spread over all three backends"
    );

    // u2 starts failing its health checks and leaves the ring.
    ups[2].set(Mode::Status(500, "down"));
    wait_for("u2 unhealthy", Duration::from_secs(5), || {
        healthy(&b, &ups[2]) == 0.0
    });
    let after: Vec<String> = (0..60).map(who).collect();
    for k in 0..60 {
        if before[k] != "u2" {
            assert_eq!(
                after[k], before[k],
                "key {k} moved although its backend stayed"
            );
        } else {
            assert_ne!(after[k], "u2");
        }
    }
}

#[test]
fn killing_one_of_three_under_load_loses_no_request_and_it_comes_back() {
    let ups: Vec<Upstream> = (0..3).map(|i| Upstream::start(&format!("u{i}"))).collect();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let b = Brace::start(&pool_config(
        &refs,
        "slow_start = \"1s\"\n\
         [upstream.pool.health_check]\ntype = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n\
         [upstream.pool.outlier]\nconsecutive_failures = 3\nbase_ejection = \"500ms\"\n\
         [upstream.pool.retry]\nattempts = 2\non = [\"connect_error\", \"timeout\", \"error\", \"502\", \"503\", \"504\"]\n",
    ));
    let victim = &ups[1];
    let addr = b.addr();
    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (failures, sent, stop) = (failures.clone(), sent.clone(), stop.clone());
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(30);
                // Bounded in count and time.
                while !stop.load(Ordering::SeqCst)
                    && Instant::now() < end
                    && sent.load(Ordering::SeqCst) < 20_000
                {
                    sent.fetch_add(1, Ordering::SeqCst);
                    if try_get(addr, "/").map_or(true, |r| r.status != 200) {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    wait_for("traffic on the victim", Duration::from_secs(10), || {
        victim.count() > 20
    });
    victim.stop();
    wait_for("victim marked unhealthy", Duration::from_secs(10), || {
        healthy(&b, victim) == 0.0
    });
    let during = victim.count();
    let sent_at_down = sent.load(Ordering::SeqCst);
    wait_for(
        "more traffic while it is down",
        Duration::from_secs(10),
        || sent.load(Ordering::SeqCst) > sent_at_down + 200,
    );
    assert_eq!(victim.count(), during, "an unhealthy backend got requests");
    victim.restart();
    wait_for("victim healthy again", Duration::from_secs(10), || {
        healthy(&b, victim) == 1.0
    });
    wait_for("victim back in rotation", Duration::from_secs(10), || {
        victim.count() > during + 20
    });
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::SeqCst), failures.load(Ordering::SeqCst));
    eprintln!("kill one of three: {sent} requests, {failed} failed");
    assert_eq!(failed, 0, "{failed} of {sent} client requests failed");
    let m = b.metrics();
    assert!(
        m.contains("brace_upstream_health_checks_total{backend=\""),
        "{m}"
    );
    let up = upstreams(&b);
    let be = &up["upstreams"]["pool"]["backends"][1];
    assert_eq!(be["addr"], victim.addr.to_string());
    assert_eq!(be["health"], "healthy");
    assert!(be["last_check"]["ok"].as_bool().unwrap());
}

#[test]
fn a_black_holed_backend_is_ejected_and_clients_see_no_error() {
    let (good, hole) = (
        Upstream::start("good"),
        Upstream::with_mode("hole", Mode::Hang),
    );
    let b = Brace::start(&pool_config(
        &[&good, &hole],
        "balance = \"round_robin\"\nread_timeout = \"300ms\"\n\
         [upstream.pool.outlier]\nconsecutive_failures = 2\nbase_ejection = \"30s\"\n\
         [upstream.pool.retry]\nattempts = 1\non = [\"connect_error\", \"timeout\"]\n",
    ));
    let t = Instant::now();
    let statuses = load(&b, 2, 20, "/");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    wait_for("the hole ejected", Duration::from_secs(10), || {
        ejected(&b, &hole) == 1.0
    });
    eprintln!("black hole ejected after {:?}", t.elapsed());
    let holed = hole.count();
    // consecutive_failures, plus at most one more per concurrent client already on its way.
    assert!(
        (2..=4).contains(&holed),
        "{holed} requests reached the hole"
    );
    let statuses = load(&b, 2, 20, "/");
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(hole.count(), holed, "an ejected backend got requests");
    b.wait_metric(
        &format!(
            "brace_upstream_ejections_total{{backend=\"{}\",upstream=\"pool\"}}",
            hole.addr
        ),
        1.0,
    );
    // Every request that hit the hole was retried on the good backend.
    b.wait_metric(
        "brace_upstream_retries_total{reason=\"timeout\",upstream=\"pool\"}",
        holed as f64,
    );
}

#[test]
fn backup_takes_over_when_the_primary_is_down_and_hands_back() {
    let primary_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let standby = Upstream::start("standby");
    let cfg = format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n\
         [upstream.pool]\nbackends = [\"{primary_addr}\"]\nbackup = \"standby\"\n\
         [upstream.pool.health_check]\ntype = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n\
         [upstream.standby]\nbackends = [\"{}\"]\n",
        standby.addr
    );
    let b = Brace::start(&cfg);
    let r = b.get("/");
    assert_eq!((r.status, r.header("x-upstream")), (200, Some("standby")));
    b.wait_metric("brace_upstream_backup_used_total{upstream=\"pool\"}", 1.0);

    let primary = Upstream::at(primary_addr, "primary", Mode::Ok);
    wait_for("primary healthy", Duration::from_secs(5), || {
        b.metric(&format!(
            "brace_upstream_backend_healthy{{backend=\"{primary_addr}\",upstream=\"pool\"}}"
        )) == 1.0
    });
    let r = b.get("/");
    assert_eq!(r.header("x-upstream"), Some("primary"));
    assert_eq!(primary.count(), 1);
}

#[test]
fn no_available_backend_is_503_with_retry_after() {
    let dead = Upstream::start("dead");
    let b = Brace::start(&pool_config(
        &[&dead],
        "[upstream.pool.health_check]\ntype = \"http\"\ninterval = \"2s\"\ntimeout = \"200ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n",
    ));
    dead.stop();
    // Health checks are 2s apart; until the next one, requests still try it (502).
    wait_for("dead marked unhealthy", Duration::from_secs(10), || {
        healthy(&b, &dead) == 0.0
    });
    let r = b.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "brace: no backend available for upstream \"pool\"\n"
    );
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&ra), "retry-after {ra}");
}

#[test]
fn panic_threshold_balances_over_all_when_too_few_are_healthy() {
    for (threshold, expect_sick_traffic) in [("0.0", false), ("0.7", true)] {
        let well = Upstream::start("well");
        let sick: Vec<Upstream> = (0..2)
            .map(|i| Upstream::with_mode(&format!("sick{i}"), Mode::Status(500, "x")))
            .collect();
        let b = Brace::start(&pool_config(
            &[&well, &sick[0], &sick[1]],
            &format!(
                "panic_threshold = {threshold}\nbalance = \"round_robin\"\n\
                 [upstream.pool.health_check]\ntype = \"http\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n\
                 [upstream.pool.outlier]\nconsecutive_failures = 0\n"
            ),
        ));
        wait_for("sick marked unhealthy", Duration::from_secs(5), || {
            healthy(&b, &sick[0]) == 0.0 && healthy(&b, &sick[1]) == 0.0
        });
        let base: usize = sick.iter().map(|s| s.count()).sum();
        let well_base = well.count();
        for _ in 0..30 {
            b.get("/");
        }
        let sick_traffic: usize = sick.iter().map(|s| s.count()).sum::<usize>() - base;
        // Health checks (every 100 ms) reach every backend; count proxied requests by well's
        // share during the 30 requests only, so checks made before them are not counted (on a
        // loaded machine, startup alone saw a dozen). Round robin and no outlier ejection, so
        // that panic mode alone decides: well gets a third of the requests, not all.
        let to_well = well.count() - well_base;
        if expect_sick_traffic {
            assert!(
                to_well <= 15,
                "panic mode should spread: well got {to_well} of 30"
            );
        } else {
            assert!(
                to_well >= 30,
                "well got {to_well} of 30 (sick got {sick_traffic} incl. checks)"
            );
        }
    }
}

#[test]
fn max_ejection_percent_bounds_ejections() {
    let ups: Vec<Upstream> = (0..4)
        .map(|i| Upstream::with_mode(&format!("u{i}"), Mode::Status(500, "x")))
        .collect();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let b = Brace::start(&pool_config(
        &refs,
        "[upstream.pool.outlier]\nconsecutive_failures = 1\nbase_ejection = \"30s\"\nmax_ejection_percent = 50\n",
    ));
    for _ in 0..40 {
        assert_eq!(b.get("/").status, 500);
    }
    b.wait_metric("brace_requests_total{code=\"500\",route=\"main\"}", 40.0);
    let n: f64 = ups.iter().map(|u| ejected(&b, u)).sum();
    assert_eq!(n, 2.0, "half of four may be ejected");
}

#[test]
fn a_storm_of_failures_stays_within_the_retry_budget() {
    let ups: Vec<Upstream> = (0..2)
        .map(|i| Upstream::with_mode(&format!("u{i}"), Mode::Status(503, "busy")))
        .collect();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let b = Brace::start(&pool_config(
        &refs,
        "[upstream.pool.retry]\nattempts = 1\non = [\"503\"]\nbudget_percent = 10\nmin_retries_per_second = 2\nbackoff = \"0s\"\n",
    ));
    let t = Instant::now();
    let statuses = load(&b, 4, 100, "/");
    let secs = t.elapsed().as_secs() + 1;
    assert!(statuses.iter().all(|s| *s == 503));
    let upstream_load: usize = ups.iter().map(|u| u.count()).sum();
    // At most 10% of the live requests, or 2 a second, on top.
    let bound = 100 + 10 + 2 * secs as usize;
    assert!(
        upstream_load <= bound,
        "{upstream_load} upstream requests for 100 (bound {bound})"
    );
    assert!(upstream_load > 100, "no retry at all");
    assert!(b.metric("brace_upstream_retry_budget_exhausted_total{upstream=\"pool\"}") > 0.0);
}

#[test]
fn post_is_not_retried_after_it_was_sent_but_is_after_a_connect_failure() {
    let closer = Upstream::with_mode("closer", Mode::Close);
    let ok = Upstream::start("ok");
    let retry = "[upstream.pool.retry]\nattempts = 2\non = [\"connect_error\", \"error\"]\n";
    let b = Brace::start(&pool_config(&[&closer, &ok], retry));
    let (mut ok200, mut bad) = (0, 0);
    for _ in 0..10 {
        let r = send(
            b.addr(),
            b"POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .unwrap();
        match r.status {
            200 => ok200 += 1,
            502 => bad += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(closer.count(), bad, "each 502 is one POST the closer got");
    assert_eq!(
        ok.count(),
        ok200,
        "no POST was replayed to the second backend"
    );
    assert!(bad > 0);
    // A GET to the same pool is retried and always succeeds.
    for _ in 0..10 {
        assert_eq!(b.get("/").status, 200);
    }

    // A POST that never reached a backend (refused) is retried elsewhere.
    let dead = format!("127.0.0.1:{}", free_port());
    let cfg = format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{dead}\", \"{}\"]\n{retry}",
        ok.addr
    );
    let b2 = Brace::start(&cfg);
    for _ in 0..6 {
        let r = send(
            b2.addr(),
            b"POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
}

#[test]
fn debug_headers_name_upstream_and_backend() {
    let up = Upstream::start("u");
    let b = Brace::start_with(&pool_config(&[&up], ""), "debug_headers = true");
    let r = b.get("/");
    assert_eq!(r.header("x-brace-upstream"), Some("pool"));
    assert_eq!(
        r.header("x-brace-backend"),
        Some(up.addr.to_string().as_str())
    );
    let plain = Brace::start(&pool_config(&[&up], ""));
    assert_eq!(plain.get("/").header("x-brace-upstream"), None);
}

#[test]
fn health_checks_to_a_black_hole_time_out_within_timeout() {
    let hole = Upstream::with_mode("hole", Mode::Hang);
    let b = Brace::start(&pool_config(
        &[&hole],
        "[upstream.pool.health_check]\ntype = \"http\"\ninterval = \"300ms\"\ntimeout = \"150ms\"\nunhealthy_threshold = 1\n",
    ));
    // brace became ready only after the first round, which the hole failed.
    assert_eq!(healthy(&b, &hole), 0.0);
    let up = upstreams(&b);
    let last = &up["upstreams"]["pool"]["backends"][0]["last_check"];
    assert_eq!(last["ok"], false);
    assert!(last["detail"].as_str().unwrap().contains("150ms"), "{last}");
    // Checks keep coming, each cut off at the timeout.
    let sample = format!(
        "brace_upstream_health_checks_total{{backend=\"{}\",result=\"fail\",upstream=\"pool\"}}",
        hole.addr
    );
    wait_for("three failed checks", Duration::from_secs(5), || {
        b.metric(&sample) >= 3.0
    });
}

#[test]
fn by_default_a_get_whose_connection_breaks_is_retried_elsewhere() {
    // No [retry] section: the default retries refused and broken connections, as nginx does.
    let (closer, ok) = (
        Upstream::with_mode("closer", Mode::Close),
        Upstream::start("ok"),
    );
    let b = Brace::start(&pool_config(&[&closer, &ok], ""));
    for _ in 0..10 {
        assert_eq!(b.get("/").status, 200);
    }
    assert!(closer.count() > 0, "the breaking backend was never tried");
    b.wait_metric(
        "brace_upstream_retries_total{reason=\"error\",upstream=\"pool\"}",
        closer.count() as f64,
    );
}
