//! Headers at the boundary: X-Forwarded-*, X-Request-Id, hop-by-hop, traceparent.

mod support;
use support::*;

fn echo_with(server_extra: &str) -> (Upstream, Brace) {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start_with(&simple_config("", &[&up], ""), server_extra);
    (up, b)
}

fn req(b: &Brace, extra_headers: &str) -> Response {
    send(
        b.addr(),
        format!(
            "GET /p HTTP/1.1\r\nHost: shop.example\r\n{extra_headers}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

#[test]
fn xff_from_a_trusted_peer_is_appended_to() {
    // Default trusted_proxies include 127.0.0.1, the test client's address.
    let (up, b) = echo_with("");
    let r = req(
        &b,
        "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n",
    );
    assert_eq!(r.status, 200);
    let head = up.head();
    assert!(
        head.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: https\r\n"), "{head}");
    assert!(
        head.contains("x-forwarded-host: shop.example\r\n"),
        "{head}"
    );
}

#[test]
fn xff_from_an_untrusted_peer_is_replaced() {
    let (up, b) = echo_with("trusted_proxies = [\"10.0.0.0/8\"]");
    let r = req(
        &b,
        "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n",
    );
    assert_eq!(r.status, 200);
    let head = up.head();
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    assert!(
        !head.contains("203.0.113.7"),
        "spoofed address reached the upstream: {head}"
    );
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    assert!(
        head.contains("x-forwarded-host: shop.example\r\n"),
        "{head}"
    );
    assert!(!head.contains("evil.example"), "{head}");
}

#[test]
fn request_id_is_kept_when_sane_and_generated_otherwise() {
    let (up, b) = echo_with("");
    let r = req(&b, "X-Request-Id: abc-123\r\n");
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert!(up.head().contains("x-request-id: abc-123\r\n"));

    let r = req(&b, "X-Request-Id: has spaces and <script>\r\n");
    let id = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(up.head().contains(&format!("x-request-id: {id}\r\n")));

    let r2 = req(&b, "");
    assert_ne!(r2.header("x-request-id").unwrap(), id, "ids are unique");
}

#[test]
fn hop_by_hop_headers_do_not_reach_the_upstream_and_traceparent_does() {
    let (up, b) = echo_with("");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = send(
        b.addr(),
        format!(
            "GET /p HTTP/1.1\r\nHost: shop.example\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\
             Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\n\
             traceparent: {tp}\r\nX-Kept: yes\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let head = up.head();
    for gone in [
        "x-secret",
        "keep-alive:",
        "proxy-connection",
        "te:",
        "upgrade",
    ] {
        assert!(!head.contains(gone), "{gone} reached the upstream: {head}");
    }
    assert!(head.contains(&format!("traceparent: {tp}\r\n")), "{head}");
    assert!(head.contains("x-kept: yes\r\n"));
}

#[test]
fn hop_by_hop_headers_from_the_upstream_do_not_reach_the_client() {
    use std::io::{Read, Write};
    // An upstream that names a header in Connection and sends Keep-Alive.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten().take(1) {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=3\r\nX-Public: yes\r\n\r\nok",
            );
        }
    });
    let b = Brace::start(&format!(
        "[[route]]\nname = \"m\"\nupstream = \"p\"\n[upstream.p]\nbackends = [\"{addr}\"]\n"
    ));
    let r = b.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("x-public"), Some("yes"));
    assert_eq!(r.header("x-internal"), None);
    assert_eq!(r.header("keep-alive"), None);
}

#[test]
fn an_h2c_upgrade_is_not_forwarded_so_no_tunnel_can_bypass_routing() {
    // "h2c smuggling": a backend that accepts the HTTP/1.1 upgrade to h2c would turn the
    // connection into an HTTP/2 tunnel past brace's routing, access rules and limits.
    // RFC 9113 §3.1 retired the upgrade; brace forwards such a request as a plain one.
    let (up, b) = echo_with("");
    for (upgrade, connection) in [
        ("h2c", "Upgrade, HTTP2-Settings"),
        ("H2C", "upgrade,http2-settings"),
        ("websocket, h2c", "Upgrade"),
    ] {
        let r = send(
            b.addr(),
            format!(
                "GET /p HTTP/1.1\r\nHost: shop.example\r\nUpgrade: {upgrade}\r\n\
                 HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: {connection}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "Upgrade: {upgrade}");
        let head = up.head();
        for gone in ["upgrade", "http2-settings", "h2c"] {
            assert!(!head.contains(gone), "{gone} reached the upstream: {head}");
        }
    }
    assert_no_backend_blamed(&b);
}

/// An upstream that answers with a mixed-case header name; returns its address.
fn mixed_case_upstream() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten().take(4) {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Mixed-Case: 1\r\nConnection: close\r\n\r\nok",
            );
        }
    });
    addr
}

/// The response head as it came over the wire.
fn raw_head(addr: std::net::SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\r\n\r\n").next().unwrap().to_owned()
}

#[test]
fn header_names_go_lowercase_unless_preserve_header_case_is_set() {
    let request = "GET /p HTTP/1.1\r\nHost: shop.example\r\nX-Client-Spelling: 1\r\nConnection: close\r\n\r\n";
    for (preserve, client_side, upstream_side) in [
        (false, "x-mixed-case: 1", "x-client-spelling: 1"),
        (true, "X-Mixed-Case: 1", "X-Client-Spelling: 1"),
    ] {
        // Requests: what the upstream receives.
        let up = Upstream::with_mode("u", Mode::Echo);
        let b = Brace::start_with(
            &simple_config("", &[&up], ""),
            &format!("preserve_header_case = {preserve}"),
        );
        assert_eq!(send(b.addr(), request.as_bytes()).unwrap().status, 200);
        assert!(
            up.raw_head().contains(&format!("{upstream_side}\r\n")),
            "preserve_header_case = {preserve}: {}",
            up.raw_head()
        );
        // Responses: what the client receives.
        let origin = mixed_case_upstream();
        let b = Brace::start_with(
            &format!(
                "[[route]]\nname = \"m\"\nupstream = \"p\"\n[upstream.p]\nbackends = [\"{origin}\"]\n"
            ),
            &format!("preserve_header_case = {preserve}"),
        );
        let head = raw_head(b.addr(), request);
        assert!(
            head.contains(&format!("\r\n{client_side}")),
            "preserve_header_case = {preserve}: {head}"
        );
    }
}
