//! Routing by host (exact, wildcard, any) and longest path prefix; strip_prefix; weights.

mod support;
use support::*;

fn route(name: &str, hosts: &str, prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nhosts = [{hosts}]\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\n{extra}\n"
    )
}

fn host_get(b: &Brace, host: &str, path: &str) -> Response {
    send(
        b.addr(),
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap()
}

#[test]
fn host_and_prefix_choose_the_route() {
    let (api, web, wild, any, v2) = (
        Upstream::start("api"),
        Upstream::start("web"),
        Upstream::start("wild"),
        Upstream::start("any"),
        Upstream::start("v2"),
    );
    let mut cfg = String::new();
    cfg += &route("api", "\"api.example.com\"", "/", "api", "");
    cfg += &route("api-v2", "\"api.example.com\"", "/v2/", "v2", "");
    cfg += &route("wild", "\"*.example.org\"", "/", "wild", "");
    cfg += &route("web", "\"www.example.com\"", "/app/", "web", "");
    cfg += "[[route]]\nname = \"any\"\nupstream = \"any\"\n";
    for (n, u) in [
        ("api", &api),
        ("web", &web),
        ("wild", &wild),
        ("any", &any),
        ("v2", &v2),
    ] {
        cfg += &format!("[upstream.{n}]\nbackends = [\"{}\"]\n", u.addr);
    }
    let b = Brace::start(&cfg);

    let who = |host: &str, path: &str| {
        let r = host_get(&b, host, path);
        (r.status, r.header("x-upstream").unwrap_or("-").to_owned())
    };
    assert_eq!(who("api.example.com", "/users"), (200, "api".into()));
    assert_eq!(
        who("API.Example.com:8080", "/users"),
        (200, "api".into()),
        "case and port ignored"
    );
    assert_eq!(
        who("api.example.com", "/v2/users"),
        (200, "v2".into()),
        "longest prefix wins"
    );
    assert_eq!(
        who("api.example.com", "/v2"),
        (200, "api".into()),
        "/v2 is not under /v2/"
    );
    assert_eq!(who("a.example.org", "/"), (200, "wild".into()));
    assert_eq!(who("deep.a.example.org", "/x"), (200, "wild".into()));
    assert_eq!(
        who("example.org", "/"),
        (200, "any".into()),
        "wildcard needs a subdomain"
    );
    assert_eq!(who("other.net", "/"), (200, "any".into()));

    // The host group www.example.com exists but has no prefix for /elsewhere: 404, no fallthrough.
    let r = host_get(&b, "www.example.com", "/elsewhere");
    assert_eq!(r.status, 404);
    assert!(
        r.text().contains("www.example.com") && r.text().contains("/elsewhere"),
        "{}",
        r.text()
    );
    assert_eq!(web.count(), 0);
    b.wait_metric(
        "brace_requests_total{code=\"404\",route=\"_unmatched\"}",
        1.0,
    );
}

#[test]
fn no_route_is_404_naming_what_did_not_match() {
    let api = Upstream::start("api");
    let cfg = format!(
        "{}[upstream.api]\nbackends = [\"{}\"]\n",
        route("api", "\"api.example.com\"", "/api/", "api", ""),
        api.addr
    );
    let b = Brace::start(&cfg);
    let r = host_get(&b, "api.example.com", "/other");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "brace: no route for host \"api.example.com\" and path \"/other\"\n"
    );
    assert!(r.header("x-request-id").is_some());
    assert_eq!(host_get(&b, "nope.example.com", "/api/x").status, 404);
    assert_eq!(api.count(), 0);
}

#[test]
fn strip_prefix_rewrites_the_upstream_path_and_keeps_the_query() {
    let up = Upstream::with_mode("u", Mode::Echo);
    let b = Brace::start(&simple_config(
        "path_prefix = \"/api/\"\nstrip_prefix = true",
        &[&up],
        "",
    ));
    let r = b.get("/api/users/7?full=1");
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("get /users/7?full=1 http/1.1"),
        "{}",
        r.text()
    );
    let r = b.get("/api/");
    assert!(r.text().starts_with("get / http/1.1"), "{}", r.text());
}

/// A route's path matches exactly as written by default; a backend that ignores case or
/// drops `;` parameters (Java servlet containers) would see `/Internal/x` and
/// `/echo;x/internal/x` as paths brace routed elsewhere. `path_case_insensitive` makes the
/// denied route catch every case, and `refuse_path_parameters` refuses `;` parameters (400)
/// on a route whose backend would drop them. Nothing reaches a backend it should not.
#[test]
fn case_and_path_parameters_cannot_walk_around_a_route() {
    let inner = Upstream::with_mode("inner", Mode::Echo);
    let outer = Upstream::with_mode("outer", Mode::Echo);
    let b = Brace::start(&format!(
        "{}{}\n[upstream.inner]\nbackends = [\"{}\"]\n{}[upstream.outer]\nbackends = [\"{}\"]\n{}",
        route(
            "internal",
            "",
            "/internal/",
            "inner",
            "deny = [\"0.0.0.0/0\"]\npath_case_insensitive = true\nstrip_prefix = true"
        ),
        route("rest", "", "/", "outer", "refuse_path_parameters = true")
            + &route(
                "api",
                "",
                "/api/",
                "outer",
                "path_case_insensitive = true\nstrip_prefix = true"
            ),
        inner.addr,
        touchy("inner"),
        outer.addr,
        touchy("outer"),
    ));
    for path in ["/internal/x", "/Internal/x", "/INTERNAL/x"] {
        assert_eq!(host_get(&b, "h", path).status, 403, "{path}");
    }
    for path in ["/echo;x/internal/x", "/a;jsessionid=1/b"] {
        assert_eq!(host_get(&b, "h", path).status, 400, "{path}");
    }
    assert_eq!(host_get(&b, "h", "/echo/ok").status, 200);
    // A case-insensitive prefix is stripped as it matched.
    let r = host_get(&b, "h", "/API/users");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("get /users http/1.1"), "{}", r.text());
    assert_eq!(inner.count(), 0);
    assert_eq!(outer.count(), 2);
    assert_no_backend_blamed(&b);
}
