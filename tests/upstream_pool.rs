//! Idle upstream connections (pingora patch 11: kept per worker thread, swept once a second):
//! reused, closed after `keepalive_timeout`, and never kept half-closed once the backend has
//! closed its side. The backend here is a raw keep-alive server that counts the connections
//! it accepts and those closed by brace.

mod support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::*;

struct CountingBackend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections brace closed (the backend read end-of-stream).
    closed_by_brace: Arc<AtomicUsize>,
    /// Connections the backend closed itself.
    closed_by_backend: Arc<AtomicUsize>,
}

/// A keep-alive HTTP/1.1 backend; with `close_after_answer`, it closes each connection itself
/// 100 ms after its first answer (without saying so in a header, as a backend whose idle
/// timeout is short does).
fn backend(close_after_answer: bool) -> CountingBackend {
    backend_answering(
        close_after_answer,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
}

/// [`backend`] with another answer to every request.
fn backend_answering(close_after_answer: bool, answer: &'static str) -> CountingBackend {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed_by_brace = Arc::new(AtomicUsize::new(0));
    let closed_by_backend = Arc::new(AtomicUsize::new(0));
    let (a, c, own) = (
        accepted.clone(),
        closed_by_brace.clone(),
        closed_by_backend.clone(),
    );
    std::thread::spawn(move || {
        for s in l.incoming().flatten().take(1000) {
            a.fetch_add(1, SeqCst);
            let (c, own) = (c.clone(), own.clone());
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => {
                            c.fetch_add(1, SeqCst);
                            return;
                        }
                        Ok(_) => {}
                    }
                    let _ = s.write_all(answer.as_bytes());
                    if close_after_answer {
                        std::thread::sleep(Duration::from_millis(100)); // allowed: the backend's own idle timeout, not synchronisation
                        drop(s);
                        own.fetch_add(1, SeqCst);
                        return;
                    }
                }
            });
        }
    });
    CountingBackend {
        addr,
        accepted,
        closed_by_brace,
        closed_by_backend,
    }
}

/// Sockets on this machine connected to `port` and half-closed by the peer (CLOSE_WAIT),
/// from /proc/net/tcp.
fn close_wait_to(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2].ends_with(&remote) && f[3] == "08"
        })
        .count()
}

fn brace_for(b: &CountingBackend, extra: &str) -> Brace {
    Brace::start_with(
        &format!(
            "[[route]]\nname = \"r\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{}\"]\n{extra}\n",
            b.addr
        ),
        "threads = 1",
    )
}

#[test]
fn idle_connections_are_reused_then_closed_after_keepalive_timeout() {
    let up = backend(false);
    let b = brace_for(&up, "keepalive_timeout = \"1s\"");
    for _ in 0..10 {
        assert_eq!(b.get("/").status, 200);
    }
    assert_eq!(
        up.accepted.load(SeqCst),
        1,
        "the idle connection was not reused"
    );
    // Idle for longer than keepalive_timeout: brace closes it (its sweep runs each second).
    wait_for(
        "brace to close the idle connection",
        Duration::from_secs(5),
        || up.closed_by_brace.load(SeqCst) == 1,
    );
    assert_eq!(b.get("/").status, 200);
    assert_eq!(up.accepted.load(SeqCst), 2);
}

#[test]
fn a_connection_the_backend_closed_is_neither_kept_nor_reused() {
    let up = backend(true);
    let b = brace_for(&up, "");
    for i in 0..5 {
        assert_eq!(b.get("/").status, 200);
        // The backend closes its side: brace's end must not linger half-closed.
        wait_for(
            "brace to close its side of a connection the backend closed",
            Duration::from_secs(5),
            || up.closed_by_backend.load(SeqCst) == i + 1 && close_wait_to(up.addr.port()) == 0,
        );
    }
    // Each request found the closed connection unusable and opened a new one: no request
    // failed, nothing was retried, the backend is not blamed.
    assert_eq!(up.accepted.load(SeqCst), 5);
    assert_no_backend_blamed(&b);
}

/// A backend giving `answer` to every request, after three requests through brace, each
/// answered 200 with the body `ok`.
fn three_answers(answer: &'static str) -> (CountingBackend, Brace) {
    let up = backend_answering(false, answer);
    let b = brace_for(&up, "");
    for _ in 0..3 {
        let r = b.get("/");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]), "{answer}");
    }
    (up, b)
}

/// What a backend says about its connection is honoured: an answer with `Connection: close`
/// (from a backend that leaves its socket open all the same), or an HTTP/1.0 answer framed
/// by `Transfer-Encoding` (RFC 9112 §6.1: the connection must close after it), is never
/// reused.
#[test]
fn a_connection_the_backends_answer_ends_is_never_reused() {
    for answer in [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ] {
        let (up, b) = three_answers(answer);
        assert_eq!(up.accepted.load(SeqCst), 3, "reused after: {answer}");
        wait_for(
            "brace to close each connection the answer ended",
            Duration::from_secs(5),
            || up.closed_by_brace.load(SeqCst) == 3,
        );
        assert_no_backend_blamed(&b);
    }
}

/// Each answer is read by the framing it came with (pingora patch 26 works it out once, when
/// the header is read): chunked, a repeated or comma-listed `Content-Length`, or chunked after
/// another coding. A body read short or long would leave the connection out of step, so the
/// next answer would fail or the connection would not be reused.
#[test]
fn each_answer_on_a_reused_connection_is_read_by_its_own_framing() {
    for answer in [
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ] {
        let (up, b) = three_answers(answer);
        assert_eq!(up.accepted.load(SeqCst), 1, "not reused after: {answer}");
        assert_no_backend_blamed(&b);
    }
}
