//! Attacks on the request's meaning, each sent over a real socket: targets that are not
//! origin-form, path spellings that would slip past a route, framing an upstream could read
//! differently, and forwarding headers a client may not set.

mod support;
use support::*;

fn raw(b: &Brace, text: &str) -> Response {
    send(b.addr(), text.as_bytes()).unwrap()
}

/// The upstream's request line, as it arrived.
fn request_line(up: &Upstream) -> String {
    up.raw_head().lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_target_that_is_not_origin_form_is_refused_and_cannot_poison_the_cache() {
    // The origin answers `/` with the home page and anything else with 404.
    let origin = Upstream::with_mode(
        "o",
        script(|head, _| {
            if head.starts_with("get / http/1.1") {
                (
                    200,
                    "Cache-Control: max-age=600\r\n".into(),
                    b"home".to_vec(),
                )
            } else {
                (
                    404,
                    "Cache-Control: max-age=600\r\n".into(),
                    b"gone".to_vec(),
                )
            }
        }),
    );
    let b = Brace::start(&format!(
        "[cache]\n\n{}",
        simple_config("[route.cache]\n", &[&origin], TOUCHY)
    ));
    for target in ["nothing-here", "x/../../evil", "*", "ftp://h/x"] {
        let r = raw(
            &b,
            &format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 400, "GET {target}");
    }
    assert_eq!(origin.count(), 0, "a refused target reached the origin");
    let r = b.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "home"));
    // OPTIONS * is the one asterisk-form request, forwarded as such.
    let r = raw(
        &b,
        "OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        r.status, 404,
        "the script answers anything but GET / with 404"
    );
    assert_eq!(request_line(&origin), "OPTIONS * HTTP/1.1");
    assert_no_backend_blamed(&b);
}

#[test]
fn path_spellings_cannot_escape_a_rate_limited_route() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&format!(
        "[rate_limit.login]\nkey = \"client_ip\"\nrate = 1\nper = \"1h\"\nburst = 1\n\n\
         [[route]]\nname = \"login\"\npath_prefix = \"/login/\"\nupstream = \"pool\"\nrate_limits = [\"login\"]\n\n\
         [[route]]\nname = \"rest\"\nupstream = \"pool\"\n\n\
         [upstream.pool]\nbackends = [\"{}\"]\n{TOUCHY}",
        up.addr
    ));
    assert_eq!(b.get("/login/x").status, 200);
    assert_eq!(b.get("/public/y").status, 200);
    assert_eq!(up.count(), 2);
    // Decoded and merged spellings are the login route, so its limit answers.
    for p in [
        "//login/x",
        "/%6cogin/x",
        "/%6C%6f%67%69%6e/x",
        "///login//x",
    ] {
        let r = b.get(p);
        assert_eq!(r.status, 429, "{p} escaped the login route");
    }
    // What cannot be normalised safely is refused.
    for p in [
        "/public\\..\\login/x",
        "/public/..;/login/x",
        "/public/..%2flogin/x",
        "/public/%2E%2E%2Flogin/x",
        "/public/%2e%2e/login/x",
        "/public/./x",
        "/a%5clogin",
        "/a%00b",
        "/a%0d%0aX-Injected:%201",
    ] {
        let r = b.get(p);
        assert_eq!(r.status, 400, "{p}");
    }
    assert_eq!(up.count(), 2, "an attack spelling reached the backend");
    // Counted by reason (and never as a backend's failure).
    b.wait_metric(
        "brace_requests_refused_total{reason=\"dot segment in path\"}",
        3.0,
    );
    b.wait_metric(
        "brace_requests_refused_total{reason=\"encoded slash or backslash in path\"}",
        3.0,
    );
    // The last refusal is recorded after its answer was sent: wait for it.
    b.wait_metric("brace_requests_total{code=\"400\",route=\"-\"}", 9.0);
    assert_no_backend_blamed(&b);
}

#[test]
fn the_upstream_receives_the_path_that_chose_the_route() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], ""));
    assert_eq!(b.get("//a///b/%7Euser/%41%2d?q=%2F..%2F&x").status, 200);
    assert_eq!(request_line(&up), "GET /a/b/~user/A-?q=%2F..%2F&x HTTP/1.1");
    // Other escapes keep their meaning, written with upper-case hex digits.
    assert_eq!(b.get("/caf%c3%a9/a%20b").status, 200);
    assert_eq!(request_line(&up), "GET /caf%C3%A9/a%20b HTTP/1.1");
    // Absolute-form reaches the upstream as origin-form, with the Host it named.
    let r = raw(
        &b,
        "GET http://shop.example//p?x=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(request_line(&up), "GET /p?x=1 HTTP/1.1");
    assert!(
        up.head().contains("host: shop.example\r\n"),
        "{}",
        up.head()
    );
}

#[test]
fn forward_as_is_routes_by_the_normal_path_and_forwards_the_bytes() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start_with(
        &simple_config("path_prefix = \"/api/\"", &[&up], TOUCHY),
        "path_normalization = \"forward_as_is\"",
    );
    assert_eq!(b.get("//api//%7Ex").status, 200);
    assert_eq!(request_line(&up), "GET //api//%7Ex HTTP/1.1");
    assert_eq!(b.get("/api/%2e%2e/x").status, 400);
    assert_eq!(b.get("/x/../api/").status, 400);
    assert_eq!(up.count(), 1);
    assert_no_backend_blamed(&b);
}

/// With `forward_as_is` only the bytes forwarded differ: a rate limit keyed on the path and
/// `strip_prefix` read the normalised path, so `//login` and `/%6cogin` share `/login`'s
/// bucket, and `//api/x` reaches the backend without its prefix.
#[test]
fn forward_as_is_limits_and_strips_by_the_normal_path() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start_with(
        &format!(
            "[rate_limit.per_path]\nkey = \"path\"\nrate = 1\nper = \"1h\"\nburst = 1\n\
             [[route]]\nname = \"api\"\npath_prefix = \"/api/\"\nstrip_prefix = true\nupstream = \"pool\"\n\
             {}",
            simple_config("rate_limits = [\"per_path\"]", &[&up], TOUCHY)
        ),
        "path_normalization = \"forward_as_is\"",
    );
    assert_eq!(b.get("/login").status, 200);
    for spelling in ["//login", "/%6cogin", "/%6Cogin"] {
        assert_eq!(b.get(spelling).status, 429, "{spelling}");
    }
    assert_eq!(b.get("//api/x").status, 200);
    assert_eq!(request_line(&up), "GET /x HTTP/1.1");
    assert_eq!(up.count(), 2);
    assert_no_backend_blamed(&b);
}

#[test]
fn cr_or_nul_in_the_target_is_refused() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], TOUCHY));
    for target in ["/a\rb", "/a\0b", "/a?q=\0", "/a\x7fb"] {
        let r = send(
            b.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        // Refused with 400, or the connection closed without an answer: never forwarded.
        if let Ok(r) = r {
            assert_eq!(r.status, 400, "{target:?}");
        }
    }
    assert_eq!(up.count(), 0);
    assert_no_backend_blamed(&b);
}

fn post(b: &Brace, lengths: &[&str], body: &str) -> Response {
    let cl: String = lengths
        .iter()
        .map(|v| format!("Content-Length: {v}\r\n"))
        .collect();
    raw(
        b,
        &format!("POST /p HTTP/1.1\r\nHost: h\r\n{cl}Connection: close\r\n\r\n{body}"),
    )
}

#[test]
fn content_length_reaches_the_upstream_as_one_decimal_number() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], TOUCHY));
    for bad in ["010", "0004", "00000000000000000000004", "+4", "4 4", "0x4"] {
        let r = post(&b, &[bad], "abcdefghij");
        assert_eq!(r.status, 400, "Content-Length: {bad}");
    }
    assert_eq!(post(&b, &["4", "5"], "abcde").status, 400);
    assert_eq!(up.count(), 0, "a malformed length reached the upstream");
    for same in [&["4, 4"][..], &["4,4"], &["4", "4"]] {
        let r = post(&b, same, "abcd");
        assert_eq!(r.status, 200, "{same:?}");
        let head = up.head();
        assert_eq!(
            head.matches("content-length").count(),
            1,
            "{same:?}: {head}"
        );
        assert!(head.contains("content-length: 4\r\n"), "{same:?}: {head}");
    }
    assert_no_backend_blamed(&b);
}

/// Each request on a keep-alive connection is read by the framing it came with (pingora patch
/// 26 works it out once, when the header is validated): a comma-listed length that brace
/// recodes, a chunked body, then no body. A body read short or long would leave bytes that
/// parse as a request of their own.
#[test]
fn each_request_on_a_connection_is_read_by_its_own_framing() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], TOUCHY));
    let mut s = std::net::TcpStream::connect(b.addr()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let exchanges = [
        ("POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 4\r\n\r\nabcd", "post /one", 4),
        (
            "POST /two HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
            "post /two",
            3,
        ),
        ("GET /three HTTP/1.1\r\nHost: h\r\n\r\n", "get /three", 0),
    ];
    let mut sent = 0;
    for (request, seen, body) in exchanges {
        std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200, "{request}");
        assert!(resp.text().starts_with(seen), "{request}: {}", resp.text());
        sent += body;
        assert_eq!(
            up.body_bytes.load(std::sync::atomic::Ordering::SeqCst),
            sent
        );
    }
    assert_eq!(up.count(), 3);
    assert_no_backend_blamed(&b);
}

#[test]
fn an_empty_chunk_size_line_is_refused() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], TOUCHY));
    // An empty size line read as 0 would end the body and leave the rest as a new request.
    let r = raw(
        &b,
        "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         \r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    let r = raw(
        &b,
        "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         ;ext\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(!up.head().contains("smuggled"));
    // A well-formed chunked body still passes.
    let r = raw(
        &b,
        "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         4\r\nabcd\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(up.body_bytes.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert_no_backend_blamed(&b);
}

#[test]
fn an_upstream_content_length_is_sent_on_as_one_decimal_number() {
    let up = Upstream::with_mode(
        "u",
        script(|head, _| {
            let v = if head.contains("/list") { "4, 4" } else { "04" };
            // The script's own Content-Length comes first; ours is a second line.
            (200, format!("Content-Length: {v}\r\n"), b"abcd".to_vec())
        }),
    );
    let b = Brace::start(&simple_config("", &[&up], ""));
    let r = b.get("/list");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "abcd");
    assert_eq!(r.header("content-length"), Some("4"));
    let r = b.get("/octal");
    assert_eq!(r.status, 502, "a zero-padded length must not be passed on");
    // That is the backend's fault, and counted as such.
    let error = format!(
        "brace_upstream_requests_total{{backend=\"{}\",outcome=\"error\",upstream=\"pool\"}}",
        up.addr
    );
    b.wait_metric(&error, 1.0);
}

#[test]
fn forwarding_headers_from_an_untrusted_client_are_replaced_or_removed() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start_with(
        &simple_config("", &[&up], TOUCHY),
        "trusted_proxies = [\"10.0.0.0/8\"]",
    );
    let r = raw(
        &b,
        "GET /p HTTP/1.1\r\nHost: shop.example\r\nForwarded: for=203.0.113.9;host=evil\r\n\
         X-Real-IP: 203.0.113.9\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /admin\r\n\
         X-Forwarded-Server: evil\r\nX-FORWARDED-FOR: 203.0.113.9\r\n\
         x-Forwarded-Proto: https\r\nX-Forwarded-HOST: evil\r\nx-forwarded-for: 198.51.100.7\r\n\
         FORWARDED: for=198.51.100.7\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let head = up.head();
    for gone in [
        "forwarded:",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "203.0.113.9",
        "198.51.100.7",
        "evil",
        "https",
    ] {
        assert!(!head.contains(gone), "{gone} reached the upstream: {head}");
    }
    // Whatever the spelling, each field brace sets arrives once, with brace's value.
    for (field, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "shop.example"),
    ] {
        assert_eq!(head.matches(field).count(), 1, "{field}: {head}");
        assert!(head.contains(&format!("{field}: {value}\r\n")), "{head}");
    }
    assert!(head.contains("x-real-ip: 127.0.0.1\r\n"), "{head}");
    let port = b.addr().port();
    assert!(
        head.contains(&format!("x-forwarded-port: {port}\r\n")),
        "{head}"
    );
    assert_no_backend_blamed(&b);
}

#[test]
fn a_trusted_proxys_headers_are_kept_and_x_real_ip_is_the_client() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], TOUCHY));
    let r = raw(
        &b,
        "GET /p HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 192.0.2.1\r\n\
         X-Real-IP: 198.51.100.1\r\nForwarded: for=203.0.113.9\r\nX-FORWARDED-PORT: 443\r\n\
         x-forwarded-FOR: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let head = up.head();
    // The client is the rightmost address not a trusted proxy; the chain grows by the peer.
    assert!(head.contains("x-real-ip: 203.0.113.9\r\n"), "{head}");
    assert!(
        head.contains("x-forwarded-for: 192.0.2.1, 203.0.113.9, 127.0.0.1\r\n"),
        "{head}"
    );
    assert_eq!(head.matches("x-forwarded-for").count(), 1, "{head}");
    assert!(head.contains("forwarded: for=203.0.113.9\r\n"), "{head}");
    assert!(head.contains("x-forwarded-port: 443\r\n"), "{head}");
    assert!(head.contains("x-forwarded-proto: https\r\n"), "{head}");
    assert_no_backend_blamed(&b);
}

#[test]
fn ipv4_peers_on_a_dual_stack_listener_match_ipv4_trust_rules() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let (port, admin) = (free_port(), free_port());
    let b = Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"[::]:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [log]\naccess_log = \"off\"\n{}",
            simple_config("", &[&up], "")
        ),
        port,
        admin,
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = send(
        addr,
        b"GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let head = up.head();
    // 127.0.0.1 (not ::ffff:127.0.0.1) is trusted by the default 127.0.0.1/32.
    assert!(
        head.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("x-real-ip: 203.0.113.9\r\n"), "{head}");
    drop(b);
}

/// An origin whose page reflects `X-Forwarded-Host`, as apps that build absolute links do.
fn reflecting_origin() -> Upstream {
    Upstream::with_mode(
        "o",
        script(|head, _| {
            let xfh = head
                .lines()
                .find_map(|l| l.strip_prefix("x-forwarded-host: "))
                .unwrap_or("-")
                .to_owned();
            (
                200,
                "Cache-Control: max-age=600\r\n".into(),
                format!("link to {xfh}").into_bytes(),
            )
        }),
    )
}

fn get_with(b: &Brace, headers: &str) -> Response {
    raw(
        b,
        &format!("GET /page HTTP/1.1\r\nHost: shop.example\r\n{headers}Connection: close\r\n\r\n"),
    )
}

#[test]
fn x_forwarded_host_cannot_poison_the_cache() {
    let origin = reflecting_origin();
    let b = Brace::start(&format!(
        "[cache]\n\n{}",
        simple_config("[route.cache]\n", &[&origin], "")
    ));
    let r = get_with(&b, "X-Forwarded-Host: evil.example\r\n");
    assert_eq!(r.text(), "link to shop.example");
    let r = get_with(&b, "");
    assert_eq!(r.text(), "link to shop.example");
    assert_eq!(r.header("x-cache-status"), Some("HIT"));
}

#[test]
fn trust_forwarded_host_keys_the_cache_on_it() {
    let origin = reflecting_origin();
    let b = Brace::start_with(
        &format!(
            "[cache]\n\n{}",
            simple_config("[route.cache]\n", &[&origin], "")
        ),
        "trust_forwarded_host = true",
    );
    let r = get_with(&b, "X-Forwarded-Host: cdn.example\r\n");
    assert_eq!(r.text(), "link to cdn.example");
    let r = get_with(&b, "");
    assert_eq!(r.text(), "link to shop.example");
    assert_eq!(r.header("x-cache-status"), Some("MISS"));
    let r = get_with(&b, "X-Forwarded-Host: cdn.example\r\n");
    assert_eq!(r.header("x-cache-status"), Some("HIT"));
    assert_eq!(origin.count(), 2);
}

/// More header lines than brace parses (5,000 short ones, within the byte limit) is a header
/// too large, 431 as for one too many bytes, not a malformed request.
#[test]
fn thousands_of_header_lines_get_431() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], TOUCHY));
    let lines = "X-A: 1\r\n".repeat(5000);
    let r = raw(&b, &format!("GET / HTTP/1.1\r\nHost: h\r\n{lines}\r\n"));
    assert_eq!(r.status, 431);
    assert_eq!(up.count(), 0);
    assert_eq!(
        b.metric("brace_requests_refused_total{reason=\"header_too_large\"}"),
        1.0
    );
    assert_no_backend_blamed(&b);
}
