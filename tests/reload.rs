//! Live reload: under load, broken configs, state kept, restart-only keys, the three triggers,
//! and `brace check --against`.

mod support;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

fn two_pools(route_to: &str, a: &[&Upstream], b: &[&Upstream], extra: &str) -> String {
    let list = |us: &[&Upstream]| {
        us.iter()
            .map(|u| format!("\"{}\"", u.addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[[route]]\nname = \"main\"\nupstream = \"{route_to}\"\n\n[upstream.one]\nbackends = [{}]\n\n[upstream.two]\nbackends = [{}]\n{extra}",
        list(a),
        list(b)
    )
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn fifty_reloads_under_load_lose_nothing() {
    let ups: Vec<Upstream> = (0..4).map(|i| Upstream::start(&format!("u{i}"))).collect();
    let (one, two) = ([&ups[0], &ups[1]], [&ups[2], &ups[3]]);
    let b = Brace::start(&two_pools("one", &one, &two, ""));
    let addr = b.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, sent, failed, seen) =
                (stop.clone(), sent.clone(), failed.clone(), seen.clone());
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(60);
                // Half the clients reuse one keep-alive connection; a reset would show as an error.
                let mut conn: Option<(
                    std::net::TcpStream,
                    std::io::BufReader<std::net::TcpStream>,
                )> = None;
                while !stop.load(Ordering::SeqCst)
                    && Instant::now() < end
                    && sent.load(Ordering::SeqCst) < 50_000
                {
                    sent.fetch_add(1, Ordering::SeqCst);
                    let r = if i % 2 == 0 {
                        try_get(addr, "/")
                    } else {
                        use std::io::Write;
                        let (w, r) = conn.get_or_insert_with(|| {
                            let s = std::net::TcpStream::connect(addr).unwrap();
                            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                            (s.try_clone().unwrap(), std::io::BufReader::new(s))
                        });
                        w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                            .and_then(|_| read_response(r))
                    };
                    match r {
                        Ok(r) if r.status == 200 => {
                            seen.lock()
                                .unwrap()
                                .insert(r.header("x-upstream").unwrap_or("-").to_owned());
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    wait_for("traffic", Duration::from_secs(10), || {
        sent.load(Ordering::SeqCst) > 100
    });
    for i in 0..50 {
        let to = if i % 2 == 0 { "two" } else { "one" };
        b.rewrite(&two_pools(to, &one, &two, ""));
        let r = if i % 5 == 4 {
            // Every fifth reload by signal; wait until its hash is in force.
            b.signal("HUP");
            let want = "brace_config_reloads_total{result=\"success\"}";
            wait_for("SIGHUP reload", Duration::from_secs(5), || {
                b.metric(want) == (i + 1) as f64
            });
            None
        } else {
            Some(b.reload())
        };
        if let Some(r) = r {
            assert_eq!(r.status, 200, "{}", r.text());
        }
        // Let some traffic through on this config.
        let at = sent.load(Ordering::SeqCst);
        wait_for("traffic on this config", Duration::from_secs(10), || {
            sent.load(Ordering::SeqCst) > at + 20
        });
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("reload under load: {sent} requests, 50 reloads, {failed} failed");
    assert_eq!(failed, 0);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|u| ["u0", "u1", "u2", "u3"].contains(&u.as_str())),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 4, "both pools served: {seen:?}");
    b.wait_metric("brace_config_reloads_total{result=\"success\"}", 50.0);
}

#[test]
fn a_broken_config_keeps_the_old_one_serving() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    let hash_before = json(&get(b.admin(), "/api/config"))["hash"].clone();

    b.rewrite("[[route]]\nname = \"main\"\nupstream = [\n");
    let r = b.reload();
    assert_eq!(r.status, 422);
    let v = json(&r);
    assert_eq!(v["message"], "kept the running config");
    let e = v["error"].as_str().unwrap();
    // The unclosed array is reported where the file ends, after the head the harness wrote.
    let line: usize = e
        .split("brace.toml:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line in {e}"));
    assert!(line >= b.head.lines().count() + 3, "{e}");
    assert!(e.contains("invalid array"), "{e}");

    b.rewrite("[[route]]\nname = \"main\"\nupstream = \"nope\"\n");
    let v = json(&b.reload());
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("route[0].upstream") && e.contains("\"nope\""),
        "{e}"
    );

    assert_eq!(b.get("/").status, 200);
    assert_eq!(get(b.admin(), "/readyz").status, 200);
    b.wait_metric("brace_config_reloads_total{result=\"failure\"}", 2.0);
    assert_eq!(b.metric("brace_config_last_reload_successful"), 0.0);
    assert_eq!(json(&get(b.admin(), "/api/config"))["hash"], hash_before);
}

#[test]
fn unchanged_parts_keep_their_state() {
    let (bad, good) = (
        Upstream::with_mode("bad", Mode::Status(500, "x")),
        Upstream::start("good"),
    );
    let cfg = |extra_route: &str, extra_backend: &str| {
        format!(
            "[rate_limit.tight]\nkey = \"route\"\nrate = 1\nper = \"60s\"\nburst = 3\n\
             [[route]]\nname = \"main\"\nupstream = \"pool\"\n\
             [[route]]\nname = \"limited\"\npath_prefix = \"/limited/\"\nupstream = \"pool\"\nrate_limits = [\"tight\"]\n{extra_route}\n\
             [upstream.pool]\nbalance = \"round_robin\"\nbackends = [\"{}\", \"{}\"{extra_backend}]\n\
             [upstream.pool.retry]\nattempts = 0\n\
             [upstream.pool.circuit_breaker]\nconsecutive_failures = 2\nfailure_ratio = 0.0\nopen_duration = \"60s\"\n",
            bad.addr, good.addr
        )
    };
    let b = Brace::start(&cfg("", ""));
    let state = trip_breaker(&b, "pool", bad.addr, 4);
    for _ in 0..2 {
        assert_eq!(b.get("/limited/x").status, 200);
    }

    // An unrelated route changes.
    let other = Upstream::start("other");
    b.rewrite(&cfg(&format!("[[route]]\nname = \"new\"\npath_prefix = \"/new/\"\nupstream = \"extra\"\n[upstream.extra]\nbackends = [\"{}\"]\n", other.addr), ""));
    assert_eq!(b.reload().status, 200);
    assert_eq!(b.metric(&state), 2.0, "breaker state lost");
    let before = bad.count();
    for _ in 0..10 {
        assert_eq!(b.get("/").header("x-upstream"), Some("good"));
    }
    assert_eq!(bad.count(), before);
    assert_eq!(
        b.get("/limited/x").status,
        200,
        "bucket level lost (it had one left)"
    );
    assert_eq!(b.get("/limited/x").status, 429);
    assert_eq!(b.get("/new/x").header("x-upstream"), Some("other"));

    // The pool itself changes (a backend added): the breaker of the one that stayed holds.
    let third = Upstream::start("third");
    b.rewrite(&cfg("", &format!(", \"{}\"", third.addr)));
    let r = b.reload();
    assert_eq!(r.status, 200);
    let plan = &json(&r)["plan"];
    assert_eq!(plan["backends_added"][0], format!("pool/{}", third.addr));
    assert_eq!(
        b.metric(&state),
        2.0,
        "breaker state lost in a changed pool"
    );
    let up = upstreams(&b);
    assert_eq!(
        up["upstreams"]["pool"]["backends"][0]["breaker"]["state"],
        "open"
    );
}

#[test]
fn restart_only_changes_are_reported_and_not_applied() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    let new_port = free_port();
    let text = std::fs::read_to_string(&b.config_path)
        .unwrap()
        .replace(
            &format!("127.0.0.1:{}\"]", b.port),
            &format!("127.0.0.1:{new_port}\"]"),
        )
        .replace("grace_period = \"5s\"", "grace_period = \"7s\"");
    std::fs::write(&b.config_path, text).unwrap();
    let r = b.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    let na = &v["not_applied_until_restart"];
    assert_eq!(na[0]["key"], "server.listen", "{v}");
    assert!(
        v["plan"]["settings_changed"]
            .to_string()
            .contains("server.grace_period"),
        "{v}"
    );
    assert_eq!(b.metric("brace_config_restart_required"), 1.0);
    assert_eq!(b.get("/").status, 200, "the old listener still serves");
    assert!(std::net::TcpStream::connect(("127.0.0.1", new_port)).is_err());
}

#[test]
fn the_file_watcher_reloads_once_per_burst() {
    let (a, c) = (Upstream::start("a"), Upstream::start("c"));
    let cfg = |to: &str| two_pools(to, &[&a], &[&c], "");
    let b = Brace::start_with(&cfg("one"), "watch_config = true");
    let success = "brace_config_reloads_total{result=\"success\"}";
    // A burst of twelve writes, each a different valid config, 50 ms apart (the poll is
    // 250 ms): the burst spans two polls or more, so only a watcher that waits for the
    // content to settle reloads once.
    for i in 0..12 {
        let to = if i % 2 == 0 { "one" } else { "two" };
        b.rewrite(&format!("{}# write {i}\n", cfg(to)));
        std::thread::sleep(Duration::from_millis(50)); // allowed: the writer's pace is the test
    }
    wait_for("the watcher to reload", Duration::from_secs(10), || {
        b.get("/").header("x-upstream") == Some("c")
    });
    // Once on any machine where the writes came within the settle time of each other (2 s);
    // a test thread stalled longer than that may see a reload mid-burst, never a wrong
    // config. The rule itself is unit-tested on stepped polls (`reload::tests`).
    assert!(b.metric(success) >= 1.0);
    assert_eq!(
        b.metric("brace_config_reloads_total{result=\"failure\"}"),
        0.0
    );
    let settled = b.metric(success);
    // Nothing else changes: no further reloads over a few polls (bounded observation).
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        assert_eq!(b.metric(success), settled);
        std::thread::sleep(Duration::from_millis(100)); // observation interval, allowed
    }
}

#[test]
fn reload_needs_the_token_when_one_is_set() {
    let up = Upstream::start("u");
    let port = free_port();
    let admin = free_port();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"s3cret\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n{}",
        simple_config("", &[&up], "")
    );
    let b = Brace::start_raw(&text, port, admin);
    assert_eq!(b.reload().status, 401);
    assert_eq!(
        post(b.admin(), "/api/reload", "Authorization: Bearer nope\r\n").status,
        401
    );
    assert_eq!(
        post(b.admin(), "/api/reload", "Authorization: Bearer s3cret\r\n").status,
        200
    );
    let cfg = json(&get(b.admin(), "/api/config"));
    let toml = cfg["toml"].as_str().unwrap();
    assert!(
        toml.contains("token = \"<redacted>\"") && !toml.contains("s3cret"),
        "{toml}"
    );
    assert_eq!(get(b.admin(), "/api/reload").status, 405);
}

/// `brace check -c NEW --against OLD` on two config texts; its standard output.
fn check_against(dir: &tempfile::TempDir, old: &str, new: &str) -> String {
    let (old_path, new_path) = (dir.path().join("old.toml"), dir.path().join("new.toml"));
    std::fs::write(&old_path, old).unwrap();
    std::fs::write(&new_path, new).unwrap();
    let out = std::process::Command::new(BRACE)
        .args(["check", "-c"])
        .arg(&new_path)
        .arg("--against")
        .arg(&old_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_against_prints_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let text = check_against(
        &dir,
        "[[route]]\nname = \"a\"\nupstream = \"u\"\n[[route]]\nname = \"gone\"\npath_prefix = \"/g/\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n",
        "[server]\nlisten = [\"127.0.0.1:8081\"]\n[[route]]\nname = \"a\"\nupstream = \"u\"\ntimeout = \"5s\"\n[[route]]\nname = \"fresh\"\npath_prefix = \"/f/\"\nupstream = \"v\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\", \"127.0.0.1:9003\"]\n[upstream.v]\nbackends = [\"127.0.0.1:9004\"]\n",
    );
    for want in [
        "+ route fresh",
        "- route gone",
        "+ upstream v",
        "+ backend u/127.0.0.1:9003",
        "- backend u/127.0.0.1:9002",
        "~ route.a.timeout: 30s -> 5s",
        "! server.listen: [127.0.0.1:8080] -> [127.0.0.1:8081] (needs a restart",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // Against a running brace, through its admin API.
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    let newer = dir.path().join("newer.toml");
    std::fs::write(
        &newer,
        format!(
            "{}{}",
            b.head,
            simple_config("timeout = \"9s\"", &[&up], "")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BRACE)
        .args(["check", "-c"])
        .arg(&newer)
        .args(["--against", "running"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("~ route.main.timeout: 30s -> 9s"), "{text}");
}

#[test]
fn a_backend_removed_by_reload_leaves_no_series_behind() {
    let (bad, good) = (
        Upstream::with_mode("bad", Mode::Status(500, "x")),
        Upstream::start("good"),
    );
    let cfg = |backends: &str| {
        format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n\
             [upstream.pool]\nbalance = \"round_robin\"\nbackends = [{backends}]\n\
             [upstream.pool.retry]\nattempts = 0\n\
             [upstream.pool.health_check]\ntype = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n\
             [upstream.pool.circuit_breaker]\nconsecutive_failures = 1\nfailure_ratio = 0.0\nopen_duration = \"60s\"\n"
        )
    };
    let b = Brace::start(&cfg(&format!("\"{}\", \"{}\"", bad.addr, good.addr)));
    for _ in 0..4 {
        b.get("/");
    }
    // Its breaker is open, it has outcomes, checks and a transition: series of every kind.
    let state = format!(
        "brace_circuit_breaker_state{{backend=\"{}\",upstream=\"pool\"}}",
        bad.addr
    );
    b.wait_metric(&state, 2.0);
    b.rewrite(&cfg(&format!("\"{}\"", good.addr)));
    assert_eq!(b.reload().status, 200);
    let m = b.metrics();
    let left: Vec<&str> = m
        .lines()
        .filter(|l| l.contains(&bad.addr.to_string()))
        .collect();
    assert!(left.is_empty(), "series of the removed backend: {left:#?}");
    assert!(m.contains(&good.addr.to_string()));
}

#[test]
fn a_pools_in_flight_count_survives_a_reload_that_changes_it() {
    let up = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(1500)));
    let cfg = |timeout: &str| {
        format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n\
             [upstream.pool]\nbackends = [\"{}\"]\nmax_in_flight = 1\nread_timeout = \"{timeout}\"\n",
            up.addr
        )
    };
    let b = Brace::start(&cfg("10s"));
    let addr = b.addr();
    let slow = std::thread::spawn(move || get(addr, "/slow").status);
    wait_for(
        "the request to reach the upstream",
        Duration::from_secs(10),
        || up.count() == 1,
    );
    // The pool is rebuilt (another read_timeout); the request on the old one still counts.
    b.rewrite(&cfg("20s"));
    assert_eq!(b.reload().status, 200);
    assert_eq!(
        b.get("/second").status,
        503,
        "max_in_flight forgot the running request"
    );
    assert_eq!(slow.join().unwrap(), 200);
    // The place is given back when the request's context is dropped, just after the client
    // has its response: wait for it rather than race it.
    wait_for(
        "the count to come back down",
        Duration::from_secs(5),
        || b.get("/third").status == 200,
    );
}

#[test]
fn switching_a_limit_from_shadow_to_enforce_keeps_its_buckets() {
    let up = Upstream::start("u");
    let cfg = |shadow: bool| {
        let mode = if shadow { "shadow" } else { "enforce" };
        format!(
            "[rate_limit.tight]\nkey = \"route\"\nrate = 1\nper = \"60s\"\nburst = 2\nmode = \"{mode}\"\n\
             [[route]]\nname = \"main\"\nupstream = \"pool\"\nrate_limits = [\"tight\"]\n\
             [upstream.pool]\nbackends = [\"{}\"]\n",
            up.addr
        )
    };
    let b = Brace::start(&cfg(true));
    // Shadow mode: the bucket is drawn down (and past), nobody is refused.
    for _ in 0..3 {
        assert_eq!(b.get("/").status, 200);
    }
    b.rewrite(&cfg(false));
    assert_eq!(b.reload().status, 200);
    // Enforcing now, on the same bucket: empty, so refused at once.
    assert_eq!(b.get("/").status, 429);
}

#[test]
fn check_against_reports_cache_only_edits_and_keepalive_as_restart_only() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[[route]]\nname = \"a\"\nupstream = \"u\"\n";
    let text = check_against(
        &dir,
        &format!("[cache]\n{base}[route.cache]\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n"),
        &format!("[cache]\nmax_size = \"64MiB\"\n{base}[route.cache]\nmax_ttl = \"2h\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\nkeepalive = 16\n"),
    );
    assert!(!text.contains("no changes"), "{text}");
    for want in [
        "route.a.cache",
        "cache:",
        "upstream.u.keepalive: 128 -> 16 (needs a restart",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
