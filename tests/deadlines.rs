//! The route's `deadline` and the upstream's `first_byte_timeout` (issue 29, part 5): both
//! bound only the wait for a response header, over HTTP/1.1, HTTP/2 over TLS and h2c; a
//! download that outlasts them is never cut; a retry is not started past the deadline.

mod support;
use std::io::{Read, Write};
use std::time::Duration;
use support::edge::{Edge, PROTOS};
use support::*;

/// A backend that answers its header at once and then sends `chunks` body bytes one every
/// `gap` (slow on purpose: a download).
fn dripping(chunks: usize, gap: Duration) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {chunks}\r\n\r\n");
                for _ in 0..chunks {
                    std::thread::sleep(gap); // allowed: the backend is slow on purpose
                    let _ = c.write_all(b"x");
                }
            });
        }
    });
    addr
}

fn outcome(b: &Brace, up: &Upstream, o: &str) -> f64 {
    b.metric(&format!(
        "brace_upstream_requests_total{{backend=\"{}\",outcome=\"{o}\",upstream=\"pool\"}}",
        up.addr
    ))
}

#[test]
fn a_deadline_ends_the_wait_for_a_header_over_every_protocol_and_is_not_retried() {
    let (a, b) = (
        Upstream::with_mode("a", Mode::Hang),
        Upstream::with_mode("b", Mode::Hang),
    );
    let edge = Edge::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\ndeadline = \"300ms\"\n\
         [upstream.pool]\nbackends = [\"{}\", \"{}\"]\nread_timeout = \"30s\"\n\
         [upstream.pool.retry]\nattempts = 1\non = [\"timeout\"]\n",
        a.addr, b.addr
    ));
    for proto in PROTOS {
        let (status, body) = edge.get(proto, "a.test", "/");
        assert_eq!(status, 504, "{proto:?}: {body}");
    }
    // Each request went to one backend only: the deadline left no time for a retry.
    assert_eq!(a.count() + b.count(), 3);
    assert_eq!(
        edge.b
            .metric("brace_upstream_retries_total{reason=\"timeout\",upstream=\"pool\"}"),
        0.0
    );
    // The attempt had the whole deadline: its backend was slow, and is charged.
    assert_eq!(
        outcome(&edge.b, &a, "timeout") + outcome(&edge.b, &b, "timeout"),
        3.0
    );
}

#[test]
fn a_first_byte_timeout_moves_the_request_to_another_backend() {
    let hang = Upstream::with_mode("hang", Mode::Hang);
    let ok = Upstream::start("ok");
    let b = Brace::start(&simple_config(
        "",
        &[&hang, &ok],
        "balance = \"round_robin\"\nfirst_byte_timeout = \"200ms\"\nread_timeout = \"30s\"\n\
         [upstream.pool.outlier]\nconsecutive_failures = 0\n",
    ));
    for _ in 0..4 {
        assert_eq!(b.get("/").text(), "hello from ok\n");
    }
    assert!(hang.count() >= 1);
    assert_eq!(outcome(&b, &hang, "timeout"), hang.count() as f64);
    assert_eq!(
        b.metric("brace_upstream_retries_total{reason=\"timeout\",upstream=\"pool\"}"),
        hang.count() as f64
    );
}

#[test]
fn a_download_that_outlasts_the_deadline_is_not_cut() {
    let slow_body = dripping(3, Duration::from_millis(1000));
    let b = Brace::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\ndeadline = \"2s\"\n\
         [upstream.pool]\nbackends = [\"{slow_body}\"]\nfirst_byte_timeout = \"2s\"\n"
    ));
    let r = b.get("/");
    assert_eq!((r.status, r.text()), (200, "xxx".to_owned()));
}

#[test]
fn deadline_settings_are_checked() {
    let up = "[[route]]\nname = \"r\"\nupstream = \"u\"\n{route}\n[upstream.u]\nbackends = [\"127.0.0.1:9\"]\n{up}\n";
    for (route, upstream, says) in [
        ("deadline = \"0s\"", "", "deadline"),
        ("deadline = 5", "", "deadline"),
        ("deadline = \"2h\"", "", "deadline"),
        (
            "",
            "first_byte_timeout = \"0ms\"",
            "upstream.u.first_byte_timeout",
        ),
        ("", "first_byte_timeout = \"soon\"", "first_byte_timeout"),
    ] {
        let text = up.replace("{route}", route).replace("{up}", upstream);
        let (code, _, err, _) = check(&text);
        assert_eq!(code, 1, "{text}");
        assert!(err.contains(says), "{text}: {err}");
    }
}
