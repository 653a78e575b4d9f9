use super::*;
use std::time::Duration;

fn config(steps: &[u32]) -> CanaryConfig {
    CanaryConfig {
        upstream: "v2".into(),
        steps: steps.to_vec(),
        interval: Duration::from_secs(10),
        window: Duration::from_secs(10),
        min_requests: 20,
        error_margin_percent: 2,
        latency_ratio: 2.0,
        matching: vec![Match::Header("x-canary".into(), "1".into())],
        sticky: None,
    }
}

/// `n` requests a second on each side for `secs` seconds from `from`: the canary fails
/// `fail_every`-th one (0: never) and takes `canary_ms`; the baseline takes 10 ms.
fn traffic(r: &Rollout, from: u64, secs: u64, fail_every: u64, canary_ms: u64) {
    for s in 0..secs {
        for i in 0..10 {
            let at = from + s * 1000 + i * 50;
            let fail = fail_every > 0 && i % fail_every == 0;
            r.window
                .record(Side::Baseline, false, Duration::from_millis(10), at);
            r.window
                .record(Side::Canary, fail, Duration::from_millis(canary_ms), at);
        }
    }
}

#[test]
fn a_healthy_canary_walks_every_step_and_is_promoted() {
    let r = Rollout::new(&config(&[1, 5, 25, 100]), 0);
    assert_eq!(r.percent(), 1);
    let mut t = 0;
    let mut seen = vec![];
    for _ in 0..6 {
        traffic(&r, t, 10, 0, 10);
        t += 10_000;
        if let Some(tr) = r.tick(t) {
            seen.push((tr.to.phase, tr.percent));
        }
    }
    assert_eq!(
        seen,
        [
            (Phase::Stepping, 5),
            (Phase::Stepping, 25),
            (Phase::Promoted, 100)
        ]
    );
    assert_eq!(r.tick(t + 100_000), None, "promoted stays");
}

#[test]
fn a_failing_canary_is_pulled_back_at_once_and_a_slow_one_too() {
    let r = Rollout::new(&config(&[5, 50]), 0);
    traffic(&r, 0, 3, 3, 10); // a third fail
    let tr = r.tick(3_000).expect("aborted before its interval is up");
    assert_eq!((tr.to.phase, tr.percent), (Phase::Aborted, 0));
    assert!(tr.to.reason.contains("5xx share"), "{}", tr.to.reason);
    assert_eq!(r.percent(), 0);

    let r = Rollout::new(&config(&[5, 50]), 0);
    traffic(&r, 0, 3, 0, 30); // three times the baseline's p99
    let tr = r.tick(3_000).expect("slow is worse");
    assert!(tr.to.reason.contains("p99"), "{}", tr.to.reason);
}

#[test]
fn too_few_requests_hold_the_step_and_noise_is_not_a_regression() {
    let r = Rollout::new(&config(&[5, 50]), 0);
    r.window
        .record(Side::Canary, true, Duration::from_millis(10), 100);
    assert_eq!(
        r.tick(60_000),
        None,
        "one failure of one request judges nothing"
    );
    assert_eq!(r.percent(), 5);
    // 2 ms against 0.5 ms is four times, but under the floor.
    let cfg = config(&[5]);
    let s = |p99_us| Summary {
        requests: 100,
        failures: 0,
        p99: Duration::from_micros(p99_us),
    };
    assert_eq!(judge(&cfg, &s(500), &s(2_000)), Verdict::Healthy);
    assert!(matches!(
        judge(&cfg, &s(5_000), &s(20_000)),
        Verdict::Worse(_)
    ));
    // The baseline's own failures are the bar: 3% against 2% is within 2 points.
    let f = |failures| Summary {
        requests: 100,
        failures,
        p99: Duration::from_millis(1),
    };
    assert_eq!(judge(&cfg, &f(2), &f(3)), Verdict::Healthy);
    assert!(matches!(judge(&cfg, &f(0), &f(3)), Verdict::Worse(_)));
}

#[test]
fn operators_promote_abort_and_resume() {
    let r = Rollout::new(&config(&[5, 50]), 0);
    assert_eq!(r.act(Action::Resume, 1), None, "already running");
    assert_eq!(r.act(Action::Abort, 1).map(|t| t.percent), Some(0));
    assert_eq!(r.act(Action::Abort, 2), None);
    traffic(&r, 0, 3, 1, 10);
    let t = r.act(Action::Resume, 3_000).unwrap();
    assert_eq!((t.to.phase, t.to.step, t.percent), (Phase::Stepping, 0, 5));
    assert_eq!(r.verdict(3_000), Verdict::TooFew, "resumed afresh");
    assert_eq!(r.act(Action::Promote, 4).map(|t| t.percent), Some(100));
}

#[test]
fn requests_split_by_share_match_and_sticky_key() {
    let req = |h: &[(&str, &str)]| {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in h {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    };
    let r = Rollout::new(&config(&[25]), 0);
    let plain = req(&[]);
    let n = (0..4000)
        .filter(|_| r.side(&plain, None) == Side::Canary)
        .count();
    assert!((800..1200).contains(&n), "about a quarter: {n}");
    assert_eq!(r.side(&req(&[("x-canary", "1")]), None), Side::Canary);
    // Aborted: nobody, not even a matching request.
    r.act(Action::Abort, 1);
    assert_eq!(r.side(&req(&[("x-canary", "1")]), None), Side::Baseline);
    // Sticky by client: the same client, the same side, every time.
    let mut cfg = config(&[50]);
    cfg.sticky = Some(HashKey::ClientIp);
    let r = Rollout::new(&cfg, 0);
    for last in 0..50u8 {
        let ip = Some(IpAddr::from([10, 0, 0, last]));
        let first = r.side(&plain, ip);
        assert!((0..10).all(|_| r.side(&plain, ip) == first));
    }
}
