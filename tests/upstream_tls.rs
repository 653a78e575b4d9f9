//! TLS to backends, against real TLS servers on 127.0.0.1 (`openssl s_server -www`) with
//! certificates made at test time by the `openssl` command: a verified chain (by IP address
//! and by name), a wrong name, an unknown CA, a backend that requires a client certificate,
//! and `verify = false`. Each failure is a 502 with its own outcome.

mod support;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::pki::Pki;
use support::*;

/// A TLS backend with certificate `name`; `client_ca` makes it require a client certificate.
struct TlsBackend {
    port: u16,
    child: Child,
}

impl TlsBackend {
    fn start(dir: &Path, name: &str, client_ca: Option<&str>) -> TlsBackend {
        let port = free_port();
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir)
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-cert",
                &format!("{name}.pem"),
                "-key",
                &format!("{name}.key"),
            ]);
        if let Some(c) = client_ca {
            cmd.args(["-Verify", "1", "-CAfile", &format!("{c}.pem")]);
        }
        TlsBackend::spawn(cmd, port)
    }

    /// A backend that keeps connections alive (`tests/tls/keepalive_server.py`): its answers
    /// say which of its connections carried them and the client certificate's name.
    fn keepalive(dir: &Path, name: &str, client_ca: Option<&str>) -> TlsBackend {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/keepalive_server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.current_dir(dir)
            .arg(script)
            .arg(port.to_string())
            .args([format!("{name}.pem"), format!("{name}.key")]);
        if let Some(c) = client_ca {
            cmd.arg(format!("{c}.pem"));
        }
        TlsBackend::spawn(cmd, port)
    }

    fn spawn(mut cmd: Command, port: u16) -> TlsBackend {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(
            "openssl s_server to listen",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        TlsBackend { port, child }
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CAs and certificates the tests below use.
fn pki() -> Pki {
    let p = Pki::new();
    p.ca("ca");
    p.ca("other_ca");
    p.cert("by_ip", "IP:127.0.0.1", "ca");
    p.cert("by_name", "DNS:app.internal", "ca");
    p.cert("stranger", "IP:127.0.0.1,DNS:app.internal", "other_ca");
    p.cert("client", "DNS:brace.client", "ca");
    p.cert("client2", "DNS:brace.client2", "ca");
    p
}

/// One route per upstream: `/NAME/` → upstream NAME (prefix stripped).
fn config(upstreams: &[(&str, u16, &str)]) -> String {
    let mut s = String::new();
    for (name, port, tls) in upstreams {
        s.push_str(&format!(
            "[[route]]\nname = \"{name}\"\npath_prefix = \"/{name}/\"\nstrip_prefix = true\n\
             upstream = \"{name}\"\n\n[upstream.{name}]\nbackends = [\"127.0.0.1:{port}\"]\n\
             tls = {tls}\n[upstream.{name}.retry]\nattempts = 0\n\n"
        ));
    }
    s
}

fn outcome(b: &Brace, upstream: &str, port: u16, outcome: &str) -> f64 {
    b.metric(&format!(
        "brace_upstream_requests_total{{backend=\"127.0.0.1:{port}\",outcome=\"{outcome}\",upstream=\"{upstream}\"}}"
    ))
}

#[test]
fn a_trusted_backend_answers_and_each_tls_failure_is_a_502_with_its_own_outcome() {
    let pki = pki();
    let d = pki.dir.path();
    let by_ip = TlsBackend::start(d, "by_ip", None);
    let by_name = TlsBackend::start(d, "by_name", None);
    let stranger = TlsBackend::start(d, "stranger", None);
    let mtls = TlsBackend::start(d, "by_ip", Some("ca"));
    let ca = format!("{:?}", pki.path("ca.pem").display().to_string());
    let client = format!(
        "client_cert = {:?}, client_key = {:?}",
        pki.path("client.pem").display().to_string(),
        pki.path("client.key").display().to_string()
    );
    let b = Brace::start(&config(&[
        ("ip", by_ip.port, &format!("{{ ca = {ca} }}")),
        (
            "name",
            by_name.port,
            &format!("{{ ca = {ca}, sni = \"app.internal\" }}"),
        ),
        (
            "wrongname",
            by_name.port,
            &format!("{{ ca = {ca}, sni = \"other.internal\" }}"),
        ),
        ("unknownca", stranger.port, &format!("{{ ca = {ca} }}")),
        ("systemroots", by_ip.port, "true"),
        ("nocert", mtls.port, &format!("{{ ca = {ca} }}")),
        ("mtls", mtls.port, &format!("{{ ca = {ca}, {client} }}")),
        ("noverify", stranger.port, "{ verify = false }"),
    ]));

    for ok in ["ip", "name", "mtls", "noverify"] {
        let r = b.get(&format!("/{ok}/"));
        assert_eq!(r.status, 200, "{ok}: {}", r.text());
        assert!(r.text().contains("s_server"), "{ok}: {}", r.text());
    }
    let failures = [
        ("wrongname", by_name.port, "tls_name_mismatch"),
        ("unknownca", stranger.port, "tls_untrusted"),
        ("systemroots", by_ip.port, "tls_untrusted"),
        ("nocert", mtls.port, "tls_error"),
    ];
    for (route, port, want) in failures {
        let r = b.get(&format!("/{route}/"));
        assert_eq!(r.status, 502, "{route}");
        assert_eq!(
            outcome(&b, route, port, want),
            1.0,
            "{route}: {}",
            b.metrics()
        );
    }
    // A success is counted when the request is logged, just after its answer went out.
    b.wait_metric(
        &format!(
            "brace_upstream_requests_total{{backend=\"127.0.0.1:{}\",outcome=\"success\",upstream=\"ip\"}}",
            by_ip.port
        ),
        1.0,
    );
}

#[test]
fn a_stalled_handshake_is_a_tls_timeout() {
    // Accepts TCP and never speaks TLS.
    let hole = BlackHole::start();
    let port = hole.addr.port();
    let b = Brace::start(
        &config(&[("hole", port, "true")])
            .replace("tls = true\n", "tls = true\nconnect_timeout = \"300ms\"\n"),
    );
    let r = b.get("/hole/");
    assert_eq!(r.status, 502);
    assert_eq!(
        outcome(&b, "hole", port, "tls_timeout"),
        1.0,
        "{}",
        b.metrics()
    );
}

#[test]
fn verify_false_is_warned_about_on_every_load_and_bad_tls_settings_are_refused() {
    let pki = pki();
    let (code, _, err, _) = check(&config(&[("u", 1, "{ verify = false }")]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("verify = false"), "{err}");
    assert!(err.contains("warning: upstream.u.tls"), "{err}");

    let cert = pki.path("client.pem").display().to_string();
    let key = pki.path("client.key").display().to_string();
    std::fs::write(
        pki.path("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let junk = pki.path("junk.pem").display().to_string();
    let whole = std::fs::read_to_string(pki.path("ca.pem")).unwrap();
    std::fs::write(pki.path("cut.pem"), &whole[..whole.len() / 2]).unwrap();
    let cut = pki.path("cut.pem").display().to_string();
    let cases = [
        (
            format!(
                "{{ ca = {:?} }}",
                pki.path("missing.pem").display().to_string()
            ),
            "upstream.u.tls.ca",
        ),
        (format!("{{ ca = {key:?} }}"), "no PEM certificate"),
        (format!("{{ ca = {junk:?} }}"), "not valid X.509"),
        // Said in words, not as a byte array.
        (
            format!("{{ ca = {cut:?} }}"),
            "cut short: no \"-----END CERTIFICATE-----\" line",
        ),
        (
            format!("{{ client_cert = {cert:?} }}"),
            "client_cert needs client_key",
        ),
        (
            format!("{{ client_key = {key:?} }}"),
            "client_key needs client_cert",
        ),
        (
            format!("{{ client_cert = {cert:?}, client_key = {cert:?} }}"),
            "upstream.u.tls.client_key",
        ),
        ("{ sni = \"bad name!\" }".into(), "is not a host name"),
        ("{ verfy = false }".into(), "upstream.u.tls"),
    ];
    for (tls, want) in cases {
        let (code, _, err, _) = check(&config(&[("u", 1, &tls)]));
        assert_eq!(code, 1, "{tls}");
        assert!(err.contains(want), "{tls}: {err}");
    }
}

/// Two upstreams that name one backend address with different trust settings never share a
/// pooled connection, whichever opens it first: a CA that does not trust the backend still
/// fails after a trusting upstream's connection is pooled, `verify = false` does not lend an
/// unverified connection to an upstream that verifies, and a connection authenticated with
/// one client certificate is not reused with another certificate or none. The backend keeps
/// connections alive and says which one carried each answer and which client certificate
/// it saw.
#[test]
fn a_pooled_connection_is_reused_only_with_the_trust_settings_it_was_made_with() {
    let pki = pki();
    let d = pki.dir.path();
    let path = |f: &str| format!("{:?}", pki.path(f).display().to_string());
    let client = |name: &str| {
        format!(
            "client_cert = {}, client_key = {}",
            path(&format!("{name}.pem")),
            path(&format!("{name}.key"))
        )
    };
    let (ca, other) = (path("ca.pem"), path("other_ca.pem"));
    // (first, second): settings that differ; the expected body of each is checked in
    // both orders, on a backend of its own per pair and order.
    struct Pair<'a> {
        name: &'a str,
        cert: &'a str,
        a: String,
        b: String,
        /// Each side's answer: `Some(client)` = 200 naming that client, `None` = 502.
        want_a: Option<&'a str>,
        want_b: Option<&'a str>,
    }
    let pairs = [
        Pair {
            name: "ca",
            cert: "by_ip",
            a: format!("{{ ca = {ca} }}"),
            b: format!("{{ ca = {other} }}"),
            want_a: Some("none"),
            want_b: None,
        },
        Pair {
            name: "verify",
            cert: "stranger",
            a: "{ verify = false }".into(),
            b: format!("{{ ca = {ca} }}"),
            want_a: Some("none"),
            want_b: None,
        },
        Pair {
            name: "clientcert",
            cert: "by_ip",
            a: format!("{{ ca = {ca}, {} }}", client("client")),
            b: format!("{{ ca = {ca} }}"),
            want_a: Some("client"),
            want_b: Some("none"),
        },
        Pair {
            name: "twocerts",
            cert: "by_ip",
            a: format!("{{ ca = {ca}, {} }}", client("client")),
            b: format!("{{ ca = {ca}, {} }}", client("client2")),
            want_a: Some("client"),
            want_b: Some("client2"),
        },
    ];
    for p in &pairs {
        for a_first in [true, false] {
            let backend = TlsBackend::keepalive(d, p.cert, Some("ca"));
            // One worker thread: idle upstream connections are kept per thread, so every
            // request can find what the ones before it pooled.
            let b = Brace::start_with(
                &config(&[("a", backend.port, &p.a), ("b", backend.port, &p.b)]),
                "threads = 1",
            );
            let order: [(&str, Option<&str>); 2] = if a_first {
                [("a", p.want_a), ("b", p.want_b)]
            } else {
                [("b", p.want_b), ("a", p.want_a)]
            };
            // Twice each: the second request of a side reuses its own connection.
            let mut conns: Vec<(&str, String)> = Vec::new();
            for (route, want) in order.iter().chain(order.iter()) {
                let r = b.get(&format!("/{route}/"));
                let what = format!("{} (a first: {a_first}), /{route}/: {}", p.name, r.text());
                match want {
                    None => assert_eq!(r.status, 502, "{what}"),
                    Some(cn) => {
                        assert_eq!(r.status, 200, "{what}");
                        let text = r.text();
                        let (conn, client) = text.split_once(' ').unwrap();
                        assert_eq!(client, format!("client={cn}"), "{what}");
                        conns.push((route, conn.to_owned()));
                    }
                }
            }
            // Pooling works for equal settings (the same connection again), never across.
            for (route, conn) in &conns {
                for (other, c) in &conns {
                    assert_eq!(route == other, conn == c, "{}: {conns:?}", p.name);
                }
            }
        }
    }
}
