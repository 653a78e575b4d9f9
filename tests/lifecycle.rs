//! TLS listeners (HTTP/2 offered by ALPN) and pingora's graceful upgrade, with real clients:
//! `openssl` makes a certificate, `curl` speaks TLS and HTTP/2.

mod support;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new(name)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[test]
fn tls_listener_serves_http2_and_http1() {
    assert!(
        tool("openssl") && tool("curl"),
        "this test needs openssl and curl (installed by scripts/setup.sh)"
    );
    let up = Upstream::start("u");
    let port = free_port();
    let tls_port = free_port();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl could not make a certificate");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[[server.tls]]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = \"{}\"\nkey = \"{}\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n{}",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display(),
        simple_config("", &[&up], "")
    );
    let b = Brace::start_raw(&text, port, admin);
    // The certificate's expiry, one day ahead (-days 1), for the alert rule.
    let sample = format!(
        "brace_tls_certificate_expiry_timestamp_seconds{{listener=\"127.0.0.1:{tls_port}\",subject=\"localhost\"}}"
    );
    let expiry = b.metric(&sample);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (expiry - now - 86_400.0).abs() < 600.0,
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
            .unwrap();
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
fn graceful_upgrade_hands_the_listeners_to_a_new_process() {
    let up = Upstream::start("u");
    let old = Brace::start(&simple_config("", &[&up], ""));
    let sock = old.dir.path().join("upgrade.sock");
    // The new process waits for the old one's sockets.
    let mut new = Command::new(BRACE)
        .args(["run", "-c"])
        .arg(&old.config_path)
        .arg("--upgrade")
        .arg("--upgrade-sock")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut old = old;
    assert_eq!(old.get("/").status, 200);
    // Give the new process its socket to wait on, then hand over.
    wait_for(
        "the new process to wait on the upgrade socket",
        Duration::from_secs(10),
        || sock.exists(),
    );
    old.signal("QUIT");
    // Throughout the handover and after it, requests keep being answered.
    let mut answered = 0;
    wait_for("the old process to exit", Duration::from_secs(30), || {
        assert_eq!(
            old.get("/").status,
            200,
            "a request failed during the upgrade"
        );
        answered += 1;
        old.child.try_wait().unwrap().is_some()
    });
    for _ in 0..5 {
        assert_eq!(old.get("/").status, 200, "the new process does not answer");
    }
    assert_eq!(get(old.admin(), "/readyz").status, 200);
    assert!(new.try_wait().unwrap().is_none(), "the new process exited");
    eprintln!("graceful upgrade: {answered} requests answered during the handover");
    let _ = new.kill();
    let _ = new.wait();
}
