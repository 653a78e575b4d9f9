//! `[upstream.NAME]` validation, in process.

use super::super::tests_support::{load, refused, text};

#[test]
fn backends_are_addresses_listed_once_with_weights_in_range() {
    refused(&[
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = []\n".into(),
            &["upstream.u.backends", "no backends"],
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"nowhere\"]\n"
                .into(),
            &["expected \"host:port\""],
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n"
                .into(),
            &["listed twice"],
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [{ addr = \"127.0.0.1:1\", weight = 0 }]\n"
                .into(),
            &["weight", "out of range"],
        ),
    ]);
    let c = load(
        "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [{ addr = \"127.0.0.1:1\", weight = 7 }]\n",
    )
    .unwrap();
    assert_eq!(c.upstreams["u"].backends[0].weight.get(), 7);
}

#[test]
fn pool_settings_are_bounded() {
    refused(&[
        (
            text("", "", "keepalive = 100000"),
            &["upstream.u.keepalive", "at most 10000"],
        ),
        (
            text("", "", "panic_threshold = 1.5"),
            &["upstream.u.panic_threshold", "outside 0.0..=1.0"],
        ),
        (
            text("", "", "resolver = \"127.0.0.1:53\""),
            &["upstream.u.resolver", "only used with resolve"],
        ),
        (
            text("", "", "grpc_failure = [\"ok\"]"),
            &["upstream.u.grpc_failure[0]", "not a failure"],
        ),
        (
            text("", "", "grpc_failure = [\"sad\"]"),
            &["not a gRPC status code name"],
        ),
    ]);
}

#[test]
fn a_breaker_that_could_never_trip_is_refused() {
    refused(&[(
        text(
            "",
            "",
            "[upstream.u.circuit_breaker]\nconsecutive_failures = 0\nfailure_ratio = 0.0",
        ),
        &["upstream.u.circuit_breaker", "could never trip"],
    )]);
    let c = load(&text(
        "",
        "",
        "[upstream.u.circuit_breaker]\nconsecutive_failures = 3",
    ))
    .unwrap();
    assert_eq!(
        c.upstreams["u"]
            .circuit_breaker
            .as_ref()
            .unwrap()
            .consecutive_failures,
        3
    );
}

#[test]
fn tls_to_backends_needs_pairs_and_a_valid_sni() {
    refused(&[
        (
            text("", "", "[upstream.u.tls]\nclient_cert = \"c.pem\""),
            &["upstream.u.tls.client_key", "client_cert needs client_key"],
        ),
        (
            text("", "", "[upstream.u.tls]\nsni = \"bad name!\""),
            &["upstream.u.tls.sni", "not a host name"],
        ),
        (
            text("", "", "protocol = \"h2c\"\ntls = true"),
            &["upstream.u.protocol", "h2c is cleartext"],
        ),
    ]);
}

#[test]
fn upstream_defaults_are_what_the_readme_says() {
    let c = load(&text("", "", "")).unwrap();
    let u = &c.upstreams["u"];
    assert_eq!(u.keepalive, 128);
    assert_eq!(u.connect_timeout, std::time::Duration::from_secs(2));
    assert_eq!(u.read_timeout, std::time::Duration::from_secs(30));
    assert_eq!(u.retry.attempts, 1);
    assert!(u.adaptive.enforced());
}
