//! What clients see when things go wrong: 502, 504, 503, 413, 400; and that upstream answers
//! and large bodies pass through untouched.

mod support;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn refused_connection_is_502_and_counted_as_connect_error() {
    let dead = format!("127.0.0.1:{}", free_port()); // bound, read, released: nobody listens
    let b = Brace::start(&format!(
        "[[route]]\nname = \"m\"\nupstream = \"p\"\n[upstream.p]\nbackends = [\"{dead}\"]\n"
    ));
    let r = b.get("/");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.text(),
        "brace: could not get a valid response from upstream \"p\"\n"
    );
    b.wait_metric(&format!(
            "brace_upstream_requests_total{{backend=\"{dead}\",outcome=\"connect_error\",upstream=\"p\"}}"
        ), 1.0);
    b.wait_metric("brace_requests_total{code=\"502\",route=\"m\"}", 1.0);
}

#[test]
fn upstream_that_never_answers_is_504_within_the_timeout() {
    let up = Upstream::with_mode("u", Mode::Hang);
    let b = Brace::start(&simple_config("", &[&up], "read_timeout = \"300ms\""));
    let t = Instant::now();
    let r = b.get("/");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(r.text().contains("did not answer in time"), "{}", r.text());
    // Not before the timeout; and by it, not by the route's 30 s (a bound on a hang only).
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(25),
        "{took:?}"
    );
    b.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"timeout\",upstream=\"pool\"}}",
            up.addr
        ),
        1.0,
    );
}

#[test]
fn route_timeout_caps_the_wait_for_the_upstream() {
    let up = Upstream::with_mode("u", Mode::Hang);
    let b = Brace::start(&simple_config(
        "timeout = \"200ms\"",
        &[&up],
        "read_timeout = \"30s\"",
    ));
    let t = Instant::now();
    assert_eq!(b.get("/").status, 504);
    // By the route's 200 ms, not the upstream's 30 s (a bound on a hang only).
    assert!(t.elapsed() < Duration::from_secs(25), "{:?}", t.elapsed());
}

#[test]
fn upstream_closing_the_connection_is_502() {
    let up = Upstream::with_mode("u", Mode::Close);
    let b = Brace::start(&simple_config("", &[&up], ""));
    assert_eq!(b.get("/").status, 502);
    assert!(up.count() >= 1);
}

#[test]
fn upstream_status_and_body_pass_through_untouched() {
    let up = Upstream::with_mode("u", Mode::Status(503, "down for maintenance\n"));
    let b = Brace::start(&simple_config("", &[&up], ""));
    let r = b.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "down for maintenance\n");
    up.set(Mode::Status(418, "teapot"));
    let r = b.get("/");
    assert_eq!((r.status, r.text().as_str()), (418, "teapot"));
    b.wait_metric(&format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"http_5xx\",upstream=\"pool\"}}",
            up.addr
        ), 1.0);
}

#[test]
fn body_over_the_limit_is_413_by_length_and_while_streaming() {
    let up = Upstream::start("u");
    let b = Brace::start_with(
        &simple_config("", &[&up], ""),
        "client_max_body_size = \"1KiB\"",
    );

    let r = send(
        b.addr(),
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(
        up.count(),
        0,
        "a declared oversize body never reaches the upstream"
    );

    // Chunked, no declared length: refused once it passes the limit.
    let mut raw = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b'a'; 0x400]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = send(b.addr(), &raw).unwrap();
    assert_eq!(r.status, 413);

    // Within the limit is fine.
    let r = send(
        b.addr(),
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    b.wait_metric("brace_requests_total{code=\"413\",route=\"main\"}", 2.0);
}

#[test]
fn malformed_requests_are_400_and_never_reach_the_upstream() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    let cases: &[&[u8]] = &[
        b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a/%2e%2e/b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GARBAGE\r\n\r\n",
    ];
    for raw in cases {
        let what = String::from_utf8_lossy(raw);
        match send(b.addr(), raw) {
            Ok(r) => assert_eq!(r.status, 400, "{what}"),
            // A request too broken to answer may be closed without a response.
            Err(e) => eprintln!("closed without a response ({e}): {what}"),
        }
    }
    assert_eq!(up.count(), 0, "a malformed request reached the upstream");
}

#[test]
fn large_bodies_stream_both_ways() {
    let size = 20 * 1024 * 1024;
    let up = Upstream::with_mode("u", Mode::Large(size));
    let b = Brace::start(&simple_config("", &[&up], ""));
    let r = b.get("/big");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), size);

    // Upload 5 MiB (under the 10 MiB default), written in pieces.
    up.set(Mode::Ok);
    let upload = 5 * 1024 * 1024;
    let mut s = TcpStream::connect(b.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {upload}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'y'; 64 * 1024];
    for _ in 0..(upload / chunk.len()) {
        s.write_all(&chunk).unwrap();
    }
    let r = read_response(&mut BufReader::new(&mut s)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        up.body_bytes.load(std::sync::atomic::Ordering::SeqCst),
        upload
    );
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    // RFC 9112 §6.1: the body is framed by Transfer-Encoding, Content-Length is dropped, and
    // the connection is closed after the response, so trailing bytes never become a request.
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], ""));
    let raw =
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
                0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut s = TcpStream::connect(b.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut r = BufReader::new(&mut s);
    let first = read_response(&mut r).unwrap();
    assert_eq!(first.status, 200);
    assert!(
        !first.text().contains("content-length: 40"),
        "{}",
        first.text()
    );
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "a second response came back: {}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(up.count(), 1);
    assert!(!up.head().contains("smuggled"));
}

/// A backend that answers 503 to everything and another (`ok`, in `mode`), taken in turn,
/// with 503s retried and no ejection.
fn busy_and(mode: Mode) -> (Upstream, Upstream, Brace) {
    let busy = Upstream::with_mode("busy", Mode::Status(503, "busy"));
    let ok = Upstream::with_mode("ok", mode);
    let b = Brace::start(&simple_config(
        "",
        &[&busy, &ok],
        "balance = \"round_robin\"\n[upstream.pool.retry]\non = [\"503\"]\n\
         [upstream.pool.outlier]\nconsecutive_failures = 0\n",
    ));
    (busy, ok, b)
}

#[test]
fn a_503_is_retried_on_another_backend_when_configured() {
    let (busy, ok, b) = busy_and(Mode::Ok);
    for _ in 0..6 {
        let r = b.get("/");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-upstream"), Some("ok"));
    }
    // Every 503 it gave was retried once, on the other backend, and recorded against it.
    let busy_n = busy.count() as f64;
    assert!(busy_n >= 3.0, "{busy_n}");
    assert_eq!(
        b.metric("brace_upstream_retries_total{reason=\"503\",upstream=\"pool\"}"),
        busy_n
    );
    assert_eq!(
        b.metric(&format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"http_5xx\",upstream=\"pool\"}}",
            busy.addr
        )),
        busy_n
    );
    assert_eq!(ok.count(), 6);
}

/// A request retried after a broken backend's 503 reaches the next backend with brace's
/// forwarding fields once each, as a first attempt does: the retry starts again from the
/// client's request, not from the first attempt's copy (from a trusted peer, that copy's
/// `X-Forwarded-For` would gain the peer twice), whatever the client's spellings.
#[test]
fn a_retried_request_carries_the_forwarding_fields_once() {
    // The loopback client is a trusted proxy (the default `trusted_proxies`).
    let (busy, echo, b) = busy_and(Mode::Echo);
    for _ in 0..4 {
        let r = send(
            b.addr(),
            b"GET /p HTTP/1.1\r\nHost: shop.example\r\nX-FORWARDED-FOR: 203.0.113.9\r\n\
              x-request-id: client-chosen\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        let head = echo.head();
        let id = r.header("x-request-id").unwrap().to_ascii_lowercase();
        for (field, value) in [
            ("x-forwarded-for", "203.0.113.9, 127.0.0.1"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "shop.example"),
            ("x-request-id", id.as_str()),
        ] {
            assert_eq!(head.matches(field).count(), 1, "{field}: {head}");
            assert!(head.contains(&format!("{field}: {value}\r\n")), "{head}");
        }
    }
    // Some requests went to the broken backend first and were retried; only it was blamed.
    assert!(busy.count() >= 2, "{}", busy.count());
    assert_eq!(
        b.metric("brace_upstream_retries_total{reason=\"503\",upstream=\"pool\"}"),
        busy.count() as f64
    );
    assert_eq!(
        b.metric(&format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"success\",upstream=\"pool\"}}",
            echo.addr
        )),
        4.0
    );
}

/// The descriptors process `pid` has open.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// When brace runs out of open files while connecting to a backend, that is brace's own
/// trouble: 503 at once, outcome `local_error`, and the healthy backend is neither ejected
/// nor has its breaker opened (with touchy tables, one failure would do either). The limit is
/// lowered on the running process (`prlimit`), then idle client connections use up the rest.
#[test]
fn running_out_of_open_files_is_brace_s_own_outcome() {
    // The backend closes each connection after its answer, so every request connects anew.
    let up = Upstream::with_mode(
        "u",
        script(|_, _| (200, "Connection: close\r\n".into(), b"ok".to_vec())),
    );
    let b = Brace::start(&simple_config("", &[&up], TOUCHY));
    assert_eq!(b.get("/").status, 200);
    let pid = b.child_id();
    let open = fds(pid);
    let highest = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .max()
        .unwrap();
    let limit = (highest + 1).max(open) + 6;
    let out = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .expect("prlimit (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each client keeps its connection (one descriptor each); the backend connection is
    // closed after each answer. The descriptors run out at the backend connect of some
    // request (its accept took the last but one): it is answered, by brace.
    let mut idle = Vec::new();
    let mut local = None;
    // At most one round per descriptor left (the highest open one may sit far above the
    // rest), and never more than 1,000.
    for _ in 0..(limit - open + 20).min(1000) {
        let before = fds(pid);
        let mut s = TcpStream::connect(b.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let r = read_response(&mut BufReader::new(s.try_clone().unwrap())).unwrap();
        if r.status != 200 {
            local = Some(r);
            break;
        }
        idle.push(s);
        // The backend's connection is closed once its answer is relayed: wait for that, so
        // the next round starts with one descriptor fewer, not two.
        wait_for(
            "the backend connection to close",
            Duration::from_secs(10),
            || fds(pid) == before + 1,
        );
    }
    let r = local.expect("the descriptors never ran out");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("out of local resources"), "{}", r.text());
    drop(idle);
    // Descriptors are back: the backend was never taken out.
    wait_for("brace to answer again", Duration::from_secs(10), || {
        try_get(b.addr(), "/").is_ok_and(|r| r.status == 200)
    });
    let outcome = format!(
        "brace_upstream_requests_total{{backend=\"{}\",outcome=\"local_error\",upstream=\"pool\"}}",
        up.addr
    );
    assert_eq!(b.metric(&outcome), 1.0);
    assert_no_backend_blamed(&b);
}
