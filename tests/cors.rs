//! CORS answered by brace (issue 30, part 3): preflights answered without reaching a backend,
//! allowed origins echoed (never an arbitrary one, never with `*` and credentials), the
//! backend's own CORS fields replaced, over HTTP/1.1, HTTP/2 over TLS and h2c; hostile origins
//! (`null`, look-alike suffixes, odd spellings) get nothing.

mod support;
use support::edge::{Edge, Proto, PROTOS};
use support::*;

const CORS: &str = "[route.cors]\norigins = [\"https://app.example.com\", \"https://*.example.org\"]\n\
     methods = [\"GET\", \"POST\"]\nheaders = [\"Content-Type\", \"X-Token\"]\nexpose_headers = [\"X-Total\"]\n\
     credentials = true\nmax_age = \"10m\"\n";

/// A request over `proto` with these header lines: (status, header fields lower-cased, body).
fn call(
    edge: &Edge,
    proto: Proto,
    method: &str,
    fields: &[&str],
) -> (u16, Vec<(String, String)>, String) {
    let mut args = vec!["-i".to_owned(), "-X".to_owned(), method.to_owned()];
    for f in fields {
        args.extend(["-H".to_owned(), f.to_string()]);
    }
    let (status, text) = edge.curl(proto, "a.test", "/api", &args);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let fields = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, fields, body.to_owned())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn edge(app: &Upstream) -> Edge {
    Edge::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"app\"\n{CORS}[upstream.app]\nbackends = [\"{}\"]\n",
        app.addr
    ))
}

#[test]
fn a_preflight_is_answered_by_brace_over_every_protocol() {
    let app = Upstream::start("app");
    let e = edge(&app);
    for proto in PROTOS {
        let (status, f, _) = call(
            &e,
            proto,
            "OPTIONS",
            &[
                "Origin: https://app.example.com",
                "Access-Control-Request-Method: POST",
                "Access-Control-Request-Headers: content-type, x-token",
            ],
        );
        assert_eq!(status, 204, "{proto:?}");
        assert_eq!(
            field(&f, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(field(&f, "access-control-allow-credentials"), Some("true"));
        assert_eq!(field(&f, "access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(
            field(&f, "access-control-allow-headers"),
            Some("content-type, x-token")
        );
        assert_eq!(field(&f, "access-control-max-age"), Some("600"));
        assert_eq!(field(&f, "vary"), Some("Origin"));
        assert_eq!(
            field(&f, "content-length"),
            None,
            "{proto:?}: a 204 has no length"
        );
        // A subdomain of the wildcard, too.
        let (status, f, _) = call(
            &e,
            proto,
            "OPTIONS",
            &[
                "Origin: https://a.b.example.org",
                "Access-Control-Request-Method: GET",
            ],
        );
        assert_eq!(status, 204);
        assert_eq!(
            field(&f, "access-control-allow-origin"),
            Some("https://a.b.example.org")
        );
    }
    assert_eq!(app.count(), 0, "no preflight reached the backend");
    assert_eq!(
        e.b.metric("brace_cors_preflights_total{result=\"allowed\",route=\"main\"}"),
        6.0
    );
}

#[test]
fn hostile_origins_methods_and_headers_get_nothing() {
    let app = Upstream::start("app");
    let e = edge(&app);
    let refused = [
        ("null", "GET", ""),
        ("https://app.example.com.evil.test", "GET", ""),
        ("https://evilapp.example.com", "GET", ""),
        ("HTTPS://APP.EXAMPLE.COM", "GET", ""),
        ("http://app.example.com", "GET", ""),
        ("https://example.org", "GET", ""),
        ("https://evil.test/.example.org", "GET", ""),
        ("https://app.example.com", "DELETE", ""),
        ("https://app.example.com", "GET", "x-evil"),
        ("https://app.example.com", "GET", "content-type, x-evil"),
    ];
    for proto in PROTOS {
        for (origin, method, headers) in refused {
            let mut fields = vec![
                format!("Origin: {origin}"),
                format!("Access-Control-Request-Method: {method}"),
            ];
            if !headers.is_empty() {
                fields.push(format!("Access-Control-Request-Headers: {headers}"));
            }
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let (status, f, _) = call(&e, proto, "OPTIONS", &fields);
            assert_eq!(status, 403, "{proto:?} {origin} {method} {headers}");
            assert_eq!(field(&f, "access-control-allow-origin"), None, "{origin}");
        }
        // An actual request from a hostile origin: answered, but nothing lets its page read it.
        let (status, f, _) = call(&e, proto, "GET", &["Origin: null"]);
        assert_eq!(status, 200);
        assert_eq!(field(&f, "access-control-allow-origin"), None);
        assert_eq!(field(&f, "access-control-allow-credentials"), None);
    }
    assert_eq!(
        app.count(),
        3,
        "only the actual requests reached the backend"
    );
    assert_eq!(
        e.b.metric("brace_cors_preflights_total{result=\"refused\",route=\"main\"}"),
        30.0
    );
    assert_no_backend_blamed(&e.b);
}

#[test]
fn an_answer_carries_brace_s_cors_fields_and_not_the_backend_s() {
    // The backend says "anyone may read this": brace's policy replaces it.
    let app = Upstream::with_mode(
        "app",
        script(|_, _| {
            (
                200,
                "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\nX-Total: 3\r\n".into(),
                b"data".to_vec(),
            )
        }),
    );
    let e = edge(&app);
    for proto in PROTOS {
        let (status, f, body) = call(&e, proto, "GET", &["Origin: https://app.example.com"]);
        assert_eq!((status, body.as_str()), (200, "data"), "{proto:?}");
        assert_eq!(
            field(&f, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(field(&f, "access-control-expose-headers"), Some("x-total"));
        assert_eq!(
            f.iter()
                .filter(|(k, _)| k == "access-control-allow-origin")
                .count(),
            1,
            "{proto:?}"
        );
        let (_, f, _) = call(&e, proto, "GET", &["Origin: https://evil.test"]);
        assert_eq!(field(&f, "access-control-allow-origin"), None, "{proto:?}");
        assert_eq!(field(&f, "access-control-allow-credentials"), None);
        assert_eq!(field(&f, "vary"), Some("Origin"));
    }
}

#[test]
fn a_preflight_needs_no_password_but_the_request_does() {
    let app = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    // A bcrypt entry (htpasswd -B); no password is sent in this test.
    std::fs::write(
        &users,
        "ann:$2y$05$7hJ4JbJc6ePhWmQ0rr1J3OmVhmEnbU0YxgkaTSe3hC3sDTIvDm1/G\n",
    )
    .unwrap();
    let e = Edge::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"app\"\nbasic_auth = {{ users = {:?} }}\n{CORS}[upstream.app]\nbackends = [\"{}\"]\n",
        users.display().to_string(),
        app.addr
    ));
    let (status, _, _) = call(
        &e,
        Proto::Http1,
        "OPTIONS",
        &[
            "Origin: https://app.example.com",
            "Access-Control-Request-Method: GET",
        ],
    );
    assert_eq!(status, 204);
    let (status, _, _) = call(
        &e,
        Proto::Http1,
        "GET",
        &["Origin: https://app.example.com"],
    );
    assert_eq!(status, 401);
    assert_eq!(app.count(), 0);
}

#[test]
fn cors_settings_are_checked() {
    let head = "[[route]]\nname = \"r\"\nupstream = \"u\"\n[route.cors]\n";
    let up = "[upstream.u]\nbackends = [\"127.0.0.1:9\"]\n";
    for (cors, says) in [
        ("origins = []", "cors.origins"),
        (
            "origins = [\"*\"]\ncredentials = true",
            "any site read answers",
        ),
        ("origins = [\"null\"]", "never allowed"),
        ("origins = [\"https://app.example.com/path\"]", "no path"),
        ("origins = [\"app.example.com\"]", "scheme://host"),
        ("origins = [\"ftp://app.example.com\"]", "scheme://host"),
        ("origins = [\"https://*.\"]", "scheme://host"),
        ("origins = [\"https://a.test:99999\"]", "scheme://host"),
        (
            "origins = [\"https://a.test\"]\nmethods = [\"G T\"]",
            "not a method",
        ),
        (
            "origins = [\"https://a.test\"]\nheaders = [\"a b\"]",
            "not a header name",
        ),
        (
            "origins = [\"https://a.test\"]\nmax_age = \"2d\"",
            "cors.max_age",
        ),
        (
            "origins = [\"https://a.test\"]\nallow_all = true",
            "unknown field",
        ),
    ] {
        let (code, _, err, _) = check(&format!("{head}{cors}\n{up}"));
        assert_eq!(code, 1, "{cors}");
        assert!(err.contains(says), "{cors}: {err}");
    }
    let (code, _, err, _) = check(&format!("{head}origins = [\"*\"]\n{up}"));
    assert_eq!(code, 0, "{err}");
}
