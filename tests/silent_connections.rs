//! Connections that say nothing cannot hold `max_connections`: one that has not completed a
//! request header within `client_header_timeout` of accept is closed (HTTP/1.1, the h2c
//! preface alone, a TLS handshake never started), an HTTP/2 connection with no open stream
//! closes after `client_keepalive_timeout`, and at the cap the connection idle longest is
//! closed to admit a new one. Timeouts here are 1 s against a 15 s read timeout in the
//! client, which only bounds a hang: the old behaviour (60 s, or never) fails them.

mod support;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Reads until brace closes the connection; panics if it is still open after the read
/// timeout. Returns what brace sent before closing.
fn closed_by_brace(s: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        panic!(
            "{what}: still open ({e}) after {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    out
}

#[test]
fn connections_that_never_send_a_request_are_closed_at_the_header_timeout_from_accept() {
    for h2c in [false, true] {
        let up = Upstream::start("u");
        let b = Brace::start_with(
            &simple_config("", &[&up], TOUCHY),
            &format!("max_connections = 4\nclient_header_timeout = \"1s\"\nh2c = {h2c}"),
        );
        // Four silent clients take every place; one of them sends only the h2c preface and
        // one a request line that never ends.
        let mut silent: Vec<TcpStream> = (0..4).map(|_| connect(b.addr())).collect();
        silent[1].write_all(H2_PREFACE).unwrap();
        silent[2].write_all(b"GET / HTTP/1.1\r\n").unwrap();
        for (i, s) in silent.iter_mut().enumerate() {
            let got = closed_by_brace(s, &format!("h2c {h2c}, client {i}"));
            let text = String::from_utf8_lossy(&got);
            // Without h2c the preface is a malformed HTTP/1.1 request (400 at once); a
            // header never finished is 408; a connection that sent nothing is just closed.
            let want = match (i, h2c) {
                (1, false) => "HTTP/1.1 400",
                (2, _) => "HTTP/1.1 408",
                _ => "",
            };
            assert!(text.starts_with(want), "h2c {h2c}, client {i}: {text}");
        }
        b.wait_metric("brace_connections_active", 0.0);
        // The places are free again.
        assert_eq!(b.get("/").status, 200, "h2c {h2c}");
        assert_eq!(up.count(), 1);
        assert_no_backend_blamed(&b);
    }
}

#[test]
fn an_http2_connection_that_opens_no_stream_is_closed_after_the_keepalive_timeout() {
    let up = Upstream::start("u");
    let b = Brace::start_with(
        &simple_config("", &[&up], TOUCHY),
        "h2c = true\nclient_keepalive_timeout = \"1s\"\nclient_header_timeout = \"30s\"",
    );
    // The preface and an empty SETTINGS frame: a complete HTTP/2 handshake, then nothing.
    let mut s = connect(b.addr());
    s.write_all(H2_PREFACE).unwrap();
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    closed_by_brace(&mut s, "h2 without a stream");
    b.wait_metric("brace_connections_active", 0.0);
    assert_eq!(up.count(), 0);
    assert_no_backend_blamed(&b);
}

#[test]
fn a_silent_tls_client_is_closed_at_the_header_timeout() {
    let up = Upstream::start("u");
    let pki = support::pki::Pki::new();
    pki.ca("ca");
    pki.cert("edge", "IP:127.0.0.1", "ca");
    let (port, tls_port, admin) = (free_port(), free_port(), free_port());
    let cfg = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nclient_header_timeout = \"1s\"\n\
         [[server.tls]]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = {:?}\nkey = {:?}\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n{}",
        pki.path("edge.pem").display().to_string(),
        pki.path("edge.key").display().to_string(),
        simple_config("", &[&up], "")
    );
    let b = Brace::start_raw(&cfg, port, admin);
    let mut s = connect(format!("127.0.0.1:{tls_port}").parse().unwrap());
    assert!(closed_by_brace(&mut s, "silent TLS client").is_empty());
    b.wait_metric("brace_connections_active", 0.0);
}

/// At `max_connections`, a new client is admitted by closing the keep-alive connection that
/// has been idle longest (as nginx does); connections in the middle of a request are never
/// chosen, and with none idle the new one is refused as before.
#[test]
fn at_the_cap_the_connection_idle_longest_makes_room_for_a_new_one() {
    let up = Upstream::start("u");
    let b = Brace::start_with(
        &simple_config("", &[&up], TOUCHY),
        "max_connections = 3\nclient_keepalive_timeout = \"300s\"",
    );
    let request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    // Two clients finish a request each and keep their connections; the first idles first.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = connect(b.addr());
        s.write_all(request).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert_eq!(read_response(&mut r).unwrap().status, 200);
        idle.push(r);
    }
    // The third is half-way through its request header: busy, never chosen.
    let mut busy = connect(b.addr());
    busy.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    b.wait_metric("brace_connections_active", 3.0);
    // A fourth client is admitted; the oldest idle connection is closed for it.
    let fresh = b.get("/");
    assert_eq!(fresh.status, 200);
    b.wait_metric("brace_connections_idle_closed_total", 1.0);
    let mut rest = Vec::new();
    idle[0]
        .read_to_end(&mut rest)
        .expect("the oldest idle connection was closed");
    assert!(rest.is_empty());
    // The busy client finishes its request on its connection.
    busy.write_all(b"Host: h\r\n\r\n").unwrap();
    let mut r = BufReader::new(busy);
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    // The younger idle one is still open and still works.
    let mut s = idle[1].get_ref().try_clone().unwrap();
    s.write_all(request).unwrap();
    assert_eq!(read_response(&mut idle[1]).unwrap().status, 200);
    assert_eq!(b.metric("brace_connections_refused_total"), 0.0);
    assert_no_backend_blamed(&b);
}
