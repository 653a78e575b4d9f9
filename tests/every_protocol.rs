//! One policy over HTTP/1.1, HTTP/2 over TLS and h2c. The request's host is one fact, whatever the protocol: over HTTP/2 it is `:authority`,
//! over HTTP/1.1 `Host`. Routing by host, host-scoped access rules, a rate limit keyed on
//! the host and the cache key give the same outcome over HTTP/1.1, HTTP/2 over TLS and h2c
//! (curl, which sends HTTP/2's host only as `:authority`). Odd spellings of one host are that
//! host (routing, cache key, purge); what is not `host[:port]` is 400 and reaches no backend.

mod support;
use std::process::Command;
use support::edge::*;
use support::*;

#[test]
fn host_routes_and_host_access_rules_hold_over_every_protocol() {
    let a = Upstream::start("a");
    let rest = Upstream::start("rest");
    let admin = Upstream::start("admin");
    let e = Edge::start(&format!(
        "[[route]]\nname = \"a\"\nhosts = [\"a.test\"]\nupstream = \"a\"\n\
         [[route]]\nname = \"admin\"\nhosts = [\"admin.test\"]\nupstream = \"admin\"\nallow = [\"10.0.0.0/8\"]\n\
         [[route]]\nname = \"rest\"\nupstream = \"rest\"\n\
         [upstream.a]\nbackends = [\"{}\"]\n[upstream.admin]\nbackends = [\"{}\"]\n[upstream.rest]\nbackends = [\"{}\"]\n{}{}{}",
        a.addr, admin.addr, rest.addr, touchy("a"), touchy("admin"), touchy("rest")
    ));
    for p in PROTOS {
        for host in ["a.test", "A.Test"] {
            assert_eq!(
                e.get(p, host, "/"),
                (200, "hello from a\n".into()),
                "{p:?} {host}"
            );
        }
        assert_eq!(
            e.get(p, "b.test", "/"),
            (200, "hello from rest\n".into()),
            "{p:?}"
        );
        let (status, _) = e.get(p, "admin.test", "/secret");
        assert_eq!(status, 403, "{p:?}: the admin route's allow list holds");
    }
    // Spellings of the denied host are that host; what is not host[:port] is refused.
    for host in [
        "ADMIN.test.",
        "admin.test:80",
        &format!("admin.test:{}", e.port),
    ] {
        assert_eq!(e.raw(host, "/secret").status, 403, "{host}");
    }
    for host in [
        "admin.test:80:80",
        "admin.test..",
        "admin.test:80x",
        "user@admin.test",
    ] {
        assert_eq!(e.raw(host, "/secret").status, 400, "{host}");
    }
    assert_eq!(admin.count(), 0, "nothing reached the protected backend");
    assert_eq!(a.count(), 6);
    assert_no_backend_blamed(&e.b);
}

/// Every route names its hosts: an HTTP/2 request is routed by its `:authority`, not
/// refused as a request without a host.
#[test]
fn when_every_route_has_hosts_http2_requests_are_routed_and_the_limit_keys_on_the_host() {
    let a = Upstream::start("a");
    let e = Edge::start(&format!(
        "[rate_limit.per_host]\nkey = \"header:host\"\nrate = 1\nper = \"1h\"\nburst = 2\n\
         [[route]]\nname = \"a\"\nhosts = [\"a.test\", \"b.test\"]\nupstream = \"a\"\nrate_limits = [\"per_host\"]\n\
         [upstream.a]\nbackends = [\"{}\"]\n{}",
        a.addr,
        touchy("a")
    ));
    // One bucket per host, shared by every protocol: two for a.test, then refused anywhere.
    assert_eq!(e.get(Proto::H2Tls, "a.test", "/").0, 200);
    assert_eq!(e.get(Proto::H2c, "a.test", "/").0, 200);
    for p in PROTOS {
        assert_eq!(e.get(p, "a.test", "/").0, 429, "{p:?}");
    }
    assert_eq!(e.get(Proto::Http1, "A.TEST.", "/").0, 429);
    assert_eq!(
        e.get(Proto::H2c, "b.test", "/").0,
        200,
        "another host, another bucket"
    );
    assert_eq!(e.get(Proto::H2Tls, "c.test", "/").0, 404);
    assert_eq!(a.count(), 3);
    assert_no_backend_blamed(&e.b);
}

#[test]
fn the_cache_keys_on_the_host_over_every_protocol_and_a_purge_reaches_every_spelling() {
    let origin = host_echo(
        "Cache-Control: max-age=600
",
    );
    let e = Edge::start(&format!(
        "[cache]\n[[route]]\nname = \"main\"\nupstream = \"pool\"\n[route.cache]\n\
         [upstream.pool]\nbackends = [\"{}\"]\n{TOUCHY}",
        origin.addr
    ));
    for (i, p) in PROTOS.into_iter().enumerate() {
        let path = format!("/page{i}");
        let (_, body_a) = e.get(p, "a.test", &path);
        let (_, body_b) = e.get(p, "b.test", &path);
        assert!(body_a.starts_with("a.test"), "{p:?}: {body_a}");
        assert!(body_b.starts_with("b.test"), "{p:?}: {body_b}");
        // Each is cached under its own host: asked again, neither reaches the origin.
        let before = origin.count();
        assert!(e.get(p, "a.test", &path).1.starts_with("a.test"));
        assert!(e.get(p, "b.test", &path).1.starts_with("b.test"));
        assert_eq!(origin.count(), before, "{p:?}");
    }
    // Spellings of one host are one cache entry, and one purge removes it for all of them.
    let spellings = [
        "shop.test".to_string(),
        "Shop.Test.".into(),
        "shop.test:80".into(),
        format!("shop.test:{}", e.port),
        "shop.test:".into(),
        "shop.test:0080".into(),
    ];
    assert_eq!(cache_status(&e.raw(&spellings[0], "/x")), "MISS");
    for h in &spellings {
        assert_eq!(cache_status(&e.raw(h, "/x")), "HIT", "{h}");
    }
    let body = r#"{"url": "http://shop.test/x"}"#;
    let purge = send(
        e.b.admin(),
        format!(
            "POST /api/cache/purge HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(purge.status, 200, "{}", purge.text());
    assert_eq!(cache_status(&e.raw(&spellings[3], "/x")), "MISS");
    for h in &spellings {
        assert_eq!(cache_status(&e.raw(h, "/x")), "HIT", "{h}");
    }
    assert_no_backend_blamed(&e.b);
}

/// An HTTP/2 request on `addr` (h2c) with `:authority` from `uri` and these extra fields.
fn h2c(addr: std::net::SocketAddr, uri: &str, fields: &[(&str, &str)]) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::get(uri);
        for (k, v) in fields {
            req = req.header(*k, *v);
        }
        let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
        resp.await.unwrap().status().as_u16()
    })
}

/// Over HTTP/2 a `Host` field may only repeat `:authority`: one naming another host would
/// let a backend that reads `Host` see a host brace did not route, so it is 400. The same for
/// two `Authorization` fields on every protocol: a check of one and a backend reading the
/// other would disagree on who is asking.
#[test]
fn a_host_field_that_differs_from_the_authority_and_two_credentials_are_refused() {
    let a = Upstream::start("a");
    let admin = Upstream::start("admin");
    let e = Edge::start(&format!(
        "[[route]]\nname = \"admin\"\nhosts = [\"admin.test\"]\nupstream = \"admin\"\ndeny = [\"0.0.0.0/0\"]\n\
         [[route]]\nname = \"a\"\nupstream = \"a\"\n\
         [upstream.a]\nbackends = [\"{}\"]\n[upstream.admin]\nbackends = [\"{}\"]\n{}{}",
        a.addr,
        admin.addr,
        touchy("a"),
        touchy("admin")
    ));
    let addr = e.b.addr();
    assert_eq!(h2c(addr, "http://a.test/", &[]), 200);
    assert_eq!(h2c(addr, "http://a.test/", &[("host", "a.test")]), 200);
    assert_eq!(h2c(addr, "http://a.test/", &[("host", "admin.test")]), 400);
    assert_eq!(h2c(addr, "http://admin.test/", &[("host", "a.test")]), 400);
    assert_eq!(h2c(addr, "http://admin.test/", &[]), 403);
    let two = ["Authorization: Basic YTpi", "Authorization: Bearer other"];
    for p in PROTOS {
        let (status, _) = e.get_with(p, "a.test", "/", &two);
        assert_eq!(status, 400, "{p:?}");
    }
    let r = send(
        addr,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nauthorization: Basic YTpi\r\nAUTHORIZATION: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(a.count(), 2, "only the two good requests reached a backend");
    assert_eq!(admin.count(), 0);
    assert_no_backend_blamed(&e.b);
}

/// A request body over `client_max_body_size` is 413 on every protocol, declared or
/// streamed, and over HTTP/2 the client reads the answer rather than a stream reset (brace
/// reads and discards a bounded amount of what is still coming). No backend is blamed.
#[test]
fn a_body_over_the_limit_is_413_on_every_protocol() {
    let up = Upstream::start("u");
    let e = Edge::start_with(
        &format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{}\"]\n{TOUCHY}",
            up.addr
        ),
        "client_max_body_size = \"64KiB\"",
    );
    let big = e.pki.path("big.bin");
    std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
    let declared = ["--data-binary".to_string(), format!("@{}", big.display())];
    // `-T` with `-X POST` streams the file as it reads it (chunked over HTTP/1.1).
    let streamed = [
        "-T".to_string(),
        big.display().to_string(),
        "-X".into(),
        "POST".into(),
        "-H".into(),
        "Content-Length:".into(),
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
    ];
    for p in PROTOS {
        for args in [&declared[..], &streamed[..]] {
            let (status, body) = e.curl(p, "a.test", "/upload", args);
            assert_eq!(status, 413, "{p:?} {args:?}: {body}");
            assert!(body.contains("too large"), "{p:?}: {body}");
        }
    }
    assert_no_backend_blamed(&e.b);
}

/// A request shed because every backend is at its adaptive limit gets 503 with Retry-After
/// over every protocol, and its connection stays open for the next request (nothing on it
/// went wrong); the shed requests never reach the backend.
#[test]
fn a_shed_request_keeps_its_connection_over_every_protocol() {
    let held = Upstream::with_mode("held", Mode::Hang);
    let e = Edge::start(&format!(
        "[[route]]\nname = \"r\"\nupstream = \"u\"\n\
         [upstream.u]\nbackends = [\"{}\"]\nread_timeout = \"60s\"\n\
         [upstream.u.adaptive]\ninitial_limit = 1\nmin_limit = 1\nmax_limit = 1\nqueue_timeout = \"0s\"\nmax_queue = 1\n",
        held.addr
    ));
    // One request holds the backend's only place.
    let mut hold = std::net::TcpStream::connect(e.b.addr()).unwrap();
    std::io::Write::write_all(&mut hold, b"GET /held HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
    e.b.wait_metric(
        &format!(
            "brace_upstream_in_flight{{backend=\"{}\",upstream=\"u\"}}",
            held.addr
        ),
        1.0,
    );
    // curl over HTTP/1.1 and HTTP/2 over TLS (curl 7.88 cannot send a second request on one
    // h2c connection, to any server: its own bug), the h2 crate over h2c.
    for proto in [Proto::Http1, Proto::H2Tls] {
        let (scheme, port, flag) = match proto {
            Proto::Http1 => ("http", e.port, "--http1.1"),
            _ => ("https", e.tls_port, "--http2"),
        };
        let url = format!("{scheme}://a.test:{port}/x");
        // Two requests in one curl run: the second reuses the first's connection if kept.
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", flag, "--cacert"])
            .arg(e.pki.path("ca.pem"))
            .arg("--resolve")
            .arg(format!("a.test:{port}:127.0.0.1"))
            .args(["-D", "-", "-w", "|%{http_code} %{num_connects}|\n"])
            .args([&url, &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(
            text.contains("|503 1|") && text.contains("|503 0|"),
            "{proto:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            text.matches("retry-after: 1").count(),
            2,
            "{proto:?}: {text}"
        );
        assert!(
            text.contains("at capacity; request shed"),
            "{proto:?}: {text}"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(e.b.addr()).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        for _ in 0..2 {
            let req = http::Request::get("http://a.test/x").body(()).unwrap();
            let (resp, _) = client.send_request(req, true).unwrap();
            let resp = resp.await.unwrap();
            assert_eq!(resp.status(), 503);
            assert_eq!(resp.headers()["retry-after"], "1");
        }
    });
    assert_eq!(held.count(), 1, "only the held request reached the backend");
    let m = e.b.metrics();
    assert_eq!(
        metric_value(
            &m,
            "brace_requests_shed_total{priority=\"normal\",reason=\"queue_timeout\",upstream=\"u\"}"
        ),
        6.0
    );
    drop(hold);
}
