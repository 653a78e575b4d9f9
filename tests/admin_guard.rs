//! The admin listener cannot be driven or read from another web page: in headless Chromium,
//! a page on another origin posts forms and no-cors fetches to reload and clear the cache, and
//! reads the config; nothing happens and nothing is read. A `Host` that does not name the
//! listener (DNS rebinding) gets 403 on the API and the status page, while `/metrics`,
//! `/healthz` and `/readyz` answer any `Host`. Requests without `Origin` (curl, scripts) work.

mod support;
use support::*;

/// A raw request to the admin listener with these header lines.
fn admin(b: &Brace, method: &str, path: &str, fields: &str) -> Response {
    send(
        b.admin(),
        format!(
            "{method} {path} HTTP/1.1\r\n{fields}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

fn cached_brace(up: &Upstream, admin_extra: &str) -> Brace {
    let admin = free_port();
    let port = free_port();
    let cfg = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n{admin_extra}\n\
         [cache]\n{}",
        simple_config("[route.cache]", &[up], "")
    );
    Brace::start_raw(&cfg, port, admin)
}

#[test]
fn the_api_answers_only_hosts_that_name_it_and_changes_only_from_its_own_origin() {
    let up = Upstream::start("u");
    let b = cached_brace(&up, "hosts = [\"brace-admin.internal\"]");
    let port = b.admin().port();
    for (host, want) in [
        ("localhost".to_string(), 200),
        (format!("127.0.0.1:{port}"), 200),
        ("Brace-Admin.Internal".into(), 200),
        ("evil.test".into(), 403),
        (format!("evil.test:{port}"), 403),
        ("127.0.0.1.nip.io".into(), 403),
    ] {
        for path in ["/api/config", "/api/status", "/"] {
            let r = admin(&b, "GET", path, &format!("Host: {host}\r\n"));
            assert_eq!(r.status, want, "{host} {path}: {}", r.text());
            if want == 403 {
                assert!(!r.text().contains("toml"), "nothing of the config leaks");
            }
        }
        // Scrapers and orchestrators use service names.
        for path in ["/metrics", "/healthz", "/readyz"] {
            assert_eq!(
                admin(&b, "GET", path, &format!("Host: {host}\r\n")).status,
                200
            );
        }
    }
    let own = format!("Host: 127.0.0.1:{port}\r\n");
    for (fields, want) in [
        (String::new(), 200),
        (format!("Origin: http://127.0.0.1:{port}\r\n"), 200),
        ("Origin: http://127.0.0.1:8080\r\n".into(), 403),
        ("Origin: null\r\n".into(), 403),
        ("Sec-Fetch-Site: cross-site\r\n".into(), 403),
        (
            "Origin: http://attacker.test\r\nContent-Type: text/plain\r\n".into(),
            403,
        ),
    ] {
        for path in ["/api/reload", "/api/cache/clear"] {
            let r = admin(&b, "POST", path, &format!("{own}{fields}"));
            assert_eq!(r.status, want, "{path} with {fields:?}: {}", r.text());
        }
    }
    assert_eq!(
        b.metric("brace_config_reloads_total{result=\"success\"}"),
        2.0
    );
    // JSON answers are never sniffed as something else; the page is never framed and runs
    // no inline script.
    let r = admin(&b, "GET", "/api/status", &own);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let csp = admin(&b, "GET", "/", &own)
        .header("content-security-policy")
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe-inline';") || !csp.contains("script-src 'unsafe-inline'"));
}

#[test]
fn a_page_on_another_origin_cannot_reload_purge_or_read_the_config_in_a_real_browser() {
    let up = Upstream::with_mode(
        "u",
        script(|_, _| {
            (
                200,
                "Cache-Control: max-age=600\r\n".into(),
                b"page".to_vec(),
            )
        }),
    );
    let b = cached_brace(&up, "");
    assert_eq!(cache_status(&b.get("/page")), "MISS");
    assert_eq!(cache_status(&b.get("/page")), "HIT");
    let target = format!("http://{}", b.admin());
    // The attacker's page: form-encoded and plain-text posts (no preflight), and a read.
    let page = format!(
        r#"<!doctype html><html><body><pre id="out">started</pre>
<iframe name="sink"></iframe>
<form id="f" method="POST" target="sink" action="{target}/api/cache/clear"><input name="x" value="1"></form>
<script>
const out = document.getElementById("out");
document.getElementById("f").submit();
const post = (p) => fetch("{target}" + p, {{method: "POST", mode: "no-cors", body: "x", headers: {{"Content-Type": "text/plain"}}}}).then(() => "sent", (e) => "failed");
Promise.all([post("/api/reload"), post("/api/cache/purge"), post("/api/cache/clear"),
  fetch("{target}/api/config").then((r) => r.text()).then((t) => "read:" + t, (e) => "unreadable")])
  .then((r) => {{ out.textContent = r.join(" "); }});
</script></body></html>"#
    );
    let attacker = Upstream::with_mode(
        "attacker",
        script(move |_, _| {
            (
                200,
                "Content-Type: text/html\r\n".into(),
                page.clone().into_bytes(),
            )
        }),
    );
    let dom = support::browser::rendered(&format!("http://{}/", attacker.addr));
    // What the page's script saw: the posts went out (no-cors), the config stayed unreadable.
    let out = dom
        .split_once("<pre id=\"out\">")
        .and_then(|(_, r)| r.split_once("</pre>"))
        .map(|(o, _)| o)
        .unwrap_or("");
    assert_eq!(out, "sent sent sent unreadable", "{dom}");
    assert!(attacker.count() >= 1);
    // Nothing changed: no reload, the cached page is still there.
    assert_eq!(
        b.metric("brace_config_reloads_total{result=\"success\"}"),
        0.0
    );
    assert_eq!(b.metric("brace_cache_purged_total"), 0.0);
    assert_eq!(cache_status(&b.get("/page")), "HIT");
}

/// Nothing a client does to the admin listener logs at ERROR: a malformed request, a client
/// that leaves before its answer, one that connects and says nothing.
#[test]
fn admin_clients_that_misbehave_log_nothing_at_error() {
    use std::io::Write;
    let up = Upstream::start("u");
    let mut b = cached_brace(&up, "");
    let _ = send(b.admin(), b"GARBAGE\x01\x02 / HTTP/9.9\r\n\r\n");
    let _ = send(
        b.admin(),
        b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
    );
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(b.admin()).unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        drop(s); // gone before the answer
        drop(std::net::TcpStream::connect(b.admin()).unwrap());
    }
    assert_eq!(get(b.admin(), "/healthz").status, 200);
    let log = b.stderr();
    assert!(!log.contains("ERROR"), "{log}");
}
