//! gRPC through brace, with a real gRPC server and client (Debian's python3-grpcio, driven by
//! `tests/grpc/peer.py`): HTTP/2 both ways, cleartext with prior knowledge (`[server] h2c`,
//! `protocol = "h2c"`) and over TLS (ALPN `h2` on both sides); unary and streaming calls,
//! trailers, a trailer-only error status counted as the backend's failure only for server
//! codes, and a backend killed mid-stream.

mod support;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use support::pki::Pki;
use support::*;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/peer.py");
/// Debian's python, where python3-grpcio is installed (the README's test command installs it).
const PYTHON: &str = "/usr/bin/python3";

/// A gRPC server (`test.Echo`) on 127.0.0.1; TLS with `tls = (cert, key)` files.
struct GrpcServer {
    port: u16,
    child: Child,
}

impl GrpcServer {
    fn start(tls: Option<(&std::path::Path, &std::path::Path)>) -> GrpcServer {
        let port = free_port();
        let mut cmd = Command::new(PYTHON);
        cmd.arg(PEER).arg("server").arg(port.to_string());
        if let Some((c, k)) = tls {
            cmd.arg(c).arg(k);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 not installed: run the README's test command");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the gRPC server did not start (python3-grpcio missing? the README's test command installs it)"
        );
        GrpcServer { port, child }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `calls` (one per line, see peer.py) from one gRPC client channel to `target`; `ca`
/// makes it TLS. Returns each call's result.
fn calls(target: &str, ca: Option<&std::path::Path>, calls: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(PEER).arg("client").arg(target);
    if let Some(ca) = ca {
        cmd.arg(ca);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for c in calls {
        writeln!(stdin, "{c}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), calls.len(), "{results:?}");
    results
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap()
}

fn messages(v: &Value) -> Vec<&str> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect()
}

fn outcome(b: &Brace, backend: &str, outcome: &str) -> f64 {
    b.metric(&format!(
        "brace_upstream_requests_total{{backend=\"{backend}\",outcome=\"{outcome}\",upstream=\"pool\"}}"
    ))
}

/// brace with `[server] h2c = true` in front of `backend` over h2c, access log on stdout;
/// `upstream_extra` is added to `[upstream.pool]`.
fn h2c_brace(backend: &str, upstream_extra: &str) -> Brace {
    let (port, admin) = (free_port(), free_port());
    Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nh2c = true\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [log]\nlevel = \"warn\"\naccess_log = \"stdout\"\n\
             [[route]]\nname = \"grpc\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{backend}\"]\nprotocol = \"h2c\"\n{upstream_extra}\n"
        ),
        port,
        admin,
    )
}

#[test]
fn unary_and_streaming_calls_and_their_trailers_pass_through_h2c() {
    let server = GrpcServer::start(None);
    let b = h2c_brace(&server.addr(), TOUCHY);
    let r = calls(
        &b.addr().to_string(),
        None,
        &[
            "unary hello",
            "stream 50",
            "collect a,b,c",
            "chat x,y,z",
            // Server codes a client can cause are not the backend's failure.
            "unary missing",
            "deadline 400",
        ],
    );
    assert_eq!(code(&r[0]), "OK", "{r:?}");
    assert_eq!(messages(&r[0]), ["echo:hello"]);
    // The server's trailing metadata reached the client.
    assert_eq!(r[0]["trailers"]["x-served-by"], "peer", "{:?}", r[0]);
    let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(messages(&r[1]), want);
    assert_eq!(code(&r[1]), "OK");
    assert_eq!(messages(&r[2]), ["a+b+c"]);
    assert_eq!(messages(&r[3]), ["re:x", "re:y", "re:z"]);
    assert_eq!(code(&r[3]), "OK");
    // A trailer-only status (no message, the status in the header block) gets through.
    assert_eq!(code(&r[4]), "NOT_FOUND");
    assert_eq!(r[4]["details"], "no such thing");
    assert_eq!(code(&r[5]), "DEADLINE_EXCEEDED");
    // The client's own short deadline is the client's doing: it resets the stream
    // (`client_abort`), unless the server, which knows the deadline too (`grpc-timeout`),
    // answers DEADLINE_EXCEEDED first (`success`: that code is not a backend failure). Which
    // comes first is a race on a busy machine; either way nothing is the backend's failure.
    let outcome = |o: &str| {
        b.metric(&format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"{o}\",upstream=\"pool\"}}",
            server.addr()
        ))
    };
    wait_for(
        "six calls recorded",
        std::time::Duration::from_secs(10),
        || outcome("success") + outcome("client_abort") == 6.0,
    );
    assert!(outcome("success") >= 5.0);
    assert_no_backend_blamed(&b);
}

#[test]
fn a_server_error_status_is_the_backends_failure_and_trips_its_breaker() {
    let server = GrpcServer::start(None);
    let mut b = h2c_brace(
        &server.addr(),
        "[upstream.pool.circuit_breaker]\nconsecutive_failures = 3\nopen_duration = \"30s\"\n",
    );
    let r = calls(
        &b.addr().to_string(),
        None,
        &[
            "unary fail",
            "unary unavailable",
            // Two messages, then the status in the trailers.
            "stream 2-fail",
            "unary hello",
        ],
    );
    assert_eq!(code(&r[0]), "INTERNAL");
    assert_eq!(r[0]["details"], "boom");
    assert_eq!(code(&r[1]), "UNAVAILABLE");
    assert_eq!(messages(&r[2]), ["0", "1"]);
    assert_eq!(code(&r[2]), "INTERNAL");
    assert_eq!(r[2]["details"], "broke after 2");
    b.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"grpc_error\",upstream=\"pool\"}}",
            server.addr()
        ),
        3.0,
    );
    // Three in a row opened the breaker: the next call is refused by brace, which a gRPC
    // client reads as UNAVAILABLE (503).
    assert_eq!(code(&r[3]), "UNAVAILABLE", "{:?}", r[3]);
    assert_eq!(outcome(&b, &server.addr(), "success"), 0.0);
    // The access log names each call's gRPC status.
    drop(server);
    b.signal("TERM");
    b.wait_exit(std::time::Duration::from_secs(10));
    let log = b.stdout();
    assert_eq!(log.matches("\"grpc_status\":13").count(), 2, "{log}");
    assert_eq!(log.matches("\"grpc_status\":14").count(), 1, "{log}");

    // An operator may count only some codes: with none counted, a failing call blames nobody.
    let other = GrpcServer::start(None);
    let b = h2c_brace(&other.addr(), &format!("grpc_failure = []\n{TOUCHY}"));
    let r = calls(&b.addr().to_string(), None, &["unary fail", "unary fail"]);
    assert_eq!(code(&r[1]), "INTERNAL");
    b.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"{}\",outcome=\"success\",upstream=\"pool\"}}",
            other.addr()
        ),
        2.0,
    );
    assert_no_backend_blamed(&b);
}

#[test]
fn a_backend_killed_mid_stream_ends_the_call_with_an_error_and_is_blamed() {
    let server = GrpcServer::start(None);
    let b = h2c_brace(&server.addr(), "");
    // The server sends two messages, then its process exits.
    let r = calls(&b.addr().to_string(), None, &["stream die", "unary after"]);
    assert_eq!(messages(&r[0]), ["0", "1"], "{:?}", r[0]);
    assert_ne!(
        code(&r[0]),
        "OK",
        "a broken stream looked complete: {:?}",
        r[0]
    );
    // The next call finds no backend: a 502, which a gRPC client reads as UNAVAILABLE.
    assert_eq!(code(&r[1]), "UNAVAILABLE", "{:?}", r[1]);
    // The broken stream is blamed; so is the next call if it met the dying process's
    // connection rather than a refused one (on a busy machine the exit takes a while).
    let errors = format!(
        "brace_upstream_requests_total{{backend=\"{}\",outcome=\"error\",upstream=\"pool\"}}",
        server.addr()
    );
    wait_for(
        "the broken stream blamed",
        std::time::Duration::from_secs(10),
        || b.metric(&errors) >= 1.0,
    );
}

#[test]
fn grpc_over_tls_on_both_sides_negotiates_http2_by_alpn() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.cert("backend", "IP:127.0.0.1", "ca");
    pki.cert("front", "DNS:a.test", "ca");
    let server = GrpcServer::start(Some((&pki.path("backend.pem"), &pki.path("backend.key"))));
    let (port, tls_port, admin) = (free_port(), free_port(), free_port());
    for alpn in ["[\"h2\"]", "[\"h2\", \"http/1.1\"]"] {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[[server.tls]]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n\
             [[route]]\nname = \"grpc\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{}\"]\ntls = {{ ca = \"{}\", alpn = {alpn} }}\n",
            pki.path("front.pem").display(),
            pki.path("front.key").display(),
            server.addr(),
            pki.path("ca.pem").display(),
        );
        let b = Brace::start_raw(&text, port, admin);
        let r = calls(
            &format!("127.0.0.1:{tls_port}"),
            Some(&pki.path("ca.pem")),
            &["unary over-tls", "chat p,q", "unary fail"],
        );
        assert_eq!(messages(&r[0]), ["echo:over-tls"], "alpn {alpn}: {r:?}");
        assert_eq!(messages(&r[1]), ["re:p", "re:q"]);
        assert_eq!(code(&r[2]), "INTERNAL");
        b.wait_metric(
            &format!(
                "brace_upstream_requests_total{{backend=\"{}\",outcome=\"grpc_error\",upstream=\"pool\"}}",
                server.addr()
            ),
            1.0,
        );
        drop(b);
    }
}

#[test]
fn bad_protocol_settings_are_refused() {
    for (upstream, why) in [
        ("protocol = \"h2c\"\ntls = true", "h2c is cleartext HTTP/2"),
        ("protocol = \"h3\"", "unknown variant"),
        ("tls = { alpn = [\"spdy/3\"] }", "give [\"http/1.1\"]"),
        ("grpc_failure = [\"ok\"]", "not a failure"),
        (
            "grpc_failure = [\"INTERNAL\"]",
            "not a gRPC status code name",
        ),
    ] {
        let text = format!(
            "[[route]]\nname = \"r\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"127.0.0.1:1\"]\n{upstream}\n"
        );
        let (code, _, err, _) = check(&text);
        assert_eq!(code, 1, "accepted: {upstream}");
        assert!(err.contains(why), "{upstream}: {err}");
    }
}

/// brace's own refusals reach a gRPC client as gRPC statuses, not as plain-text HTTP it
/// cannot read: a client stream past `client_max_body_size` ends at once with
/// `RESOURCE_EXHAUSTED` (before, it hung until the client's deadline), and a call with no
/// backend to go to is `UNAVAILABLE`. The connection stays usable, and nobody is blamed.
#[test]
fn brace_refusals_reach_grpc_clients_as_grpc_statuses() {
    let server = GrpcServer::start(None);
    let config = |backend: &str| {
        let (port, admin) = (free_port(), free_port());
        let cfg = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nh2c = true\nclient_max_body_size = \"256KiB\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n\
             [[route]]\nname = \"grpc\"\nupstream = \"pool\"\n[upstream.pool]\nbackends = [\"{backend}\"]\n\
             protocol = \"h2c\"\n[upstream.pool.retry]\nattempts = 0\n{TOUCHY}"
        );
        Brace::start_raw(&cfg, port, admin)
    };
    let b = config(&server.addr());
    let r = calls(
        &b.addr().to_string(),
        None,
        &["big 2", "big 40", "unary hi"],
    );
    assert_eq!((code(&r[0]), messages(&r[0])), ("OK", vec!["131073"]));
    assert_eq!(code(&r[1]), "RESOURCE_EXHAUSTED", "{}", r[1]);
    assert!(
        r[1]["details"].as_str().unwrap().contains("too large"),
        "{}",
        r[1]
    );
    assert_eq!(code(&r[2]), "OK");
    assert_no_backend_blamed(&b);

    // A backend that refuses connections: brace's 502 is UNAVAILABLE to the client.
    let gone = free_port();
    let b = config(&format!("127.0.0.1:{gone}"));
    let r = calls(&b.addr().to_string(), None, &["unary hi"]);
    assert_eq!(code(&r[0]), "UNAVAILABLE", "{}", r[0]);
    assert!(
        r[0]["details"].as_str().unwrap().contains("brace:"),
        "{}",
        r[0]
    );
}
