//! Client-facing TLS, with real clients: `curl` (HTTP/2 and HTTP/1.1 by ALPN), `openssl
//! s_client` (which certificate a name is served), and a rustls client holding a keep-alive
//! connection open across reloads and presenting client certificates. Certificates are made
//! at test time by `openssl`.

mod support;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::pki::{cert_with_subject, Pki};
use support::*;

/// A config with a plain listener, one TLS listener whose table body is `tls`, and one route
/// to `up`.
fn config(ports: (u16, u16, u16), server_extra: &str, tls: &str, up: &Upstream) -> String {
    let (port, tls_port, admin) = ports;
    format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n{server_extra}\n[[server.tls]]\nlisten = \"127.0.0.1:{tls_port}\"\n{tls}\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n{}",
        simple_config("", &[up], "")
    )
}

fn ports() -> (u16, u16, u16) {
    (free_port(), free_port(), free_port())
}

fn pair(pki: &Pki, name: &str) -> String {
    format!(
        "cert = \"{}\"\nkey = \"{}\"\n",
        pki.path(&format!("{name}.pem")).display(),
        pki.path(&format!("{name}.key")).display()
    )
}

/// The subject `openssl s_client` is served for SNI `name` (`None`: no SNI sent).
fn served(tls_port: u16, name: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{tls_port}")]);
    match name {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| format!("no certificate: {text}"))
}

/// A rustls client trusting `ca`, presenting `client` (a certificate name in `pki`) if given.
fn client(pki: &Pki, ca: &str, client: Option<&str>) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.path(&format!("{ca}.pem"))).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match client {
        None => b.with_no_client_auth(),
        Some(name) => {
            let chain = CertificateDer::pem_file_iter(pki.path(&format!("{name}.pem")))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{name}.key"))).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

type Conn = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(tls_port: u16, sni: &str, cfg: Arc<rustls::ClientConfig>) -> std::io::Result<Conn> {
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", tls_port))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// One keep-alive GET on an open connection.
fn get_on(s: &mut Conn, path: &str, extra: &str) -> std::io::Result<Response> {
    write!(s, "GET {path} HTTP/1.1\r\nHost: a.test\r\n{extra}\r\n")?;
    s.flush()?;
    read_response(&mut BufReader::new(s))
}

/// The common name of the certificate this connection was handed.
fn peer_cn(s: &Conn) -> String {
    let der = &s.conn.peer_certificates().unwrap()[0];
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    let cn = c.subject().iter_common_name().next().unwrap();
    cn.as_str().unwrap().to_owned()
}

#[test]
fn tls_listener_serves_http2_and_http1() {
    let up = Upstream::start("u");
    let pki = Pki::new();
    pki.ca("localhost");
    let (port, tls_port, admin) = ports();
    let b = Brace::start_raw(
        &config((port, tls_port, admin), "", &pair(&pki, "localhost"), &up),
        port,
        admin,
    );
    // The certificate's expiry, two days ahead (`-days 2`), for the alert rule.
    let sample = format!(
        "brace_tls_certificate_expiry_timestamp_seconds{{listener=\"127.0.0.1:{tls_port}\",subject=\"localhost\"}}"
    );
    let expiry = b.metric(&sample);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (expiry - now - 2.0 * 86_400.0).abs() < 600.0,
        "{sample} = {expiry}, now {now}"
    );
    let curl = |extra: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "10",
                "-o",
                "-",
                "-w",
                "\n%{http_code} %{http_version}",
            ])
            .args(extra)
            .arg(format!("https://127.0.0.1:{tls_port}/tls"))
            .output()
            .expect("curl not installed: run the README's test command, which installs it");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let h2 = curl(&["--http2"]);
    assert!(h2.ends_with("200 2"), "{h2}");
    assert!(h2.starts_with("hello from u"), "{h2}");
    let h1 = curl(&["--http1.1"]);
    assert!(h1.ends_with("200 1.1"), "{h1}");
    // The upstream was told the request came over TLS.
    assert!(
        up.head().contains("x-forwarded-proto: https"),
        "{}",
        up.head()
    );
    // An HTTP/2 content-length that is not one plain decimal number is refused, as on HTTP/1.
    let post = |length: &str| {
        curl(&[
            "--http2",
            "-H",
            &format!("content-length: {length}"),
            "--data-binary",
            "abcdefghij",
        ])
    };
    let count = up.count();
    let bad = post("010");
    assert!(bad.ends_with("400 2"), "{bad}");
    assert_eq!(
        up.count(),
        count,
        "a zero-padded length reached the upstream"
    );
    let good = post("10");
    assert!(good.ends_with("200 2"), "{good}");
    assert!(
        up.head().contains("content-length: 10\r\n"),
        "{}",
        up.head()
    );
}

#[test]
fn the_certificate_is_chosen_by_sni_and_the_first_is_the_default() {
    let up = Upstream::start("u");
    let pki = Pki::new();
    pki.ca("ca");
    pki.cert("a", "DNS:a.test,IP:127.0.0.1", "ca");
    pki.cert("b", "DNS:b.test,DNS:www.b.test", "ca");
    pki.cert("wild", "DNS:*.w.test", "ca");
    let list = format!(
        "{}certs = [{{ {} }}, {{ {} }}]\n",
        pair(&pki, "a"),
        pair(&pki, "b").trim().replace('\n', ", "),
        pair(&pki, "wild").trim().replace('\n', ", ")
    );
    let (port, tls_port, admin) = ports();
    let b = Brace::start_raw(
        &config((port, tls_port, admin), "", &list, &up),
        port,
        admin,
    );
    for (sni, want) in [
        (Some("a.test"), "CN = a"),
        (Some("b.test"), "CN = b"),
        (Some("www.b.test"), "CN = b"),
        (Some("WWW.B.Test"), "CN = b"),
        (Some("x.w.test"), "CN = wild"),
        // A wildcard covers one label only.
        (Some("y.x.w.test"), "CN = a"),
        (Some("w.test"), "CN = a"),
        (Some("unknown.test"), "CN = a"),
        (None, "CN = a"),
    ] {
        assert_eq!(served(tls_port, sni), want, "SNI {sni:?}");
    }
    // A verifying client gets its answer through the certificate for its name.
    let mut s = connect(tls_port, "b.test", client(&pki, "ca", None)).unwrap();
    assert_eq!(get_on(&mut s, "/", "").unwrap().status, 200);
    // Every certificate's expiry is exported.
    let m = b.metrics();
    for subject in ["a", "b", "wild"] {
        let sample = format!(
            "brace_tls_certificate_expiry_timestamp_seconds{{listener=\"127.0.0.1:{tls_port}\",subject=\"{subject}\"}}"
        );
        assert!(metric_value(&m, &sample) > 0.0, "{sample} missing:\n{m}");
    }
}

/// Puts certificate `from` (made for `a.test`) in `live.pem`/`live.key`, key first, each
/// written then renamed, as certbot's deploy hooks and Kubernetes secret updates do.
fn install(pki: &Pki, from: &str) {
    for ext in ["key", "pem"] {
        let tmp = pki.path(&format!("live.{ext}.new"));
        std::fs::copy(pki.path(&format!("{from}.{ext}")), &tmp).unwrap();
        std::fs::rename(&tmp, pki.path(&format!("live.{ext}"))).unwrap();
    }
}

#[test]
fn a_renewed_certificate_is_served_after_a_reload_while_open_connections_go_on() {
    let up = Upstream::start("u");
    let pki = Pki::new();
    pki.ca("ca");
    for v in ["v1", "v2", "v3"] {
        cert_with_subject(pki.dir.path(), v, &format!("/CN=a-{v}"), "DNS:a.test", "ca");
    }
    install(&pki, "v1");
    let (port, tls_port, admin) = ports();
    let tls = pair(&pki, "live");
    let text = |watch: bool| {
        config(
            (port, tls_port, admin),
            &format!("watch_config = {watch}"),
            &tls,
            &up,
        )
    };
    let b = Brace::start_raw(&text(false), port, admin);
    let mut open = connect(tls_port, "a.test", client(&pki, "ca", None)).unwrap();
    assert_eq!(get_on(&mut open, "/", "").unwrap().status, 200);
    assert_eq!(peer_cn(&open), "a-v1");
    let expiry = |subject: &str| {
        b.metric(&format!(
            "brace_tls_certificate_expiry_timestamp_seconds{{listener=\"127.0.0.1:{tls_port}\",subject=\"{subject}\"}}"
        ))
    };
    assert!(expiry("a-v1") > 0.0);

    // SIGHUP.
    install(&pki, "v2");
    b.signal("HUP");
    wait_for("v2 served after SIGHUP", Duration::from_secs(10), || {
        served(tls_port, Some("a.test")) == "CN = a-v2"
    });
    // The open connection was not dropped: it goes on with the certificate it was handed.
    assert_eq!(get_on(&mut open, "/", "").unwrap().status, 200);
    assert_eq!(peer_cn(&open), "a-v1");
    // The metric follows what is served: the old certificate's series is gone.
    assert!(expiry("a-v2") > 0.0);
    assert_eq!(expiry("a-v1"), 0.0, "a-v1's series is left behind");

    // POST /api/reload.
    install(&pki, "v3");
    let r = b.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("server.tls"), "{}", r.text());
    assert_eq!(served(tls_port, Some("a.test")), "CN = a-v3");

    // A key that does not go with the certificate: the reload fails, naming both files,
    // and the listener goes on serving the pair it has.
    std::fs::copy(pki.path("v1.pem"), pki.path("live.pem")).unwrap();
    let r = b.reload();
    assert_ne!(r.status, 200);
    assert!(r.text().contains("does not go with"), "{}", r.text());
    assert_eq!(served(tls_port, Some("a.test")), "CN = a-v3");
    assert_eq!(
        b.metric("brace_config_last_reload_successful"),
        0.0,
        "the failed reload is not reported"
    );
    let mut fresh = connect(tls_port, "a.test", client(&pki, "ca", None)).unwrap();
    assert_eq!(get_on(&mut fresh, "/", "").unwrap().status, 200);

    // The file watcher: a renewal is noticed with no signal and no config change.
    install(&pki, "v3");
    b.rewrite(&text(true));
    assert_eq!(b.reload().status, 200);
    install(&pki, "v1");
    wait_for(
        "v1 served after the file watcher saw it",
        Duration::from_secs(10),
        || served(tls_port, Some("a.test")) == "CN = a-v1",
    );
    assert_eq!(get_on(&mut open, "/", "").unwrap().status, 200);
    assert_eq!(get_on(&mut fresh, "/", "").unwrap().status, 200);
}

#[test]
fn client_certificates_are_required_or_optional_and_their_subject_header_cannot_be_forged() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let pki = Pki::new();
    pki.ca("ca");
    pki.ca("other_ca");
    pki.cert("server", "DNS:a.test", "ca");
    let d = pki.dir.path();
    cert_with_subject(d, "alice", "/CN=alice/O=Acme, Inc.", "DNS:alice", "ca");
    cert_with_subject(
        d,
        "mallory",
        "/CN=alice/O=Acme, Inc.",
        "DNS:alice",
        "other_ca",
    );
    let (port, tls_port, admin) = ports();
    let ca = pki.path("ca.pem");
    let tls = |mode: &str, header: &str| {
        format!(
            "{}client_auth = \"{mode}\"\nclient_ca = \"{}\"\n{header}",
            pair(&pki, "server"),
            ca.display()
        )
    };
    let b = Brace::start_raw(
        &config((port, tls_port, admin), "", &tls("required", ""), &up),
        port,
        admin,
    );
    let forged = "X-Client-Cert-Subject: CN=admin\r\n";
    let attempt = |who: Option<&str>, extra: &str| {
        let mut s = connect(tls_port, "a.test", client(&pki, "ca", who))?;
        get_on(&mut s, "/", extra)
    };

    // Required: no certificate, or one from another CA, gets a 400 that says why (as nginx
    // answers), counted and in the access log, and nothing reaches the backend.
    let before = up.count();
    let r = attempt(None, "").unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("client certificate required"),
        "{}",
        r.text()
    );
    let r = attempt(Some("mallory"), "").unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("client certificate not trusted"),
        "{}",
        r.text()
    );
    assert_eq!(up.count(), before);
    for reason in [
        "client certificate required",
        "client certificate not trusted",
    ] {
        b.wait_metric(
            &format!("brace_requests_refused_total{{reason=\"{reason}\"}}"),
            1.0,
        );
    }

    // A verified certificate: its subject, RFC 4514, goes upstream; a forged one does not.
    let r = attempt(Some("alice"), forged).unwrap();
    assert_eq!(r.status, 200);
    let seen = r.text();
    assert_eq!(seen.matches("x-client-cert-subject").count(), 1, "{seen}");
    assert!(
        seen.contains("x-client-cert-subject: o=acme\\, inc.,cn=alice\r\n"),
        "{seen}"
    );
    // On the plain listener the header is removed whatever a client puts in it.
    let r = send(
        b.addr(),
        format!("GET / HTTP/1.1\r\nHost: a\r\n{forged}x-CLIENT-cert-subject: CN=root\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("x-client-cert-subject"), "{}", r.text());

    // Optional, with another header name, applied by a reload: a client without a
    // certificate is let in without the header; alice's subject goes under the new name.
    b.rewrite(&config(
        (port, tls_port, admin),
        "",
        &tls("optional", "client_cert_header = \"X-SSL-Client-DN\"\n"),
        &up,
    ));
    let r = b.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let anon = attempt(None, "X-SSL-Client-DN: CN=admin\r\n").unwrap();
    assert_eq!(anon.status, 200);
    assert!(!anon.text().contains("x-ssl-client-dn"), "{}", anon.text());
    let r = attempt(Some("alice"), "").unwrap();
    assert!(
        r.text()
            .contains("x-ssl-client-dn: o=acme\\, inc.,cn=alice\r\n"),
        "{}",
        r.text()
    );
    let r = attempt(Some("mallory"), "").unwrap();
    assert_eq!(
        r.status, 400,
        "optional still verifies a certificate it is given"
    );
    assert_no_backend_blamed(&b);
}

#[test]
fn bad_listener_tls_settings_are_refused_with_their_key() {
    let up = Upstream::start("u");
    let pki = Pki::new();
    pki.ca("ca");
    pki.cert("a", "DNS:a.test", "ca");
    pki.cert("b", "DNS:b.test", "ca");
    let cases = [
        (
            format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                pki.path("a.pem").display(),
                pki.path("b.key").display()
            ),
            "server.tls[0].key",
            "does not go with",
        ),
        (
            format!("cert = \"{}\"\n", pki.path("a.pem").display()),
            "server.tls[0].key",
            "cert needs key",
        ),
        (String::new(), "server.tls[0].cert", "no certificate"),
        (
            format!("{}client_auth = \"required\"\n", pair(&pki, "a")),
            "server.tls[0].client_ca",
            "needs client_ca",
        ),
        (
            format!("{}client_auth = \"sometimes\"\n", pair(&pki, "a")),
            "client_auth",
            "unknown variant",
        ),
        (
            format!("{}client_cert_header = \"bad header\"\n", pair(&pki, "a")),
            "server.tls[0].client_cert_header",
            "not a header name",
        ),
        (
            format!(
                "{}certs = [{{ cert = \"{}\", key = \"{}\" }}]\n",
                pair(&pki, "a"),
                pki.path("b.pem").display(),
                pki.path("a.key").display()
            ),
            "server.tls[0].certs[0].key",
            "does not go with",
        ),
    ];
    for (tls, key, why) in cases {
        let text = config((free_port(), free_port(), free_port()), "", &tls, &up);
        let (code, _, err, _) = check(&text);
        assert_eq!(code, 1, "accepted:\n{tls}");
        assert!(err.contains(key) && err.contains(why), "{tls}\n{err}");
    }
}

#[test]
fn a_flood_of_clients_without_a_good_certificate_is_refused_while_a_good_one_gets_in() {
    let up = Upstream::start("u");
    let pki = Pki::new();
    pki.ca("ca");
    pki.ca("other_ca");
    pki.cert("server", "DNS:a.test", "ca");
    pki.cert("alice", "DNS:alice", "ca");
    pki.cert("mallory", "DNS:mallory", "other_ca");
    let (port, tls_port, admin) = ports();
    let tls = format!(
        "{}client_auth = \"required\"\nclient_ca = \"{}\"\n",
        pair(&pki, "server"),
        pki.path("ca.pem").display()
    );
    let b = Brace::start_raw(&config((port, tls_port, admin), "", &tls, &up), port, admin);
    let (anon, bad, good) = (
        client(&pki, "ca", None),
        client(&pki, "ca", Some("mallory")),
        client(&pki, "ca", Some("alice")),
    );
    // 8 clients, 20 new connections each, at the same time: 4 without a certificate, 2 with
    // an untrusted one (120 refusals), 2 with a good one (40 answers).
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let cfg = match i % 4 {
                    0 | 1 => anon.clone(),
                    2 => bad.clone(),
                    _ => good.clone(),
                };
                s.spawn(move || {
                    (0..20)
                        .map(|_| {
                            let mut c = connect(tls_port, "a.test", cfg.clone()).unwrap();
                            get_on(&mut c, "/", "").unwrap().status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), 120);
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 40);
    assert_eq!(up.count(), 40, "a refused request reached the backend");
    b.wait_metric(
        "brace_requests_refused_total{reason=\"client certificate required\"}",
        80.0,
    );
    b.wait_metric(
        "brace_requests_refused_total{reason=\"client certificate not trusted\"}",
        40.0,
    );
    assert_no_backend_blamed(&b);
}

/// A reload that swaps in an expired listener certificate is applied (other settings are not
/// held back by it, as with nginx) but never silently: the reload answer, `brace check` and
/// the process log say it at WARN, and the expiry metric shows a time in the past.
#[test]
fn an_expired_listener_certificate_is_warned_about_on_every_load() {
    let up = Upstream::start("u");
    let pki = Pki::new();
    pki.ca("ca");
    cert_with_subject(pki.dir.path(), "good", "/CN=good", "DNS:a.test", "ca");
    // Self-signed (X.509 v3, with a name), valid until a day before it was made.
    let d = pki.dir.path();
    std::fs::write(d.join("old.ext"), "subjectAltName = DNS:a.test\n").unwrap();
    support::pki::openssl(
        d,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "old.key", "-out", "old.csr",
            "-subj", "/CN=old",
        ],
    );
    support::pki::openssl(
        d,
        &[
            "x509", "-req", "-in", "old.csr", "-signkey", "old.key", "-out", "old.pem", "-days",
            "-1", "-extfile", "old.ext",
        ],
    );
    let (port, tls_port, admin) = ports();
    let text = |name: &str| config((port, tls_port, admin), "", &pair(&pki, name), &up);
    let (code, _, err, _) = check(&text("old"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: server.tls[0]") && err.contains("expired"),
        "{err}"
    );

    let mut b = Brace::start_raw(&text("good"), port, admin);
    b.rewrite(&text("old"));
    let r = b.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    let expiry = b.metric(&format!(
        "brace_tls_certificate_expiry_timestamp_seconds{{listener=\"127.0.0.1:{tls_port}\",subject=\"old\"}}"
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > 0.0 && expiry < now, "{expiry}");
    let log = b.stderr();
    assert!(log.contains("WARN") && log.contains("expired at"), "{log}");
}

/// A TLS client that negotiates HTTP/2 and then closes, or sends garbage instead of the
/// preface, is its own trouble: nothing at ERROR.
#[test]
fn a_tls_client_that_breaks_http2_logs_nothing_at_error() {
    let up = Upstream::start("u");
    let pki = Pki::new();
    pki.ca("localhost");
    let (port, tls_port, admin) = ports();
    let mut b = Brace::start_raw(
        &config((port, tls_port, admin), "", &pair(&pki, "localhost"), &up),
        port,
        admin,
    );
    for input in ["", "garbage that is not an HTTP/2 preface\r\n\r\n"] {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-no_ign_eof",
                "-alpn",
                "h2",
                "-connect",
            ])
            .arg(format!("127.0.0.1:{tls_port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let _ = child.wait();
    }
    assert_eq!(b.get("/").status, 200);
    let log = b.stderr();
    assert!(!log.contains("ERROR"), "{log}");
}
