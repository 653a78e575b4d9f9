//! Client connections are bounded, timed out and honest: each `[server]` client timeout and
//! limit against a real client socket that misbehaves, and error responses that say
//! `Connection: close` when brace closes. Every misbehaving client leaves the backend
//! unblamed.

mod support;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use support::*;

fn connect(b: &Brace) -> TcpStream {
    let s = TcpStream::connect(b.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Reads until the peer closes; the bytes read, or an error if it did not close in time.
fn read_until_closed(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

fn refused(b: &Brace, reason: &str) -> f64 {
    b.metric(&format!(
        "brace_requests_refused_total{{reason=\"{reason}\"}}"
    ))
}

#[test]
fn error_responses_say_connection_close_and_close() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let b = Brace::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{dead}\"]\n"
    ));
    let mut s = connect(&b);
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 502);
    assert_eq!(resp.header("connection"), Some("close"));
    // And it does close: the client learns it before sending its next request.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_client_keepalive_timeout() {
    let up = Upstream::start("u");
    let b = Brace::start_with(
        &simple_config("", &[&up], ""),
        "client_keepalive_timeout = \"1s\"",
    );
    let mut s = connect(&b);
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    // The next read returns end of file once brace closes the idle connection (the read
    // timeout, 15 s, would fail it instead).
    let t = Instant::now();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("brace closed the idle connection");
    assert!(rest.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_request_header_dribbled_in_gets_408_after_client_header_timeout() {
    let up = Upstream::start("u");
    let b = Brace::start_with(
        &simple_config("", &[&up], ""),
        "client_header_timeout = \"1s\"",
    );
    let mut s = connect(&b);
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap();
    // A slowloris client: one header line every 200 ms, each read well inside any per-read
    // timeout. At most 50 lines (10 s): the header deadline must cut it long before.
    let mut w = s.try_clone().unwrap();
    let drip = std::thread::spawn(move || {
        for i in 0..50 {
            if w.write_all(format!("X-Drip-{i}: x\r\n").as_bytes())
                .is_err()
            {
                return i;
            }
            std::thread::sleep(Duration::from_millis(200)); // allowed: the attacker's pace
        }
        50
    });
    let resp = read_response(&mut BufReader::new(&mut s)).unwrap();
    assert_eq!(resp.status, 408);
    assert_eq!(resp.header("connection"), Some("close"));
    let lines = drip.join().unwrap();
    assert!(
        lines < 50,
        "the connection stayed open for all {lines} lines"
    );
    assert_eq!(up.count(), 0);
    b.wait_metric(
        "brace_requests_refused_total{reason=\"header_timeout\"}",
        1.0,
    );
    b.wait_metric("brace_requests_total{code=\"408\",route=\"-\"}", 1.0);
    assert_no_backend_blamed(&b);
}

#[test]
fn an_oversized_header_gets_431_and_an_oversized_target_414() {
    let up = Upstream::start("u");
    let b = Brace::start_with(
        &simple_config("", &[&up], ""),
        "max_request_header_size = \"4KiB\"",
    );
    let cookie = "c".repeat(5000);
    let r = send(
        b.addr(),
        format!("GET / HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 431);
    let path = "p".repeat(5000);
    let r = send(
        b.addr(),
        format!("GET /{path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 414);
    // Just under the limit passes.
    let cookie = "c".repeat(3000);
    let r = send(
        b.addr(),
        format!("GET / HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 1);
    assert_eq!(refused(&b, "header_too_large"), 1.0);
    assert_eq!(refused(&b, "uri_too_long"), 1.0);
    assert_eq!(
        b.metric("brace_requests_total{code=\"431\",route=\"-\"}"),
        1.0
    );
    assert_no_backend_blamed(&b);
}

#[test]
fn the_default_header_limit_is_64_kib() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    let big = "c".repeat(70 * 1024);
    let r = send(
        b.addr(),
        format!("GET / HTTP/1.1\r\nHost: h\r\nCookie: {big}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(up.count(), 0);
}

#[test]
fn a_client_that_stops_sending_its_body_gets_408_and_the_backend_is_not_blamed() {
    for (server, upstream) in [
        // client_body_timeout fires first.
        ("client_body_timeout = \"1s\"", ""),
        // The upstream read_timeout fires first: the stall is still the client's.
        ("", "read_timeout = \"1s\"\n"),
    ] {
        let up = Upstream::with_mode("u", Mode::Echo);
        let b = Brace::start_with(
            &format!("{}{TOUCHY}", simple_config("", &[&up], upstream)),
            server,
        );
        let mut s = connect(&b);
        s.write_all(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
            .unwrap();
        let resp = read_response(&mut BufReader::new(&mut s)).unwrap();
        assert_eq!(resp.status, 408, "{server}{upstream}");
        assert_eq!(resp.header("connection"), Some("close"));
        b.wait_metric("brace_requests_total{code=\"408\",route=\"main\"}", 1.0);
        assert_no_backend_blamed(&b);
        assert_eq!(b.get("/after").status, 200);
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_after_client_send_timeout() {
    // 64 MiB: far more than the socket buffers hold, so brace's writes block.
    let up = Upstream::with_mode("u", Mode::Large(64 * 1024 * 1024));
    let b = Brace::start_with(
        &format!("{}{TOUCHY}", simple_config("", &[&up], "")),
        "client_send_timeout = \"1s\"",
    );
    let mut s = connect(&b);
    s.write_all(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    // The client reads nothing; brace gives up on it and frees the upstream connection.
    b.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"client_abort\",upstream=\"pool\"}}",
            up.addr
        ),
        1.0,
    );
    assert_no_backend_blamed(&b);
    // What it does read ends short of the body.
    let got = read_until_closed(&mut s).map(|v| v.len()).unwrap_or(0);
    assert!(got < 64 * 1024 * 1024, "{got}");
}

/// Reads one request head byte by byte (so nothing after it is consumed); `None` when the
/// peer closes first.
fn read_request_head(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// A backend that accepts a WebSocket upgrade, then echoes whatever comes through the tunnel.
fn websocket_backend() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().take(8) {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                if read_request_head(&mut c).is_none() {
                    return;
                }
                let _ = c.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                );
                let mut buf = [0u8; 1024];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends `request` on a new connection and reads the response head, which must start with
/// `status_line`; the reader is left at the first byte of the body.
fn send_and_read_head(b: &Brace, request: &[u8], status_line: &str) -> BufReader<TcpStream> {
    let mut s = connect(b);
    s.write_all(request).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert!(line.starts_with(status_line), "{line}");
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        if line == "\r\n" {
            return r;
        }
    }
}

fn open_tunnel(b: &Brace) -> BufReader<TcpStream> {
    send_and_read_head(
        b,
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.1 101",
    )
}

#[test]
fn an_idle_websocket_outlives_read_timeout_and_its_end_blames_nobody() {
    let ws = websocket_backend();
    let cfg = |extra: &str| {
        format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{ws}\"]\nread_timeout = \"300ms\"\n{extra}{TOUCHY}"
        )
    };
    let b = Brace::start_with(&cfg(""), "client_body_timeout = \"1s\"");
    let mut r = open_tunnel(&b);
    // Idle for well over read_timeout and client_body_timeout: the tunnel must stay open
    // (upgrade_idle_timeout, 1 h by default, governs it now).
    r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let idle = r.read(&mut buf);
    assert!(idle.is_err(), "the tunnel closed while idle: {idle:?}");
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    r.get_mut().write_all(b"ping").unwrap();
    r.read_exact(&mut buf[..4]).unwrap();
    assert_eq!(&buf[..4], b"ping");
    drop(r);
    b.wait_metric("brace_requests_total{code=\"101\",route=\"main\"}", 1.0);
    assert_no_backend_blamed(&b);

    // With a short upgrade_idle_timeout the idle tunnel is closed, still blaming nobody.
    let b = Brace::start(&cfg("upgrade_idle_timeout = \"1s\"\n"));
    let mut r = open_tunnel(&b);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("brace closed the idle tunnel");
    b.wait_metric("brace_requests_total{code=\"101\",route=\"main\"}", 1.0);
    assert_no_backend_blamed(&b);
}

/// A backend that answers every request on a connection with a chunked `hello`, and records
/// each request head it read.
fn chunked_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().take(16) {
            let Ok(mut c) = conn else { return };
            let seen = seen.clone();
            std::thread::spawn(move || loop {
                let Some(head) = read_request_head(&mut c) else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_ascii_lowercase());
                let out =
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
                if c.write_all(out).is_err() {
                    return;
                }
            });
        }
    });
    (addr, heads)
}

#[test]
fn an_http_1_0_client_gets_no_chunked_coding_and_the_backend_gets_a_host() {
    let (up, heads) = chunked_backend();
    let b = Brace::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{up}\"]\n"
    ));
    let mut s = connect(&b);
    s.write_all(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let raw = String::from_utf8(read_until_closed(&mut s).unwrap()).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(body, "hello", "the body is delimited by the close");
    let upstream_head = heads.lock().unwrap()[0].clone();
    assert!(
        upstream_head.contains(&format!("host: {up}\r\n")),
        "{upstream_head}"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config("", &[&up], ""));
    let mut s = connect(&b);
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\nGET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    for path in ["/one", "/two", "/three"] {
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200);
        assert!(
            resp.text().starts_with(&format!("get {path} http/1.1")),
            "{path}: {}",
            resp.text()
        );
    }
    assert_eq!(up.count(), 3);
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start_with(
        &simple_config("", &[&up], ""),
        "client_max_body_size = \"1KiB\"",
    );
    let mut s = connect(&b);
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    // The client waits for the interim response before sending the body.
    let mut r = BufReader::new(s.try_clone().unwrap());
    let interim = read_response(&mut r).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"hello").unwrap();
    let resp = read_response(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    // Expect is brace's to answer; the backend never sees it.
    assert!(!up.head().contains("expect:"), "{}", up.head());

    // Too large: refused at once, no 100 and no body read.
    let r = send(
        b.addr(),
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(up.count(), 1);
}

#[test]
fn max_connections_refuses_beyond_the_cap_and_idle_connections_count() {
    let up = Upstream::start("u");
    let b = Brace::start_with(&simple_config("", &[&up], ""), "max_connections = 5");
    // Five clients connect and say nothing: each holds a place.
    let idle: Vec<TcpStream> = (0..5).map(|_| connect(&b)).collect();
    b.wait_metric("brace_connections_active", 5.0);
    // The sixth is closed at once, without a byte read or written.
    let mut sixth = connect(&b);
    let _ = sixth.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let got = read_until_closed(&mut sixth).unwrap_or_default();
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    b.wait_metric("brace_connections_refused_total", 1.0);
    // The admin listener is not counted and keeps answering.
    assert_eq!(get(b.admin(), "/healthz").status, 200);
    // One leaves; a new client gets its place.
    drop(idle);
    b.wait_metric("brace_connections_active", 0.0);
    assert_eq!(b.get("/").status, 200);
    assert_eq!(up.count(), 1);
    assert_no_backend_blamed(&b);
}

/// A request without a body is exchanged in one loop (no second task): while it waits on a
/// backend that never answers, brace still watches the client, and a client that leaves is
/// noticed at once (not at `read_timeout`): counted as `client_abort`, the backend's
/// connection closed rather than pooled mid-response, and nobody blamed.
#[test]
fn a_client_that_leaves_while_its_get_waits_is_noticed_at_once_and_blames_nobody() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut c, _)) = l.accept() else { return };
        if read_request_head(&mut c).is_none() {
            return;
        }
        // Never answer; report when brace closes this connection.
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut byte = [0u8; 1];
        let _ = closed_tx.send(matches!(c.read(&mut byte), Ok(0)));
    });
    let b = Brace::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{addr}\"]\nread_timeout = \"60s\"\n{TOUCHY}"
    ));
    let mut s = connect(&b);
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    // Wait until the request is at the backend, then leave.
    b.wait_metric(
        &format!("brace_upstream_in_flight{{backend=\"{addr}\",upstream=\"pool\"}}"),
        1.0,
    );
    drop(s);
    assert_eq!(
        closed_rx.recv_timeout(Duration::from_secs(15)),
        Ok(true),
        "brace did not close the backend connection of an abandoned request"
    );
    b.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"{addr}\",outcome=\"client_abort\",upstream=\"pool\"}}"
        ),
        1.0,
    );
    assert_no_backend_blamed(&b);
}

/// A bodyless request's response is forwarded piece by piece as the backend sends it (each
/// piece reaches the client before the backend writes the next), and the backend connection
/// then carries the next request.
#[test]
fn a_response_sent_in_pieces_reaches_the_client_piece_by_piece_and_the_connection_is_reused() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (next_tx, next_rx) = std::sync::mpsc::channel::<()>();
    let (conns_tx, conns_rx) = std::sync::mpsc::channel::<usize>();
    std::thread::spawn(move || {
        let Ok((mut c, _)) = l.accept() else { return };
        // The first request: its response in three writes, each after the client saw the last.
        if read_request_head(&mut c).is_none() {
            return;
        }
        for piece in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"5\r\nhello\r\n",
            b"6\r\n world\r\n0\r\n\r\n",
        ] {
            c.write_all(piece).unwrap();
            if next_rx.recv_timeout(Duration::from_secs(15)).is_err() {
                return;
            }
        }
        // The second request comes on the same connection.
        let mut served = 1;
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        if read_request_head(&mut c).is_some() {
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            served += 1;
        }
        let _ = conns_tx.send(served);
    });
    // One worker thread: idle upstream connections are kept per thread.
    let b = Brace::start_with(
        &format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{addr}\"]\n{TOUCHY}"
        ),
        "threads = 1",
    );
    let mut r = send_and_read_head(
        &b,
        b"GET /pieces HTTP/1.1\r\nHost: h\r\n\r\n",
        "HTTP/1.1 200",
    );
    let mut line = String::new();
    next_tx.send(()).unwrap();
    // Each chunk arrives while the backend still holds the next one back.
    for want in ["5\r\n", "hello\r\n", "6\r\n", " world\r\n"] {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        assert_eq!(line, want);
        if want == "hello\r\n" {
            next_tx.send(()).unwrap();
        }
    }
    line.clear();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert_eq!(line, "0\r\n");
    next_tx.send(()).unwrap();
    // Logged once the backend connection is back in the pool.
    b.wait_metric("brace_requests_total{code=\"200\",route=\"main\"}", 1.0);
    assert_eq!(b.get("/second").body, b"ok");
    assert_eq!(conns_rx.recv_timeout(Duration::from_secs(15)), Ok(2));
    assert_no_backend_blamed(&b);
}
