//! `[server]`, `[admin]`, `[log]` and `[tracing]` validation, in process.

use super::super::tests_support::{load, refused, text};

#[test]
fn listeners_are_checked_for_repeats_overlaps_and_presence() {
    refused(&[
        (
            text(
                "[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]",
                "",
                "",
            ),
            &["server.listen[1]", "listed twice"],
        ),
        (
            text("[server]\nlisten = []", "", ""),
            &["server.listen", "no listener"],
        ),
        (
            text("[server]\nthreads = 2000", "", ""),
            &["server.threads", "at most 1024"],
        ),
        (
            text("[server]\nclient_max_body_size = 0", "", ""),
            &["server.client_max_body_size", "greater than 0"],
        ),
        (
            text("[server]\nmax_request_header_size = 100", "", ""),
            &["server.max_request_header_size", "between 1KiB and 1MiB"],
        ),
    ]);
}

#[test]
fn the_admin_listener_needs_its_own_port_and_a_token_when_exposed() {
    refused(&[
        (
            text(
                "[server]\nlisten = [\"127.0.0.1:8080\"]\n[admin]\nlisten = \"127.0.0.1:8080\"",
                "",
                "",
            ),
            &["admin.listen", "overlaps a proxy listener"],
        ),
        (
            text("[admin]\nlisten = \"0.0.0.0:9901\"", "", ""),
            &["admin.listen", "set admin.token"],
        ),
        (
            text("[admin]\ntoken = \"\"", "", ""),
            &["admin.token", "empty token"],
        ),
    ]);
    let c = load(&text(
        "[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"s3cret\"",
        "",
        "",
    ))
    .unwrap();
    assert_eq!(c.admin.listen.port(), 9901);
}

#[test]
fn log_settings_name_what_is_accepted() {
    refused(&[
        (
            text("[log]\nlevel = \"loud\"", "", ""),
            &["log.level", "expected error, warn, info, debug, trace"],
        ),
        (
            text("[log]\naccess_log = \"\"", "", ""),
            &["log.access_log", "\"off\", \"stdout\" or a file path"],
        ),
    ]);
    assert!(load(&text("[log]\nlevel = \"info,brace=debug\"", "", "")).is_ok());
}

#[test]
fn tracing_needs_an_http_collector_and_a_ratio_in_range() {
    refused(&[
        (
            text("[tracing]\notlp_endpoint = \"https://c:4318\"", "", ""),
            &["tracing.otlp_endpoint", "https is not supported"],
        ),
        (
            text("[tracing]\notlp_endpoint = \"not a url\"", "", ""),
            &["tracing.otlp_endpoint", "is not a URL"],
        ),
        (
            text(
                "[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 2.0",
                "",
                "",
            ),
            &["tracing.sample_ratio", "not between 0 and 1"],
        ),
    ]);
}

#[test]
fn server_defaults_are_what_the_readme_says() {
    let c = load(&text("", "", "")).unwrap();
    assert_eq!(c.server.grace_period, std::time::Duration::from_secs(10));
    assert!(c.server.max_connections > 0);
    assert!(!c.server.h2c);
}
