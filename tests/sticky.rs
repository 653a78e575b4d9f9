//! Sticky sessions (issue 29, part 3): `[upstream.NAME] sticky` pins a client to the backend
//! that first answered it by a cookie brace sets, over HTTP/1.1, HTTP/2 over TLS and h2c; a
//! drained, dead or removed backend releases its clients (the cookie is rewritten); a forged
//! cookie chooses nothing the balancer would not have given.

mod support;
use support::edge::{Edge, Proto, PROTOS};
use support::*;

const STICKY: &str = "balance = \"round_robin\"\nsticky = { cookie = \"srv\", ttl = \"10m\" }\n";

fn config(backends: &[&Upstream]) -> String {
    simple_config("", backends, STICKY)
}

/// One request over `proto` with these cookies: (status, body, the Set-Cookie field if any).
fn visit(edge: &Edge, proto: Proto, cookie: Option<&str>) -> (u16, String, Option<String>) {
    let mut args = vec!["-i".to_owned()];
    if let Some(c) = cookie {
        args.extend(["-H".to_owned(), format!("Cookie: theme=dark; {c}")]);
    }
    let (status, text) = edge.curl(proto, "a.test", "/", &args);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{proto:?}: {text}"));
    let set = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(|l| l.split_once(':').unwrap().1.trim().to_owned());
    (status, body.to_owned(), set)
}

/// `srv=VALUE` from a Set-Cookie field.
fn pair(set: &str) -> String {
    set.split(';').next().unwrap().to_owned()
}

#[test]
fn a_client_stays_on_its_backend_over_every_protocol_until_that_backend_is_drained() {
    let (a, b, c) = (
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    );
    let edge = Edge::start(&config(&[&a, &b, &c]));
    for proto in PROTOS {
        let (status, first, set) = visit(&edge, proto, None);
        assert_eq!(status, 200);
        let set = set.unwrap_or_else(|| panic!("{proto:?}: no Set-Cookie"));
        // Opaque, scoped to the site, not readable by scripts; Secure only over TLS.
        assert!(!set.contains("127.0.0.1"), "{set}");
        assert!(
            set.contains("; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"),
            "{set}"
        );
        assert_eq!(
            set.ends_with("; Secure"),
            matches!(proto, Proto::H2Tls),
            "{proto:?}: {set}"
        );
        let cookie = pair(&set);
        for _ in 0..6 {
            let (status, body, again) = visit(&edge, proto, Some(&cookie));
            assert_eq!(
                (status, body.as_str(), again),
                (200, first.as_str(), None),
                "{proto:?}"
            );
        }
        // Its backend drained: the client goes elsewhere, and is pinned there.
        let name = first.trim().rsplit(' ').next().unwrap().to_owned();
        let up = [&a, &b, &c].into_iter().find(|u| u.name == name).unwrap();
        let drain = format!("/api/upstreams/pool/backends/{}/drain", up.addr);
        let r = admin_post(&edge.b, &drain, "", "");
        assert_eq!(r.status, 200, "{}", r.text());
        let (status, moved, set) = visit(&edge, proto, Some(&cookie));
        assert_eq!(status, 200);
        assert_ne!(moved, first, "{proto:?}");
        let cookie = pair(&set.expect("the cookie is rewritten"));
        for _ in 0..4 {
            assert_eq!(visit(&edge, proto, Some(&cookie)).1, moved, "{proto:?}");
        }
        let r = admin_post(&edge.b, &drain.replace("/drain", "/undrain"), "", "");
        assert_eq!(r.status, 200);
    }
    assert_no_backend_blamed(&edge.b);
}

#[test]
fn a_dead_or_removed_backend_releases_its_clients_and_forged_cookies_choose_nothing() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let brace = Brace::start(&config(&[&a, &b]));
    let visit = |cookie: &str| {
        let r = send(
            brace.addr(),
            format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let set = r.header("set-cookie").map(pair);
        (r.status, r.text(), set)
    };
    let (_, first, set) = visit("none=1");
    let pinned = set.unwrap();
    let (pinned_up, other_up) = if first.contains("from a") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(visit(&pinned).1, first);

    // Forged values: not an id of this pool, empty, huge, or with odd bytes; each is
    // balanced as usual and rewritten, and never an error.
    let huge = format!("srv={}", "f".repeat(3000));
    for forged in [
        "srv=deadbeefdeadbeef",
        "srv=",
        &huge,
        "srv=%00../../etc",
        "SRV=x",
    ] {
        let (status, _, set) = visit(forged);
        assert_eq!(status, 200, "{forged}");
        let set = set.unwrap_or_else(|| panic!("{forged}: not rewritten"));
        assert!(set.starts_with("srv="), "{set}");
    }
    // The other backend's id (what a client learns by being sent there) picks it: a choice
    // the balancer could have made, and nothing more.
    let other_said = format!("hello from {}\n", other_up.name);
    let other = (0..4)
        .map(|_| visit("none=1"))
        .find(|(_, body, _)| *body == other_said)
        .and_then(|(_, _, set)| set)
        .expect("round robin reaches the other backend");
    for _ in 0..4 {
        assert_eq!(visit(&other).1, other_said);
    }

    // Its backend dies: the request is retried on the other, which pins the client.
    pinned_up.stop();
    let (status, body, set) = visit(&pinned);
    assert_eq!((status, body), (200, other_said.clone()));
    let moved = set.expect("rewritten to the backend that answered");
    assert_ne!(moved, pinned);

    // Removed by a reload: the cookie names nothing, and is rewritten.
    pinned_up.restart();
    brace.rewrite(&config(&[other_up]));
    assert_eq!(brace.reload().status, 200);
    let (status, _, set) = visit(&pinned);
    assert_eq!((status, set), (200, Some(moved.clone())));
    // A reload that keeps the backend keeps its id: a pinned client stays pinned.
    brace.rewrite(&simple_config("timeout = \"20s\"", &[other_up], STICKY));
    assert_eq!(brace.reload().status, 200);
    assert_eq!(visit(&moved).2, None);
}

#[test]
fn sticky_settings_are_checked() {
    let up =
        "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9\"]\n";
    for (extra, says) in [
        ("sticky = { cookie = \"a b\" }", "upstream.u.sticky.cookie"),
        ("sticky = { cookie = \"\" }", "upstream.u.sticky.cookie"),
        ("sticky = { ttl = \"0s\" }", "upstream.u.sticky.ttl"),
        ("sticky = { ttl = 5 }", "upstream.u.sticky.ttl"),
        ("sticky = { name = \"x\" }", "unknown field"),
        (
            "balance = \"consistent_hash\"\nhash_key = \"client_ip\"\nsticky = {}",
            "both pin a client",
        ),
    ] {
        let (code, _, err, _) = check(&format!("{up}{extra}\n"));
        assert_eq!(code, 1, "{extra}");
        assert!(err.contains(says), "{extra}: {err}");
    }
    let (code, _, err, _) = check(&format!("{up}sticky = {{}}\n"));
    assert_eq!(code, 0, "{err}");
}
