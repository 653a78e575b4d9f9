//! Error pages (issue 30, part 4): brace's own 429, 502, 503 and 504 answered with the
//! operator's HTML page (a route's before the server's), or JSON for a client that asks for
//! JSON, over HTTP/1.1, HTTP/2 over TLS and h2c; `Retry-After` kept; pages re-read on reload.

mod support;
use support::edge::{Edge, PROTOS};
use support::*;

fn pages_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("down.html"), "<h1>We are down</h1>\n").unwrap();
    std::fs::write(
        dir.path().join("shop-down.html"),
        "<h1>The shop is closed</h1>\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("busy.html"), "<h1>Slow down</h1>\n").unwrap();
    dir
}

fn config(dir: &std::path::Path, dead: std::net::SocketAddr, live: &Upstream) -> String {
    let f = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    format!(
        "[[route]]\nname = \"site\"\nhosts = [\"a.test\"]\nupstream = \"dead\"\n\
         [[route]]\nname = \"shop\"\nhosts = [\"b.test\"]\nupstream = \"dead\"\nerror_pages = {{ 502 = {} }}\n\
         [[route]]\nname = \"api\"\nhosts = [\"c.test\"]\nupstream = \"live\"\nrate_limits = [\"tiny\"]\n\
         [rate_limit.tiny]\nkey = \"client_ip\"\nrate = 1\nper = \"1h\"\nburst = 1\n\
         [upstream.dead]\nbackends = [\"{dead}\"]\n[upstream.live]\nbackends = [\"{}\"]\n",
        f("shop-down.html"),
        live.addr
    )
}

fn server_pages(dir: &std::path::Path) -> String {
    let f = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    format!(
        "error_pages = {{ 502 = {}, 503 = {}, 429 = {} }}\n",
        f("down.html"),
        f("down.html"),
        f("busy.html")
    )
}

#[test]
fn brace_s_own_errors_show_the_operator_s_pages_over_every_protocol() {
    let dir = pages_dir();
    let dead = Upstream::start("dead");
    let dead_addr = dead.addr;
    dead.stop();
    let live = Upstream::start("live");
    let edge = Edge::start_with(
        &config(dir.path(), dead_addr, &live),
        &server_pages(dir.path()),
    );
    for proto in PROTOS {
        // A browser gets the server's page, and the shop's own on its route.
        let html = ["Accept: text/html,application/xhtml+xml,*/*;q=0.8"];
        let (s, body) = edge.get_with(proto, "a.test", "/", &html);
        assert_eq!(
            (s, body.as_str()),
            (502, "<h1>We are down</h1>\n"),
            "{proto:?}"
        );
        let (s, body) = edge.get_with(proto, "b.test", "/", &html);
        assert_eq!(
            (s, body.as_str()),
            (502, "<h1>The shop is closed</h1>\n"),
            "{proto:?}"
        );
        // A client that wants JSON gets JSON, with the request's id.
        let (s, body) = edge.get_with(
            proto,
            "a.test",
            "/",
            &["Accept: application/json", "X-Request-Id: req-7"],
        );
        assert_eq!(s, 502, "{proto:?}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(
            (v["status"].clone(), v["request_id"].clone()),
            (502.into(), "req-7".into())
        );
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("could not get a valid response"),
            "{v}"
        );
    }
    // The 429 page keeps Retry-After; a status without a page keeps brace's text.
    let first = edge.raw("c.test", "/");
    assert_eq!(first.status, 200);
    let limited = edge.raw("c.test", "/");
    assert_eq!(
        (limited.status, limited.text()),
        (429, "<h1>Slow down</h1>\n".to_owned())
    );
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        limited.header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn a_503_page_keeps_retry_after_and_a_changed_page_is_read_on_reload() {
    let dir = pages_dir();
    let app = Upstream::start("app");
    let page = dir.path().join("down.html");
    let b = Brace::start_with(
        &simple_config("", &[&app], ""),
        &format!(
            "error_pages = {{ 503 = {:?} }}\n",
            page.display().to_string()
        ),
    );
    // The only backend drained: no backend is available.
    let r = send(
        b.admin(),
        format!(
            "POST /api/upstreams/pool/backends/{}/drain HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            app.addr
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = b.get("/");
    assert_eq!(
        (r.status, r.text()),
        (503, "<h1>We are down</h1>\n".to_owned())
    );
    assert!(r.header("retry-after").is_some());
    std::fs::write(&page, "<h1>Back soon</h1>\n").unwrap();
    assert_eq!(b.reload().status, 200);
    assert_eq!(b.get("/").text(), "<h1>Back soon</h1>\n");
}

#[test]
fn error_page_settings_are_checked() {
    let dir = pages_dir();
    let big = dir.path().join("big.html");
    std::fs::write(&big, "x".repeat(300 * 1024)).unwrap();
    let route = "[[route]]\nname = \"r\"\nupstream = \"u\"\n{pages}\n[upstream.u]\nbackends = [\"127.0.0.1:9\"]\n";
    let down = dir.path().join("down.html").display().to_string();
    for (pages, says) in [
        (
            format!("error_pages = {{ 500 = {down:?} }}"),
            "429, 502, 503 or 504",
        ),
        (
            format!("error_pages = {{ nope = {down:?} }}"),
            "429, 502, 503 or 504",
        ),
        (
            "error_pages = { 503 = \"/nonexistent/page.html\" }".to_owned(),
            "error_pages.503",
        ),
        (
            format!("error_pages = {{ 503 = {:?} }}", big.display().to_string()),
            "at most 256 KiB",
        ),
    ] {
        let (code, _, err, _) = check(&route.replace("{pages}", &pages));
        assert_eq!(code, 1, "{pages}");
        assert!(err.contains(says), "{pages}: {err}");
    }
}

fn post(b: &Brace, path: &str, body: &str) -> Response {
    admin_post(b, path, "", body)
}

#[test]
fn maintenance_answers_503_with_the_page_except_to_testers_over_every_protocol() {
    let dir = pages_dir();
    let app = Upstream::start("app");
    let page = dir.path().join("down.html").display().to_string();
    // 127.0.0.2/32 is the testers' network; the tests' clients come from 127.0.0.1.
    let edge = Edge::start(&format!(
        "[[route]]\nname = \"shop\"\nupstream = \"app\"\nmaintenance = true\nmaintenance_allow = [\"127.0.0.2/32\"]\n\
         error_pages = {{ 503 = {page:?} }}\n[upstream.app]\nbackends = [\"{}\"]\n",
        app.addr
    ));
    for proto in PROTOS {
        let (s, body) = edge.get(proto, "a.test", "/");
        assert_eq!(
            (s, body.as_str()),
            (503, "<h1>We are down</h1>\n"),
            "{proto:?}"
        );
    }
    let r = edge.raw("a.test", "/");
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(app.count(), 0, "nothing reached the backend");
    // A tester's address gets through, over every protocol.
    let from_tester = ["--interface".to_owned(), "127.0.0.2".to_owned()];
    for proto in PROTOS {
        let (s, body) = edge.curl(proto, "a.test", "/", &from_tester);
        assert_eq!((s, body.as_str()), (200, "hello from app\n"), "{proto:?}");
    }
    // Ended through the admin API, without a reload; a reload that leaves `maintenance` alone
    // does not bring it back.
    let r = post(
        &edge.b,
        "/api/routes/shop/maintenance",
        "{\"on\": false, \"reason\": \"done\"}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for proto in PROTOS {
        assert_eq!(edge.get(proto, "a.test", "/").0, 200, "{proto:?}");
    }
    // Bad commands change nothing.
    for (path, body, status) in [
        ("/api/routes/nope/maintenance", "{\"on\": true}", 404),
        ("/api/routes/shop/maintenance", "{\"on\": \"yes\"}", 400),
        ("/api/routes/shop/maintenance", "", 400),
    ] {
        assert_eq!(post(&edge.b, path, body).status, status, "{path} {body}");
    }
    assert_eq!(edge.raw("a.test", "/").status, 200);
}

#[test]
fn maintenance_set_on_one_instance_reaches_the_fleet() {
    let redis = support::redis::Redis::start();
    let app = Upstream::start("app");
    let fleet = redis.fleet(&["one", "two"], &simple_config("", &[&app], ""));
    let r = post(&fleet[0], "/api/routes/main/maintenance", "{\"on\": true}");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for(
        "the other instance",
        std::time::Duration::from_secs(10),
        || fleet[1].get("/").status == 503,
    );
    let r = post(&fleet[1], "/api/routes/main/maintenance", "{\"on\": false}");
    assert_eq!(r.status, 200);
    wait_for(
        "both to serve again",
        std::time::Duration::from_secs(10),
        || fleet.iter().all(|f| f.get("/").status == 200),
    );
}
