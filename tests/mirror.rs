//! Traffic mirroring (issue 29, part 2): a route copies its requests to a shadow upstream
//! after answering them, over every protocol, bodies included up to `max_body`; a dead,
//! black-holed or slow shadow never fails or blocks a client, copies beyond the bound are
//! dropped and counted, and nothing about the copies touches any pool's health or metrics.

mod support;
use std::time::Duration;
use support::edge::{Edge, PROTOS};
use support::*;

fn config(
    app: &Upstream,
    shadow: std::net::SocketAddr,
    mirror: &str,
    shadow_extra: &str,
) -> String {
    format!(
        "[[route]]\nname = \"main\"\nupstream = \"app\"\nmirror = {{ upstream = \"shadow\", {mirror} }}\n\
         [upstream.app]\nbackends = [\"{}\"]\n[upstream.shadow]\nbackends = [\"{shadow}\"]\n{shadow_extra}\n",
        app.addr
    )
}

fn mirrored(b: &Brace, result: &str) -> f64 {
    b.metric(&format!(
        "brace_mirror_requests_total{{result=\"{result}\",route=\"main\",upstream=\"shadow\"}}"
    ))
}

#[test]
fn every_request_is_copied_to_the_shadow_over_every_protocol_with_its_body() {
    let app = Upstream::start("app");
    let shadow = Upstream::with_mode("shadow", Mode::Status(500, "shadow broke\n"));
    let edge = Edge::start(&config(&app, shadow.addr, "percent = 100", ""));
    let mut sent = 0;
    for proto in PROTOS {
        let (status, body) = edge.get(proto, "a.test", "/items?x=1");
        assert_eq!(
            (status, body.as_str()),
            (200, "hello from app\n"),
            "{proto:?}"
        );
        sent += 1;
        wait_for("the copy", Duration::from_secs(10), || {
            shadow.count() == sent
        });
        let head = shadow.head();
        assert!(
            head.starts_with("get /items?x=1 http/1.1"),
            "{proto:?}: {head}"
        );
        let args: Vec<String> = ["-X", "POST", "--data-binary", "order=42"]
            .map(String::from)
            .to_vec();
        let (status, _) = edge.curl(proto, "a.test", "/orders", &args);
        assert_eq!(status, 200, "{proto:?}");
        sent += 1;
        wait_for("the copy", Duration::from_secs(10), || {
            shadow.count() == sent
        });
        let head = shadow.head();
        assert!(
            head.starts_with("post /orders http/1.1"),
            "{proto:?}: {head}"
        );
        assert!(head.contains("content-length: 8"), "{head}");
        assert!(
            head.contains("x-forwarded-for: 127.0.0.1"),
            "as sent upstream: {head}"
        );
    }
    assert_eq!(
        shadow.body_bytes.load(std::sync::atomic::Ordering::SeqCst),
        3 * 8,
        "every POST body arrived whole"
    );
    // The shadow's 500s are its own business: counted as answered copies, and no pool (not
    // even the shadow's) has a request outcome for them.
    wait_for("the count", Duration::from_secs(10), || {
        mirrored(&edge.b, "answered") == 6.0
    });
    let shadow_label = format!("backend=\"{}\"", shadow.addr);
    for l in edge.b.metrics().lines() {
        if l.starts_with("brace_upstream_requests_total{") && l.contains(&shadow_label) {
            assert!(l.ends_with(" 0"), "copies are not upstream requests: {l}");
        }
    }
    assert_no_backend_blamed(&edge.b);
}

#[test]
fn a_dead_shadow_costs_clients_nothing_and_blames_nobody() {
    let app = Upstream::start("app");
    let dead = Upstream::start("dead");
    let addr = dead.addr;
    dead.stop();
    let b = Brace::start(&config(&app, addr, "percent = 100", ""));
    for _ in 0..20 {
        assert_eq!(b.get("/").status, 200);
    }
    wait_for("the failed copies", Duration::from_secs(10), || {
        mirrored(&b, "failed") == 20.0
    });
    assert_eq!(app.count(), 20);
    assert_no_backend_blamed(&b);
}

#[test]
fn a_shadow_that_never_answers_holds_at_most_its_bound_and_the_rest_are_dropped() {
    let app = Upstream::start("app");
    let hole = BlackHole::start();
    let b = Brace::start(&config(
        &app,
        hole.addr,
        "percent = 100",
        "read_timeout = \"60s\"\n",
    ));
    for _ in 0..50 {
        assert_eq!(b.get("/").text(), "hello from app\n");
    }
    // 32 copies are out (waiting on the black hole); the other 18 were dropped, not queued.
    wait_for(
        "the copies to reach the hole",
        Duration::from_secs(10),
        || hole.accepted() >= 32,
    );
    wait_for("the drops to be counted", Duration::from_secs(10), || {
        mirrored(&b, "dropped") == 18.0
    });
    assert_eq!(hole.accepted(), 32);
    assert_eq!(app.count(), 50);
}

#[test]
fn a_body_over_max_body_is_not_copied() {
    let app = Upstream::start("app");
    let shadow = Upstream::start("shadow");
    let b = Brace::start(&config(&app, shadow.addr, "max_body = \"1KiB\"", ""));
    let big = "x".repeat(2000);
    let r = send(
        b.addr(),
        format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = post(b.addr(), "/small", "");
    assert_eq!(r.status, 200);
    wait_for("the small copy", Duration::from_secs(10), || {
        shadow.count() == 1
    });
    assert_eq!(mirrored(&b, "skipped"), 1.0);
    assert!(
        shadow.head().starts_with("post /small"),
        "{}",
        shadow.head()
    );
}

#[test]
fn mirror_settings_are_checked() {
    let base = "[[route]]\nname = \"r\"\nupstream = \"a\"\n";
    let ups =
        "[upstream.a]\nbackends = [\"127.0.0.1:9\"]\n[upstream.b]\nbackends = [\"127.0.0.1:10\"]\n";
    for (mirror, says) in [
        ("{ upstream = \"nope\" }", "mirror.upstream"),
        ("{ upstream = \"a\" }", "every request twice"),
        ("{ upstream = \"b\", percent = 0 }", "mirror.percent"),
        ("{ upstream = \"b\", percent = 101 }", "mirror.percent"),
        (
            "{ upstream = \"b\", max_body = \"2MiB\" }",
            "mirror.max_body",
        ),
        ("{ upstream = \"b\", share = 5 }", "unknown field"),
    ] {
        let (code, _, err, _) = check(&format!("{base}mirror = {mirror}\n{ups}"));
        assert_eq!(code, 1, "{mirror}");
        assert!(err.contains(says), "{mirror}: {err}");
    }
    let (code, _, err, _) = check(&format!(
        "{base}mirror = {{ upstream = \"b\", percent = 10 }}\n{ups}"
    ));
    assert_eq!(code, 0, "{err}");
}
