//! Hedged requests (`[[route]] hedge`): a bodyless idempotent request whose first attempt has
//! not answered in time gets a second on another backend, the first answer wins and the other
//! is closed, over HTTP/1.1, HTTP/2 over TLS and h2c. Hedges stay within their budget, never
//! go out for a request with a body, and the beaten attempt blames nobody.

mod support;
use support::edge::*;
use support::*;

fn route(backends: &[&Upstream], hedge: &str) -> String {
    let list: Vec<String> = backends.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    format!(
        "[[route]]\nname = \"r\"\nupstream = \"u\"\nhedge = {hedge}\n\
         [upstream.u]\nbackends = [{}]\nbalance = \"round_robin\"\nread_timeout = \"60s\"\n",
        list.join(", ")
    )
}

fn hedges(b: &Brace, result: &str) -> f64 {
    b.metric(&format!(
        "brace_upstream_hedges_total{{result=\"{result}\",upstream=\"u\"}}"
    ))
}

/// A backend that never answers: each request it gets first is answered by the other
/// backend through a hedge, on every protocol, and the silent one is not blamed for it.
#[test]
fn a_hedge_answers_for_a_backend_that_never_does_over_every_protocol() {
    let stall = Upstream::with_mode("stall", Mode::Hang);
    let fast = Upstream::start("fast");
    let e = Edge::start(&route(
        &[&stall, &fast],
        "{ after = \"20ms\", max_extra_percent = 100 }",
    ));
    for proto in PROTOS {
        for i in 0..4 {
            let (status, body) = e.get(proto, "a.test", &format!("/h{i}"));
            assert_eq!(status, 200, "{proto:?}: {body}");
            assert!(body.contains("fast"), "{proto:?}: {body}");
        }
    }
    let stalled = stall.count() as f64;
    assert!(
        stalled >= 3.0,
        "round robin sent the stalled backend some first attempts"
    );
    assert_eq!(hedges(&e.b, "sent"), stalled);
    assert_eq!(hedges(&e.b, "won"), stalled);
    e.b.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"cancelled\",upstream=\"u\"}}",
            stall.addr
        ),
        stalled,
    );
    assert_eq!(
        fast.count(),
        12,
        "every request was answered once by the fast backend"
    );
    assert_no_backend_blamed(&e.b);
}

/// With `max_extra_percent = 5`, 40 requests pay for two hedges: the others wait for the
/// slow backend. A request with a body is never hedged.
#[test]
fn hedges_stay_within_their_budget_and_never_go_out_for_a_request_with_a_body() {
    let slow = Upstream::with_mode("slow", Mode::Delay(std::time::Duration::from_millis(300)));
    let fast = Upstream::start("fast");
    let b = Brace::start(&route(&[&slow, &fast], "{ after = \"20ms\" }"));
    let statuses = load(&b, 4, 40, "/x");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let sent = hedges(&b, "sent");
    assert!(
        (1.0..=2.0).contains(&sent),
        "40 requests at 5% pay for 2 hedges: {sent}"
    );
    // PUT is idempotent, but its body is sent once: never hedged.
    for _ in 0..2 {
        let put = "PUT /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        assert_eq!(send(b.addr(), put.as_bytes()).unwrap().status, 200);
    }
    assert_eq!(
        hedges(&b, "sent"),
        sent,
        "a request with a body is never hedged"
    );
    assert_no_backend_blamed(&b);
}

/// `after = "p95"`: no hedge until the pool has measured its time to answer; then a backend
/// that goes silent is hedged at the pool's p95.
#[test]
fn a_percentile_hedge_goes_out_once_the_pool_has_measured_itself() {
    let a = Upstream::start("a");
    let c = Upstream::start("c");
    let b = Brace::start(&route(
        &[&a, &c],
        "{ after = \"p95\", max_extra_percent = 100 }",
    ));
    let statuses = load(&b, 2, 40, "/warm");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    *a.mode.lock().unwrap() = Mode::Hang;
    let before = a.count();
    for i in 0..6 {
        let r = b.get(&format!("/p{i}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello from c\n");
    }
    let silent = (a.count() - before) as f64;
    assert!(silent >= 1.0);
    assert!(
        hedges(&b, "won") >= silent,
        "every request the silent backend held was hedged"
    );
    assert_no_backend_blamed(&b);
}

/// A client that leaves while both attempts are out: both are ended, neither backend is
/// blamed, and nothing stays counted in flight.
#[test]
fn a_client_that_leaves_during_the_race_ends_both_attempts_and_blames_nobody() {
    let (a, c) = (
        Upstream::with_mode("a", Mode::Hang),
        Upstream::with_mode("c", Mode::Hang),
    );
    let b = Brace::start(&route(
        &[&a, &c],
        "{ after = \"20ms\", max_extra_percent = 100 }",
    ));
    let mut client = std::net::TcpStream::connect(b.addr()).unwrap();
    std::io::Write::write_all(&mut client, b"GET /race HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
    wait_for(
        "both attempts to reach their backends",
        std::time::Duration::from_secs(10),
        || a.count() == 1 && c.count() == 1,
    );
    assert_eq!(hedges(&b, "sent"), 1.0);
    drop(client);
    for u in [&a, &c] {
        b.wait_metric(
            &format!(
                "brace_upstream_in_flight{{backend=\"{}\",upstream=\"u\"}}",
                u.addr
            ),
            0.0,
        );
    }
    assert_eq!(hedges(&b, "won"), 0.0);
    assert_no_backend_blamed(&b);
}
