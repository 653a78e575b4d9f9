//! Circuit breakers and max_in_flight against real upstreams; the upstream's own request
//! counter proves what reached it.

mod support;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn breaker_config(backends: &[&Upstream], breaker: &str, extra: &str) -> String {
    simple_config(
        "",
        backends,
        // Round robin: which backend gets each request is part of what these tests count.
        &format!("balance = \"round_robin\"\n{extra}\n[upstream.pool.retry]\nattempts = 0\n[upstream.pool.circuit_breaker]\n{breaker}\n"),
    )
}

fn state(b: &Brace, u: &Upstream) -> f64 {
    b.metric(&format!(
        "brace_circuit_breaker_state{{backend=\"{}\",upstream=\"pool\"}}",
        u.addr
    ))
}

fn transitions(b: &Brace, u: &Upstream, to: &str, reason: &str) -> f64 {
    b.metric(&format!(
        "brace_circuit_breaker_transitions_total{{backend=\"{}\",reason=\"{reason}\",to=\"{to}\",upstream=\"pool\"}}",
        u.addr
    ))
}

#[test]
fn trips_blocks_then_lets_exactly_the_trial_calls_through_and_closes() {
    let (bad, good) = (
        Upstream::with_mode("bad", Mode::Status(500, "boom")),
        Upstream::start("good"),
    );
    let b = Brace::start(&breaker_config(
        &[&bad, &good],
        "consecutive_failures = 3\nfailure_ratio = 0.0\nopen_duration = \"1s\"\nhalf_open_requests = 2",
        "",
    ));
    for _ in 0..6 {
        b.get("/");
    }
    assert_eq!(bad.count(), 3);
    wait_for("breaker open", Duration::from_secs(5), || {
        state(&b, &bad) == 2.0
    });
    assert_eq!(transitions(&b, &bad, "open", "consecutive_failures"), 1.0);
    for _ in 0..20 {
        assert_eq!(b.get("/").status, 200);
    }
    assert_eq!(bad.count(), 3, "an open breaker let a request through");

    // Recovering but slow: the trial calls stay in flight long enough to count them.
    bad.set(Mode::Delay(Duration::from_millis(1500)));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = b.addr();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(15);
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    let _ = try_get(addr, "/");
                }
            })
        })
        .collect();
    wait_for("two trial calls", Duration::from_secs(10), || {
        bad.count() == 5
    });
    for _ in 0..10 {
        assert_eq!(b.get("/").header("x-upstream"), Some("good"));
    }
    assert_eq!(bad.count(), 5, "more than half_open_requests trial calls");
    wait_for("breaker closed", Duration::from_secs(10), || {
        state(&b, &bad) == 0.0
    });
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(transitions(&b, &bad, "half_open", "open_elapsed"), 1.0);
    assert_eq!(transitions(&b, &bad, "closed", "probe_succeeded"), 1.0);
}

#[test]
fn whole_pool_open_is_503_with_retry_after_without_touching_upstreams() {
    let bad = Upstream::with_mode("bad", Mode::Status(500, "boom"));
    let b = Brace::start(&breaker_config(
        &[&bad],
        "consecutive_failures = 2\nfailure_ratio = 0.0\nopen_duration = \"5s\"\nmax_open_duration = \"1m\"",
        "",
    ));
    b.get("/");
    b.get("/");
    wait_for("breaker open", Duration::from_secs(5), || {
        state(&b, &bad) == 2.0
    });
    let r = b.get("/");
    assert_eq!(r.status, 503);
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((4..=5).contains(&ra), "retry-after {ra}");
    assert_eq!(bad.count(), 2);
    b.wait_metric(
        "brace_circuit_breaker_rejected_total{upstream=\"pool\"}",
        1.0,
    );
    let up = upstreams(&b);
    assert_eq!(
        up["upstreams"]["pool"]["backends"][0]["breaker"]["state"],
        "open"
    );
}

#[test]
fn a_failed_probe_reopens_for_twice_as_long() {
    let bad = Upstream::with_mode("bad", Mode::Status(500, "boom"));
    let b = Brace::start(&breaker_config(
        &[&bad],
        "consecutive_failures = 1\nfailure_ratio = 0.0\nopen_duration = \"1s\"\nmax_open_duration = \"1m\"\nhalf_open_requests = 1",
        "",
    ));
    b.get("/");
    wait_for("breaker open", Duration::from_secs(5), || {
        state(&b, &bad) == 2.0
    });
    // Poll until the open second is over and the trial call fails.
    wait_for("the probe to fail", Duration::from_secs(5), || {
        b.get("/");
        transitions(&b, &bad, "open", "probe_failed") == 1.0
    });
    let r = b.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("2"), "doubled open period");
}

#[test]
fn failure_ratio_trips_on_its_own() {
    let flaky = Upstream::with_mode("flaky", Mode::Alternate(503));
    let b = Brace::start(&breaker_config(
        &[&flaky],
        "consecutive_failures = 0\nfailure_ratio = 0.5\nmin_requests = 10\nwindow = \"30s\"",
        "",
    ));
    for _ in 0..9 {
        b.get("/");
    }
    b.wait_metric("brace_requests_total{code=\"200\",route=\"main\"}", 4.0);
    assert_eq!(state(&b, &flaky), 0.0, "tripped before min_requests");
    b.get("/");
    wait_for("breaker open", Duration::from_secs(5), || {
        state(&b, &flaky) == 2.0
    });
    assert_eq!(transitions(&b, &flaky, "open", "failure_ratio"), 1.0);
}

#[test]
fn slow_calls_trip_on_their_own() {
    let slow = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(150)));
    let b = Brace::start(&breaker_config(
        &[&slow],
        "consecutive_failures = 0\nfailure_ratio = 0.0\nmin_requests = 5\nslow_call_duration = \"100ms\"\nslow_call_ratio = 0.8",
        "",
    ));
    for _ in 0..5 {
        assert_eq!(b.get("/").status, 200);
    }
    wait_for("breaker open", Duration::from_secs(5), || {
        state(&b, &slow) == 2.0
    });
    assert_eq!(transitions(&b, &slow, "open", "slow_calls"), 1.0);
}

#[test]
fn shadow_mode_counts_but_blocks_nothing() {
    let bad = Upstream::with_mode("bad", Mode::Status(500, "boom"));
    let b = Brace::start(&breaker_config(
        &[&bad],
        "consecutive_failures = 3\nmode = \"shadow\"",
        "",
    ));
    for _ in 0..10 {
        assert_eq!(b.get("/").status, 500);
    }
    assert_eq!(bad.count(), 10);
    b.wait_metric(
        &format!(
            "brace_circuit_breaker_shadow_trips_total{{backend=\"{}\",reason=\"consecutive_failures\",upstream=\"pool\"}}",
            bad.addr
        ),
        3.0,
    );
    assert_eq!(state(&b, &bad), 0.0);
}

#[test]
fn max_in_flight_answers_503_at_once_beyond_the_limit() {
    let slow = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(800)));
    let b = Brace::start(&simple_config("", &[&slow], "max_in_flight = 2"));
    let addr = b.addr();
    let handles: Vec<_> = (0..5)
        .map(|_| std::thread::spawn(move || (get(addr, "/").status, Instant::now())))
        .collect();
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap().0).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503, 503, 503]);
    assert_eq!(slow.count(), 2);
    b.wait_metric(
        "brace_upstream_in_flight_rejected_total{upstream=\"pool\"}",
        3.0,
    );
}

/// `n` requests from 8 clients; all must succeed. Returns which backend served each.
fn run_load(b: &Brace, n: usize) -> Vec<String> {
    let addr = b.addr();
    let per = n / 8;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                (0..per)
                    .map(|_| {
                        let r = get(addr, "/");
                        (r.header("x-upstream").unwrap_or("-").to_owned(), r.status)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(all.iter().all(|(_, s)| *s == 200));
    all.into_iter().map(|(u, _)| u).collect()
}

#[test]
fn one_slow_backend_does_not_drag_the_others_down() {
    let ups: Vec<Upstream> = (0..3).map(|i| Upstream::start(&format!("u{i}"))).collect();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let b = Brace::start(&simple_config(
        "",
        &refs,
        "balance = \"least_requests\"\n\
         [upstream.pool.circuit_breaker]\nconsecutive_failures = 0\nfailure_ratio = 0.0\nmin_requests = 5\n\
         slow_call_duration = \"200ms\"\nslow_call_ratio = 0.5\nopen_duration = \"30s\"\n",
    ));
    let served = run_load(&b, 400);
    assert!(
        served.iter().any(|u| u == "u2"),
        "u2 served nothing before it slowed"
    );
    ups[2].set(Mode::Delay(Duration::from_millis(500)));
    let before = ups[2].count();
    run_load(&b, 400);
    let slow_served = ups[2].count() - before;
    // Timing is the benches' business (benches/load/faults); here, where the work went.
    // Round robin would send it a third (133); least_requests starves it of new work.
    assert!(
        slow_served <= 60,
        "the slow backend still got {slow_served} of 400"
    );
}
