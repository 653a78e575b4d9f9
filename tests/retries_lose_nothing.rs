//! Retries that lose nothing (issue 29, part 5): a backend's `Retry-After` pauses it instead
//! of counting as a failure (capped, so ten years is 30 s at most; a 429 only where the
//! operator opted in), and a POST with an `Idempotency-Key` is retried on another backend
//! where the upstream opts in, over HTTP/1.1, HTTP/2 over TLS and h2c.

mod support;
use std::time::Duration;
use support::edge::{Edge, PROTOS};
use support::*;

fn busy(status: u16, retry_after: &'static str) -> Mode {
    script(move |_, _| {
        (
            status,
            format!("Retry-After: {retry_after}\r\n"),
            b"busy\n".to_vec(),
        )
    })
}

fn backend_view(b: &Brace, addr: std::net::SocketAddr) -> serde_json::Value {
    upstreams(b)["upstreams"]["pool"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["addr"] == addr.to_string())
        .cloned()
        .unwrap()
}

/// Sends `GET /` until `up` has been asked once; the statuses seen.
fn until_asked(b: &Brace, up: &Upstream) -> Vec<u16> {
    let mut seen = Vec::new();
    for _ in 0..4 {
        if up.count() > 0 {
            break;
        }
        seen.push(b.get("/").status);
    }
    assert_eq!(up.count(), 1);
    seen
}

#[test]
fn a_backend_that_asks_for_ten_years_is_paused_for_max_pause_and_not_blamed() {
    let a = Upstream::with_mode("a", busy(503, "315360000"));
    let b = Upstream::start("b");
    // TOUCHY: one failure would eject a and open its breaker; a pause is not a failure.
    let brace = Brace::start(&simple_config(
        "",
        &[&a, &b],
        &format!(
            "balance = \"round_robin\"\n[upstream.pool.retry]\nmax_pause = \"2s\"\n{}",
            touchy("pool")
        ),
    ));
    let seen = until_asked(&brace, &a);
    assert_eq!(
        seen.last(),
        Some(&503),
        "the backend's own answer reaches the client"
    );
    let view = backend_view(&brace, a.addr);
    let until = view["paused_until_unix"].as_f64().expect("paused");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(until <= now + 2.5, "capped at max_pause: {until} vs {now}");
    assert_eq!(
        (view["ejected"].clone(), view["breaker"]["state"].clone()),
        (false.into(), "closed".into())
    );
    // Paused: everything goes to b meanwhile.
    for _ in 0..10 {
        assert_eq!(brace.get("/").text(), "hello from b\n");
    }
    assert_eq!(a.count(), 1);
    let outcome = |o: &str| {
        brace.metric(&format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"{o}\",upstream=\"pool\"}}",
            a.addr
        ))
    };
    // Recorded when the request ended, which may be just after its answer was read.
    wait_for("the outcome", Duration::from_secs(10), || {
        outcome("backpressure") == 1.0
    });
    assert_eq!(outcome("http_5xx"), 0.0);
    assert_eq!(
        brace.metric(&format!(
            "brace_upstream_pauses_total{{backend=\"{}\",upstream=\"pool\"}}",
            a.addr
        )),
        1.0
    );
    // The pause ends; a answers again.
    a.set(Mode::Ok);
    wait_for("the pause to end", Duration::from_secs(10), || {
        backend_view(&brace, a.addr)["available"] == true
    });
    assert!((0..4).any(|_| brace.get("/").text() == "hello from a\n"));
    let events = get(brace.admin(), "/api/events").text();
    assert!(events.contains("\"kind\": \"pause\""), "{events}");
}

#[test]
fn a_429_pauses_only_where_opted_in_and_a_bad_retry_after_is_a_plain_answer() {
    for (pause_on, status, value, paused) in [
        ("", 429, "5", false),
        ("pause_on = [\"429\", \"503\"]\n", 429, "5", true),
        ("", 503, "soon", false),
        ("", 503, "-1", false),
        ("", 503, "Wed, 21 Oct 2015 07:28:00 GMT", false),
        ("max_pause = \"0s\"\n", 503, "5", false),
    ] {
        let a = Upstream::with_mode("a", busy(status, value));
        let b = Upstream::start("b");
        let brace = Brace::start(&simple_config(
            "",
            &[&a, &b],
            &format!("balance = \"round_robin\"\n[upstream.pool.retry]\n{pause_on}"),
        ));
        until_asked(&brace, &a);
        let view = backend_view(&brace, a.addr);
        assert_eq!(
            view["paused_until_unix"].is_number(),
            paused,
            "{pause_on} {status} {value}: {view}"
        );
    }
}

#[test]
fn a_post_with_an_idempotency_key_is_retried_only_where_the_upstream_opts_in() {
    for opted_in in [false, true] {
        // a reads each request and closes without answering (kept in the pool: ejection off);
        // b echoes.
        let a = Upstream::with_mode("a", Mode::Close);
        let b = Upstream::with_mode("b", Mode::Echo);
        let retry = if opted_in {
            "idempotency_key = true\n"
        } else {
            ""
        };
        let edge = Edge::start(&format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{}\", \"{}\"]\nbalance = \"round_robin\"\n[upstream.pool.outlier]\nconsecutive_failures = 0\n[upstream.pool.retry]\n{retry}",
            a.addr, b.addr
        ));
        let post = |proto, key: Option<&str>| {
            let mut args: Vec<String> = ["-X", "POST", "-d", "order=42"].map(String::from).to_vec();
            if let Some(k) = key {
                args.extend(["-H".to_owned(), format!("Idempotency-Key: {k}")]);
            }
            edge.curl(proto, "a.test", "/orders", &args)
        };
        for proto in PROTOS {
            for key in [Some("\"k-1\""), Some("k-2"), Some(""), None] {
                let retried = opted_in && key.is_some_and(|k| !k.is_empty());
                // Round robin: within a few requests one is sent to a first.
                let mut reached_a = false;
                for _ in 0..4 {
                    let before = a.count();
                    let (status, body) = post(proto, key);
                    if a.count() == before {
                        assert_eq!(status, 200, "{proto:?} {key:?}");
                        continue;
                    }
                    // Sent to a, which broke: retried on b, or the client gets 502.
                    if retried {
                        assert_eq!(status, 200, "{proto:?} {key:?}");
                        assert!(body.contains("post /orders"), "{body}");
                    } else {
                        assert_eq!(status, 502, "{proto:?} {key:?} {body}");
                    }
                    reached_a = true;
                    break;
                }
                assert!(reached_a, "{proto:?} {key:?}: round robin never chose a");
            }
        }
        // Every request a got, b got once more only where it was retried; a's failures
        // are its own (it broke the exchange), and b was never blamed.
        assert_eq!(
            edge.b.metric(&format!(
                "brace_upstream_requests_total{{backend=\"{}\",outcome=\"success\",upstream=\"pool\"}}",
                b.addr
            )),
            b.count() as f64
        );
    }
}

#[test]
fn a_body_over_buffer_body_is_not_replayed_and_the_lost_retry_is_counted() {
    let body = "x".repeat(100 * 1024);
    for (buffer, replayed) in [("", false), ("buffer_body = \"256KiB\"\n", true)] {
        let a = Upstream::with_mode("a", Mode::Close);
        let b = Upstream::with_mode("b", Mode::Echo);
        let edge = Edge::start(&format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{}\", \"{}\"]\nbalance = \"round_robin\"\n[upstream.pool.outlier]\nconsecutive_failures = 0\n[upstream.pool.retry]\n{buffer}",
            a.addr, b.addr
        ));
        let mut lost = 0;
        for proto in PROTOS {
            // A PUT (idempotent) with 100 KiB: within a few tries one goes to a first.
            let mut reached_a = false;
            for _ in 0..4 {
                let (before_a, before_b) = (
                    a.count(),
                    b.body_bytes.load(std::sync::atomic::Ordering::SeqCst),
                );
                let args: Vec<String> = vec![
                    "-X".into(),
                    "PUT".into(),
                    "--data-binary".into(),
                    body.clone(),
                ];
                let (status, _) = edge.curl(proto, "a.test", "/doc", &args);
                if a.count() == before_a {
                    assert_eq!(status, 200, "{proto:?}");
                    continue;
                }
                reached_a = true;
                if replayed {
                    assert_eq!(status, 200, "{proto:?}: replayed from the larger buffer");
                    let got = b.body_bytes.load(std::sync::atomic::Ordering::SeqCst) - before_b;
                    assert_eq!(got, body.len(), "{proto:?}: the whole body reached b");
                } else {
                    assert_eq!(status, 502, "{proto:?}: 100 KiB is over the 64 KiB default");
                    lost += 1;
                }
                break;
            }
            assert!(reached_a, "{proto:?}");
        }
        let skipped =
            "brace_upstream_retries_skipped_total{reason=\"body_not_buffered\",upstream=\"pool\"}";
        wait_for("the count", Duration::from_secs(10), || {
            edge.b.metric(skipped) == lost as f64
        });
    }
}

#[test]
fn retry_settings_are_checked() {
    let up = "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9\"]\n[upstream.u.retry]\n";
    for (retry, says) in [
        ("buffer_body = \"9MiB\"", "upstream.u.retry.buffer_body"),
        ("pause_on = [\"500\"]", "upstream.u.retry.pause_on"),
        ("pause_on = [429]", "upstream.u.retry.pause_on"),
        ("max_pause = \"2h\"", "upstream.u.retry.max_pause"),
        (
            "idempotency_key = \"yes\"",
            "upstream.u.retry.idempotency_key",
        ),
    ] {
        let (code, _, err, _) = check(&format!("{up}{retry}\n"));
        assert_eq!(code, 1, "{retry}");
        assert!(err.contains(says), "{retry}: {err}");
    }
    let (code, _, err, _) = check(&format!(
        "{up}buffer_body = \"1MiB\"\npause_on = [\"429\", \"503\"]\nmax_pause = \"0s\"\nidempotency_key = true\n"
    ));
    assert_eq!(code, 0, "{err}");
}
