//! A route's `request_headers` and `response_headers` (issue 30, part 2): fields set and
//! removed both ways over HTTP/1.1, HTTP/2 over TLS and h2c, values from the request's facts
//! (never a raw client value that could split a field); framing fields refused at load.

mod support;
use support::edge::{Edge, PROTOS};
use support::*;

#[test]
fn fields_are_set_and_removed_both_ways_over_every_protocol() {
    let app = Upstream::with_mode(
        "app",
        script(|head, _| {
            (
                200,
                "Server: gunicorn/20\r\nX-Powered-By: PHP\r\nX-Kept: yes\r\n".into(),
                head.as_bytes().to_vec(),
            )
        }),
    );
    let edge = Edge::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"app\"\n\
         request_headers = {{ set = {{ \"X-Env\" = \"prod\", \"X-Origin\" = \"{{scheme}}://{{host}} from {{client_ip}}\" }}, remove = [\"X-Debug\"] }}\n\
         response_headers = {{ set = {{ \"Server\" = \"brace\", \"X-Req\" = \"{{request_id}}\" }}, remove = [\"X-Powered-By\"] }}\n\
         [upstream.app]\nbackends = [\"{}\"]\n",
        app.addr
    ));
    for proto in PROTOS {
        let scheme = if matches!(proto, support::edge::Proto::H2Tls) {
            "https"
        } else {
            "http"
        };
        let args: Vec<String> = [
            "-i",
            "-H",
            "X-Debug: 1",
            "-H",
            "X-Env: staging",
            "-H",
            "X-Request-Id: r-42",
        ]
        .map(String::from)
        .to_vec();
        let (status, text) = edge.curl(proto, "A.Test", "/", &args);
        assert_eq!(status, 200, "{proto:?}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        // What the backend got.
        assert!(body.contains("x-env: prod"), "{proto:?}: {body}");
        assert!(
            !body.contains("staging") && !body.contains("x-debug"),
            "{proto:?}: {body}"
        );
        assert!(
            body.contains(&format!("x-origin: {scheme}://a.test from 127.0.0.1")),
            "{proto:?}: {body}"
        );
        // What the client got.
        assert!(head.contains("server: brace"), "{proto:?}: {head}");
        assert!(
            !head.contains("gunicorn") && !head.contains("x-powered-by"),
            "{proto:?}: {head}"
        );
        assert!(
            head.contains("x-kept: yes") && head.contains("x-req: r-42"),
            "{proto:?}: {head}"
        );
    }
}

#[test]
fn header_rule_settings_are_checked() {
    let route = "[[route]]\nname = \"r\"\nupstream = \"u\"\n{rules}\n[upstream.u]\nbackends = [\"127.0.0.1:9\"]\n";
    for (rules, says) in [
        (
            "request_headers = { set = { \"Host\" = \"x\" } }",
            "frames the message",
        ),
        (
            "request_headers = { remove = [\"Content-Length\"] }",
            "frames the message",
        ),
        (
            "response_headers = { set = { \"Transfer-Encoding\" = \"chunked\" } }",
            "frames the message",
        ),
        (
            "request_headers = { set = { \"bad name\" = \"x\" } }",
            "not a header name",
        ),
        (
            "request_headers = { set = { \"X-A\" = \"{path}\" } }",
            "not a variable",
        ),
        (
            "request_headers = { set = { \"X-A\" = \"{host\" } }",
            "without its",
        ),
        (
            "request_headers = { set = { \"X-A\" = \"a\\r\\nX-Evil: 1\" } }",
            "visible ASCII",
        ),
        (
            "request_headers = { add = { \"X-A\" = \"1\" } }",
            "unknown field",
        ),
    ] {
        let (code, _, err, _) = check(&route.replace("{rules}", rules));
        assert_eq!(code, 1, "{rules}");
        assert!(err.contains(says), "{rules}: {err}");
    }
}

#[test]
fn plain_http_is_redirected_to_https_which_carries_hsts() {
    let app = Upstream::start("app");
    let edge = Edge::start_with(
        &format!(
            "[[route]]\nname = \"main\"\nupstream = \"app\"\n[upstream.app]\nbackends = [\"{}\"]\n",
            app.addr
        ),
        "https_redirect = true\nhsts = \"365d\"\n",
    );
    let to = format!("https://a.test:{}/x?y=1", edge.tls_port);
    for proto in [support::edge::Proto::Http1, support::edge::Proto::H2c] {
        let (status, text) = edge.curl(proto, "A.test", "/x?y=1", &["-i".to_owned()]);
        assert_eq!(status, 308, "{proto:?}");
        assert!(
            text.to_ascii_lowercase()
                .contains(&format!("location: {to}")),
            "{proto:?}: {text}"
        );
    }
    assert_eq!(app.count(), 0);
    // ACME's HTTP-01 challenges stay on plain HTTP.
    let (status, _) = edge.get(
        support::edge::Proto::Http1,
        "a.test",
        "/.well-known/acme-challenge/tok",
    );
    assert_eq!(status, 200);
    // A host brace would not accept is refused, never put into a Location.
    assert_eq!(edge.raw("a.test@evil.test", "/").status, 400);
    // Over TLS: served, with HSTS.
    let (status, text) = edge.curl(
        support::edge::Proto::H2Tls,
        "a.test",
        "/",
        &["-i".to_owned()],
    );
    assert_eq!(status, 200);
    assert!(
        text.contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );
    let (code, _, err, _) = check("[server]\nhttps_redirect = true\n[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9\"]\n");
    assert_eq!(code, 1);
    assert!(err.contains("server.https_redirect"), "{err}");
}
