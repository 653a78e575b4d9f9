//! Health check, outlier and retry validation, in process.

use super::super::tests_support::{load, refused, text};
use std::time::Duration;

#[test]
fn a_health_check_has_a_path_a_host_and_does_not_overlap_itself() {
    refused(&[
        (
            text("", "", "[upstream.u.health_check]\npath = \"healthz\""),
            &["upstream.u.health_check.path", "must start with '/'"],
        ),
        (
            text("", "", "[upstream.u.health_check]\npath = \"/a b\""),
            &["upstream.u.health_check.path", "control character or space"],
        ),
        (
            text("", "", "[upstream.u.health_check]\nhost = \"a b\""),
            &["upstream.u.health_check.host", "not a host[:port]"],
        ),
        (
            text(
                "",
                "",
                "[upstream.u.health_check]\ninterval = \"1s\"\ntimeout = \"2s\"",
            ),
            &["upstream.u.health_check.timeout", "checks would overlap"],
        ),
    ]);
    let c = load(&text("", "", "[upstream.u.health_check]\npath = \"/up\"")).unwrap();
    assert!(c.upstreams["u"].health_check.is_some());
}

#[test]
fn outlier_ejection_is_bounded() {
    refused(&[
        (
            text("", "", "[upstream.u.outlier]\nlatency_ratio = 1.2"),
            &["upstream.u.outlier.latency_ratio", "from 1.5 to 100"],
        ),
        (
            text(
                "",
                "",
                "[upstream.u.outlier]\nbase_ejection = \"10s\"\nmax_ejection = \"5s\"",
            ),
            &["upstream.u.outlier.max_ejection", "at least base_ejection"],
        ),
    ]);
    // On by default, with the documented values.
    let c = load(&text("", "", "")).unwrap();
    let o = c.upstreams["u"].outlier.clone().unwrap();
    assert_eq!(o.consecutive_failures, 5);
    assert_eq!(o.base_ejection, Duration::from_secs(30));
    assert_eq!(o.max_ejection_percent, 50);
}

#[test]
fn retries_are_bounded_and_name_what_they_retry() {
    refused(&[
        (
            text("", "", "[upstream.u.retry]\nattempts = 11"),
            &["upstream.u.retry.attempts", "over 10"],
        ),
        (
            text("", "", "[upstream.u.retry]\nbudget_percent = 101"),
            &["upstream.u.retry.budget_percent", "over 100"],
        ),
    ]);
    let c = load(&text(
        "",
        "",
        "[upstream.u.retry]\non = [\"timeout\", \"503\"]",
    ))
    .unwrap();
    let on = c.upstreams["u"].retry.on;
    assert!(on.timeout && on.status(503) && !on.status(502) && !on.connect_error);
}
