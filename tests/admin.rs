//! The admin listener, metrics after known traffic, promtool, connection gauge, and graceful
//! shutdown finishing an in-flight request.

mod support;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use support::*;

#[test]
fn health_ready_and_unknown_paths() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    assert_eq!(get(b.admin(), "/healthz").status, 200);
    let r = get(b.admin(), "/readyz");
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(get(b.admin(), "/nope").status, 404);
    // The admin endpoints are not reachable through the proxy listener.
    assert_eq!(b.get("/metrics").header("x-upstream"), Some("u"));
}

#[test]
fn metrics_report_known_traffic() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    for _ in 0..5 {
        assert_eq!(b.get("/").status, 200);
    }
    b.wait_metric("brace_requests_total{code=\"200\",route=\"main\"}", 5.0);
    b.wait_metric("brace_requests_in_flight", 0.0);
    let m = b.metrics();
    assert_eq!(
        metric_value(&m, "brace_requests_total{code=\"200\",route=\"main\"}"),
        5.0
    );
    assert_eq!(
        metric_value(&m, "brace_request_duration_seconds_count{route=\"main\"}"),
        5.0
    );
    let backend = format!("backend=\"{}\"", up.addr);
    assert_eq!(
        metric_value(
            &m,
            &format!(
                "brace_upstream_requests_total{{{backend},outcome=\"success\",upstream=\"pool\"}}"
            )
        ),
        5.0
    );
    assert_eq!(
        metric_value(
            &m,
            &format!(
                "brace_upstream_request_duration_seconds_count{{{backend},upstream=\"pool\"}}"
            )
        ),
        5.0
    );
    assert_eq!(
        metric_value(
            &m,
            &format!(
                "brace_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("brace_config_info{hash=\"") && l.ends_with(" 1")),
        "{m}"
    );
    assert_eq!(metric_value(&m, "brace_requests_in_flight"), 0.0);
}

#[test]
fn connections_gauge_follows_keepalive_connections() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    let mut s = TcpStream::connect(b.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r).unwrap().status, 200);
    }
    b.wait_metric("brace_connections_active", 1.0);
    drop(r);
    drop(s);
    wait_for(
        "connection gauge back to 0",
        Duration::from_secs(10),
        || b.metric("brace_connections_active") == 0.0,
    );
}

#[test]
fn promtool_accepts_the_metrics() {
    let Ok(out) = Command::new("promtool").arg("--version").output() else {
        panic!("promtool not installed: run the README's test command, which installs it");
    };
    assert!(out.status.success());
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    b.get("/");
    b.get("/nothing-special");
    let text = b.metrics();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_finishes_the_in_flight_request_then_exits_0() {
    let up = Upstream::with_mode("u", Mode::Delay(Duration::from_millis(1500)));
    let mut b = Brace::start(&simple_config("", &[&up], ""));
    let addr = b.addr();
    let client = std::thread::spawn(move || get(addr, "/slow"));
    wait_for(
        "the request to reach the upstream",
        Duration::from_secs(10),
        || up.count() == 1,
    );
    b.signal("TERM");
    // The admin listener stays open through the drain, so a load balancer sees the answer.
    wait_for("/readyz to say draining", Duration::from_secs(5), || {
        try_get(b.admin(), "/readyz").is_ok_and(|r| r.status == 503 && r.text() == "draining\n")
    });
    assert_eq!(get(b.admin(), "/healthz").status, 200);
    assert_eq!(get(b.admin(), "/metrics").status, 200);
    let r = client.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request was cut");
    assert_eq!(r.text(), "hello from u\n");
    let status = b.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after exit"
    );
}

#[test]
fn sigint_drains_too_and_an_idle_brace_exits_at_once() {
    let up = Upstream::start("u");
    // A grace period far longer than the wait below: an idle brace that waited it out would
    // not exit in time, however busy the machine.
    let (port, admin) = (free_port(), free_port());
    let mut b = Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ngrace_period = \"600s\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n{}",
            simple_config("", &[&up], "")
        ),
        port,
        admin,
    );
    assert_eq!(b.get("/").status, 200);
    b.signal("INT");
    let status = b.wait_exit(Duration::from_secs(120));
    assert_eq!(status.code(), Some(0));
    assert!(!b.stderr().contains("grace period over"));
}

#[test]
fn access_log_writes_one_json_object_per_request() {
    let up = Upstream::start("u");
    let port = free_port();
    let admin = free_port();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [log]\nlevel = \"warn\"\naccess_log = \"access.log\"\n{}",
        simple_config("", &[&up], "")
    );
    let b = Brace::start_raw(&text, port, admin);
    let r = send(
        b.addr(),
        b"GET /x?y=1 HTTP/1.1\r\nHost: shop.example\r\nX-Request-Id: rid-1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // Relative to the config file's directory.
    let log = b.dir.path().join("access.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the access record", Duration::from_secs(10), || {
        read().contains("rid-1")
    });
    let text = read();
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["request_id"], "rid-1");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["host"], "shop.example");
    assert_eq!(v["path"], "/x?y=1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["route"], "main");
    assert_eq!(v["upstream"], "pool");
    assert_eq!(v["backend"], up.addr.to_string());
    assert_eq!(v["client"], "127.0.0.1");
    assert!(v["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["bytes_sent"], 13);
    assert!(v["timestamp"].is_string());
}

#[test]
fn access_log_off_writes_nothing() {
    let up = Upstream::start("u");
    // support::Brace::start uses access_log = "off" and pipes stdout.
    let mut b = Brace::start(&simple_config("", &[&up], ""));
    assert_eq!(b.get("/").status, 200);
    wait_for("the request to be counted", Duration::from_secs(5), || {
        b.metric("brace_requests_total{code=\"200\",route=\"main\"}") == 1.0
    });
    assert_eq!(b.stdout(), "");
}

/// When `grace_period` runs out with requests still in flight, brace says so at WARN with
/// their number, then exits 0: the cut is never silent.
#[test]
fn a_drain_that_runs_out_of_time_says_how_many_requests_it_cut() {
    let up = Upstream::with_mode("u", Mode::Hang);
    let (port, admin) = (free_port(), free_port());
    let mut b = Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ngrace_period = \"1s\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n{}",
            simple_config("", &[&up], "")
        ),
        port,
        admin,
    );
    let addr = b.addr();
    let clients: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || try_get(addr, "/stuck")))
        .collect();
    wait_for(
        "two requests to reach the upstream",
        Duration::from_secs(10),
        || up.count() == 2,
    );
    b.signal("TERM");
    let status = b.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    for c in clients {
        let _ = c.join();
    }
    let log = b.stderr();
    assert!(
        log.contains("grace period over with 2 requests in flight"),
        "{log}"
    );
}
