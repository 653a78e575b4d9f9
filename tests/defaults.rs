//! The smallest config (one route, one upstream of three backends, no tables) against a
//! backend that dies or fails: what a new user gets without tuning anything.

mod support;
use support::*;

/// A port that refuses connections: bound once, then released.
fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn minimal(backends: &[String]) -> String {
    format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n\n[upstream.pool]\nbackends = [{}]\n",
        backends
            .iter()
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn a_dead_backend_costs_no_client_errors_and_is_avoided() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let dead = dead_addr();
    let brace = Brace::start(&minimal(&[
        a.addr.to_string(),
        b.addr.to_string(),
        dead.to_string(),
    ]));
    // Sequential requests arrive faster than the retry budget's floor (10 retries/s) and its
    // 20% share could pay for: connect retries must not draw on it.
    let mut errors = 0;
    for _ in 0..300 {
        if brace.get("/").status != 200 {
            errors += 1;
        }
    }
    assert_eq!(errors, 0, "client errors with one backend of three dead");
    // The default balancer counts a failure as a slow answer: the dead backend is left alone
    // after its first refusals (round robin would try it 100 times).
    let tried = brace.metric(&format!(
        "brace_upstream_requests_total{{backend=\"{dead}\",outcome=\"connect_error\",upstream=\"pool\"}}"
    ));
    assert!(
        (1.0..=10.0).contains(&tried),
        "{tried} attempts on the dead backend"
    );
    assert_eq!(
        brace.metric("brace_upstream_retry_budget_exhausted_total{upstream=\"pool\"}"),
        0.0
    );
}

#[test]
fn a_backend_answering_500_is_avoided_by_default() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let bad = Upstream::with_mode("bad", Mode::Status(500, "broken"));
    let brace = Brace::start(&minimal(&[
        a.addr.to_string(),
        b.addr.to_string(),
        bad.addr.to_string(),
    ]));
    let statuses: Vec<u16> = (0..300).map(|_| brace.get("/").status).collect();
    let errors = statuses.iter().filter(|&&s| s == 500).count();
    // The default balancer steers away after its first 500s (round robin: 100 of 300).
    assert!(errors <= 6, "{errors} 500s: {statuses:?}");
    assert_eq!(bad.count(), errors);
    assert_eq!(upstreams(&brace)["upstreams"]["pool"]["balance"], "ewma");
}

#[test]
fn a_black_holed_backend_gets_almost_nothing_and_its_requests_are_retried() {
    // The hole accepts and reads, and never answers. The only override is a shorter
    // read_timeout, so the few requests that reach it come back within the test.
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let hole = Upstream::with_mode("hole", Mode::Hang);
    let brace = Brace::start(&format!(
        "{}read_timeout = \"1s\"\n",
        minimal(&[
            a.addr.to_string(),
            b.addr.to_string(),
            hole.addr.to_string()
        ])
    ));
    let statuses = load(&brace, 8, 400, "/");
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Its silence counts against it while requests wait there (round robin: 133 of 400).
    assert!(
        hole.count() <= 8,
        "{} requests reached the hole",
        hole.count()
    );
    // Those that did were retried on timeout (the default retry.on includes it).
    let retried =
        brace.metric("brace_upstream_retries_total{reason=\"timeout\",upstream=\"pool\"}");
    assert_eq!(retried, hole.count() as f64);
}

#[test]
fn a_slow_backend_gets_almost_nothing() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let slow = Upstream::with_mode("slow", Mode::Delay(std::time::Duration::from_millis(500)));
    let brace = Brace::start(&minimal(&[
        a.addr.to_string(),
        b.addr.to_string(),
        slow.addr.to_string(),
    ]));
    let statuses = load(&brace, 8, 400, "/");
    assert!(statuses.iter().all(|&s| s == 200));
    // Round robin would send it 133, each holding a client for half a second.
    assert!(
        slow.count() <= 8,
        "{} requests reached the slow backend",
        slow.count()
    );
}

#[test]
fn a_backend_answering_500_is_ejected_by_default() {
    // Round robin, so the backend keeps being chosen and ejection alone stops it.
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let bad = Upstream::with_mode("bad", Mode::Status(500, "broken"));
    let brace = Brace::start(&format!(
        "{}balance = \"round_robin\"\n",
        minimal(&[a.addr.to_string(), b.addr.to_string(), bad.addr.to_string()])
    ));
    let statuses: Vec<u16> = (0..90).map(|_| brace.get("/").status).collect();
    let errors = statuses.iter().filter(|&&s| s == 500).count();
    // Five failures in a row eject it (the default consecutive_failures); after that, none.
    assert_eq!(errors, 5, "{statuses:?}");
    assert!(statuses[45..].iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(bad.count(), 5);
    // What is in force is visible, in the config's words.
    let pool = &upstreams(&brace)["upstreams"]["pool"];
    assert_eq!(pool["balance"], "round_robin");
    assert_eq!(pool["outlier"]["consecutive_failures"], 5);
    assert_eq!(pool["outlier"]["max_ejection_percent"], 50);
    assert_eq!(pool["retry"]["budget_percent"], 20);
}

#[test]
fn the_only_backend_is_not_ejected_by_default_and_zero_turns_ejection_off() {
    let bad = Upstream::with_mode("bad", Mode::Status(500, "broken"));
    let brace = Brace::start(&minimal(&[bad.addr.to_string()]));
    for _ in 0..12 {
        assert_eq!(brace.get("/").status, 500, "its own 500, never brace's 503");
    }
    assert_eq!(bad.count(), 12);

    let (a, bad2) = (
        Upstream::start("a"),
        Upstream::with_mode("bad", Mode::Status(500, "broken")),
    );
    let brace = Brace::start(&format!(
        "{}balance = \"round_robin\"\n[upstream.pool.outlier]\nconsecutive_failures = 0\n",
        minimal(&[a.addr.to_string(), bad2.addr.to_string()])
    ));
    for _ in 0..40 {
        brace.get("/");
    }
    assert_eq!(
        bad2.count(),
        20,
        "with ejection off, round robin keeps sending it half"
    );
}

#[test]
fn connect_retries_do_not_draw_on_the_retry_budget() {
    // Round robin and ejection off, so every third request meets the dead backend: about 100 connect failures
    // in well under a second, far beyond the budget's 10/s floor and 20% share.
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let dead = dead_addr();
    let brace = Brace::start(&format!(
        "{}balance = \"round_robin\"\n[upstream.pool.outlier]\nconsecutive_failures = 0\n",
        minimal(&[a.addr.to_string(), b.addr.to_string(), dead.to_string()])
    ));
    let errors = (0..300).filter(|_| brace.get("/").status != 200).count();
    assert_eq!(errors, 0);
    let retries =
        brace.metric("brace_upstream_retries_total{reason=\"connect_error\",upstream=\"pool\"}");
    assert!(retries >= 90.0, "{retries} connect retries");
    assert_eq!(
        brace.metric("brace_upstream_retry_budget_exhausted_total{upstream=\"pool\"}"),
        0.0
    );
}

#[test]
fn oversized_uploads_never_count_against_a_backend() {
    // One backend, ejection and breaker as touchy as they go: if a client's 413 were charged
    // to the backend, the first upload would take it out for everyone.
    let up = Upstream::with_mode("u", Mode::Echo);
    let brace = Brace::start_with(
        &format!("{}{TOUCHY}", minimal(&[up.addr.to_string()])),
        "client_max_body_size = \"1KiB\"",
    );
    let chunk = "x".repeat(600);
    for _ in 0..6 {
        // Chunked, so the size is found only as the body streams to the backend.
        let r = send(
            brace.addr(),
            format!(
                "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        if let Ok(r) = r {
            assert_eq!(r.status, 413);
        }
    }
    assert_no_backend_blamed(&brace);
    assert_eq!(brace.get("/after").status, 200);
}

#[test]
fn an_empty_health_check_table_checks_slash_and_says_why_a_backend_is_down() {
    // An app without /healthz: its / answers. An empty table must not mark it down.
    let app = Upstream::with_mode(
        "app",
        script(|head, _| {
            if head.starts_with("get /healthz ") {
                (404, String::new(), b"no such page".to_vec())
            } else {
                (200, String::new(), b"home".to_vec())
            }
        }),
    );
    // And one whose / is broken.
    let broken = Upstream::with_mode("broken", Mode::Status(404, "gone"));
    let mut brace = Brace::start(&format!(
        "{}[upstream.pool.health_check]\n",
        minimal(&[app.addr.to_string(), broken.addr.to_string()])
    ));
    let backend = |u: &Upstream| {
        upstreams(&brace)["upstreams"]["pool"]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["addr"] == u.addr.to_string())
            .cloned()
            .unwrap()
    };
    wait_for("first checks", std::time::Duration::from_secs(10), || {
        backend(&app)["health"] != "unknown" && backend(&broken)["health"] != "unknown"
    });
    assert_eq!(backend(&app)["health"], "healthy");
    assert_eq!(backend(&broken)["health"], "unhealthy");
    assert!(app.head().starts_with("get / http/1.1"), "{}", app.head());
    for _ in 0..10 {
        assert_eq!(brace.get("/x").status, 200);
    }
    // The transition is logged at WARN with its reason.
    let log = brace.stderr();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains(&broken.addr.to_string())
            && l.contains("status 404 outside 200-399")),
        "{log}"
    );
}
