//! Draining a backend for a deploy (issue 29, part 4): `POST
//! /api/upstreams/NAME/backends/ADDR/drain`, `brace drain --wait` and `brace undrain`; a
//! drained backend gets no new request over any protocol while its in-flight ones finish, the
//! drain survives a reload, reaches a whole fleet through Redis, and bad drain requests are
//! refused. And the warm-up: a backend added to a serving pool with health checks gets nothing
//! until its first check passes.

mod support;
use std::sync::{Condvar, Mutex as StdMutex};
use std::time::Duration;
use support::edge::{Edge, PROTOS};
use support::redis::Redis;
use support::*;

/// A gate a backend's script waits at until it is opened.
#[derive(Default)]
struct Gate(StdMutex<bool>, Condvar);

impl Gate {
    fn wait(&self) {
        let mut open = self.0.lock().unwrap();
        while !*open {
            open = self.1.wait(open).unwrap();
        }
    }
    fn open(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }
}

fn post(b: &Brace, path: &str, headers: &str, body: &str) -> Response {
    admin_post(b, path, headers, body)
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn backend(b: &Brace, pool: &str, addr: std::net::SocketAddr) -> serde_json::Value {
    let all = upstreams(b);
    all["upstreams"][pool]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["addr"] == addr.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{addr} not in {all}"))
}

fn cli(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(BRACE);
    c.args(args);
    c
}

const ROUND_ROBIN: &str = "balance = \"round_robin\"\n";

#[test]
fn a_drained_backend_finishes_its_requests_gets_no_new_ones_and_comes_back_when_undrained() {
    let gate = std::sync::Arc::new(Gate::default());
    let held = gate.clone();
    let a = Upstream::with_mode(
        "a",
        script(move |_, _| {
            held.wait();
            (200, String::new(), b"slow a\n".to_vec())
        }),
    );
    let b = Upstream::start("b");
    let brace = Brace::start(&simple_config("", &[&a, &b], ROUND_ROBIN));
    // Requests until one is held by `a` (round robin: the first or the second).
    let addr = brace.addr();
    let mut clients = Vec::new();
    for _ in 0..4 {
        if a.count() == 1 {
            break;
        }
        let sent = a.count() + b.count();
        clients.push(std::thread::spawn(move || get(addr, "/").status));
        wait_for(
            "the request to reach a backend",
            Duration::from_secs(10),
            || a.count() + b.count() > sent,
        );
    }
    assert_eq!(a.count(), 1, "one request is in flight to a");

    let path = format!("/api/upstreams/pool/backends/{}/drain", a.addr);
    let r = post(&brace, &path, "", "{\"reason\": \"deploy v2\"}");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(
        (v["draining"].clone(), v["changed"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(v["in_flight"], 1);
    let draining = format!(
        "brace_upstream_backend_draining{{backend=\"{}\",upstream=\"pool\"}}",
        a.addr
    );
    assert_eq!(brace.metric(&draining), 1.0);
    let view = backend(&brace, "pool", a.addr);
    assert_eq!(
        (view["draining"].clone(), view["available"].clone()),
        (true.into(), false.into())
    );

    // `brace drain --wait` waits for the request in flight.
    let admin = brace.admin().to_string();
    let a_addr = a.addr.to_string();
    let waiter = cli(&["drain", "pool", &a_addr, "--admin", &admin, "--wait"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // New requests all go to b.
    let before = b.count();
    for _ in 0..20 {
        let r = brace.get("/");
        assert_eq!((r.status, r.text()), (200, "hello from b\n".to_owned()));
    }
    assert_eq!((a.count(), b.count() - before), (1, 20));

    // The held request finishes normally; then the waiter returns.
    gate.open();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    let out = waiter.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("nothing in flight"), "{stdout}");

    // A reload that changes something else keeps the drain.
    brace.rewrite(&simple_config("timeout = \"20s\"", &[&a, &b], ROUND_ROBIN));
    assert_eq!(brace.reload().status, 200);
    assert_eq!(backend(&brace, "pool", a.addr)["draining"], true);
    for _ in 0..6 {
        assert_eq!(brace.get("/").text(), "hello from b\n");
    }

    // Undrained, a serves again; the transitions are events.
    let out = cli(&["undrain", "pool", &a_addr, "--admin", &admin])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(brace.metric(&draining), 0.0);
    let from_a = (0..10)
        .filter(|_| brace.get("/").text() == "slow a\n")
        .count();
    assert_eq!(from_a, 5, "round robin shares again");
    let events = json(&get(brace.admin(), "/api/events"));
    let drains: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "drain")
        .map(|e| {
            (
                e["to"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        drains,
        [
            ("draining".to_owned(), "admin API: deploy v2".to_owned()),
            ("serving".to_owned(), "admin API".to_owned())
        ]
    );
    assert_no_backend_blamed(&brace);
}

#[test]
fn a_drained_backend_gets_nothing_over_any_protocol_even_when_the_pool_panics() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    // panic_threshold 1: with one backend out the pool would ignore availability, but a drain
    // is the operator's and holds even then.
    let edge = Edge::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{}\", \"{}\"]\npanic_threshold = 1.0\n",
        a.addr, b.addr
    ));
    let r = post(
        &edge.b,
        &format!("/api/upstreams/pool/backends/{}/drain", a.addr),
        "",
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for proto in PROTOS {
        for _ in 0..5 {
            assert_eq!(
                edge.get(proto, "a.test", "/"),
                (200, "hello from b\n".to_owned()),
                "{proto:?}"
            );
        }
    }
    assert_eq!(a.count(), 0);
    // Every backend drained: 503 from brace, and no backend is charged for it.
    let r = post(
        &edge.b,
        &format!("/api/upstreams/pool/backends/{}/drain", b.addr),
        "",
        "",
    );
    assert_eq!(r.status, 200);
    for proto in PROTOS {
        assert_eq!(edge.get(proto, "a.test", "/").0, 503, "{proto:?}");
    }
    assert_eq!((a.count(), b.count()), (0, 15));
    assert_no_backend_blamed(&edge.b);
}

#[test]
fn bad_drain_requests_are_refused_and_change_nothing() {
    let a = Upstream::start("a");
    let (port, admin) = (free_port(), free_port());
    let brace = Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"s3cret\"\n\
             [log]\nlevel = \"warn\"\naccess_log = \"off\"\n{}",
            simple_config("", &[&a], "")
        ),
        port,
        admin,
    );
    let auth = "Authorization: Bearer s3cret\r\n";
    let good = format!("/api/upstreams/pool/backends/{}/drain", a.addr);
    let cases: Vec<(String, &str, &str, u16, &str)> = vec![
        (good.clone(), "", "", 401, "token"),
        (
            good.clone(),
            "Authorization: Bearer wrong\r\n",
            "",
            401,
            "token",
        ),
        (
            good.clone(),
            "Origin: http://evil.test\r\nAuthorization: Bearer s3cret\r\n",
            "",
            403,
            "origin",
        ),
        (
            "/api/upstreams/nope/backends/127.0.0.1:1/drain".into(),
            auth,
            "",
            404,
            "upstreams: pool",
        ),
        (
            "/api/upstreams/pool/backends/127.0.0.1:1/drain".into(),
            auth,
            "",
            404,
            "has no backend 127.0.0.1:1",
        ),
        (
            "/api/upstreams/pool/backends/localhost:80/drain".into(),
            auth,
            "",
            400,
            "not a backend address",
        ),
        (
            "/api/upstreams/pool/backends/%5Bzz%5D:80/drain".into(),
            auth,
            "",
            400,
            "not a backend address",
        ),
        (good.clone(), auth, "[1]", 400, "reason"),
        (
            good.clone(),
            auth,
            "{\"reason\": \"x\", \"all\": true}",
            400,
            "unknown field",
        ),
        (
            good.replace("/drain", "/explode"),
            auth,
            "",
            404,
            "not found",
        ),
    ];
    for (path, headers, body, status, says) in cases {
        let r = post(&brace, &path, headers, body);
        assert_eq!(r.status, status, "{path} {headers:?} {body}: {}", r.text());
        assert!(r.text().contains(says), "{path}: {}", r.text());
    }
    // Reading the path with GET is not allowed; nothing above drained anything.
    assert_eq!(get(brace.admin(), &good).status, 405);
    assert_eq!(backend(&brace, "pool", a.addr)["draining"], false);
    assert_eq!(brace.get("/").status, 200);
    // The command line says why, and fails.
    let out = cli(&[
        "drain",
        "nope",
        "127.0.0.1:1",
        "--admin",
        &brace.admin().to_string(),
        "--token",
        "s3cret",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no upstream \"nope\""), "{err}");
}

#[test]
fn a_drain_on_one_instance_applies_to_the_whole_fleet() {
    let redis = Redis::start();
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let fleet = redis.fleet(&["one", "two"], &simple_config("", &[&a, &b], ROUND_ROBIN));
    let path = format!("/api/upstreams/pool/backends/{}/drain", a.addr);
    let r = post(&fleet[0], &path, "", "");
    assert_eq!(json(&r)["cluster"]["shared"], true, "{}", r.text());
    wait_for(
        "the other instance to drain a",
        Duration::from_secs(10),
        || backend(&fleet[1], "pool", a.addr)["draining"] == true,
    );
    for f in &fleet {
        for _ in 0..4 {
            assert_eq!(f.get("/").text(), "hello from b\n");
        }
    }
    // An instance that starts later learns the drain from the store.
    let late = redis
        .fleet(&["late"], &simple_config("", &[&a, &b], ROUND_ROBIN))
        .remove(0);
    wait_for(
        "the late instance to drain a",
        Duration::from_secs(10),
        || backend(&late, "pool", a.addr)["draining"] == true,
    );
    // Undrained on the second instance: every instance serves from a again.
    let r = post(&fleet[1], &path.replace("/drain", "/undrain"), "", "");
    assert_eq!(r.status, 200);
    for f in fleet.iter().chain([&late]) {
        wait_for("a undrained everywhere", Duration::from_secs(10), || {
            backend(f, "pool", a.addr)["draining"] == false
        });
    }
    assert_eq!(a.count(), 0);
    assert!((0..4).any(|_| late.get("/").text() == "hello from a\n"));
}

#[test]
fn a_backend_added_while_the_pool_serves_waits_for_its_first_passing_check() {
    // `late` answers requests, but its health check never finishes: it stays "unknown".
    let stuck = std::sync::Arc::new(Gate::default());
    let (served_late, served_ready) = (
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    let backend_script = |name: &'static str,
                          served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
                          gate: Option<std::sync::Arc<Gate>>| {
        script(move |head, _| {
            if head.starts_with("get /health ") {
                if let Some(g) = &gate {
                    g.wait();
                }
            } else {
                served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (
                200,
                String::new(),
                format!("hello from {name}\n").into_bytes(),
            )
        })
    };
    let first = Upstream::start("first");
    let late = Upstream::with_mode(
        "late",
        backend_script("late", served_late.clone(), Some(stuck.clone())),
    );
    let ready = Upstream::with_mode("ready", backend_script("ready", served_ready.clone(), None));
    let checks =
        "[upstream.pool.health_check]\npath = \"/health\"\ninterval = \"30s\"\ntimeout = \"30s\"\n";
    let config = |bs: &[&Upstream]| simple_config("", bs, &format!("{ROUND_ROBIN}{checks}"));
    let brace = Brace::start(&config(&[&first]));
    // At start every backend is new: served at once, before any check.
    assert_eq!(brace.get("/").text(), "hello from first\n");

    brace.rewrite(&config(&[&first, &late, &ready]));
    assert_eq!(brace.reload().status, 200);
    let view = backend(&brace, "pool", late.addr);
    assert_eq!(
        (
            view["awaiting_first_check"].clone(),
            view["available"].clone()
        ),
        (true.into(), false.into())
    );
    wait_for(
        "ready's first check to pass",
        Duration::from_secs(10),
        || backend(&brace, "pool", ready.addr)["health"] == "healthy",
    );
    for _ in 0..20 {
        assert_eq!(brace.get("/").status, 200);
    }
    let ready_n = served_ready.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        served_late.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "late has not passed a check"
    );
    assert!(
        ready_n >= 5,
        "ready serves once its check passed ({ready_n} of 20)"
    );
    stuck.open();
}

#[test]
fn a_pool_in_panic_mode_still_sends_nothing_to_a_drained_backend() {
    // a drained; c dead and ejected after one failure; with panic_threshold 1.0 the pool
    // (b of the two it serves with) is in panic and balances over b and c regardless of their
    // state, but never over a.
    let (a, b, c) = (
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    );
    let dead = c.addr;
    c.stop();
    let brace = Brace::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{}\", \"{}\", \"{dead}\"]\n\
         balance = \"round_robin\"\npanic_threshold = 1.0\n\
         [upstream.pool.outlier]\nconsecutive_failures = 1\nmax_ejection_percent = 100\n",
        a.addr, b.addr
    ));
    let r = post(
        &brace,
        &format!("/api/upstreams/pool/backends/{}/drain", a.addr),
        "",
        "",
    );
    assert_eq!(r.status, 200);
    for _ in 0..20 {
        assert_eq!(brace.get("/").text(), "hello from b\n");
    }
    let view = backend(&brace, "pool", dead);
    assert_eq!(
        view["ejected"], true,
        "c was ejected, so the pool is in panic: {view}"
    );
    assert_eq!(a.count(), 0);
}
