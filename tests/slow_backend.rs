//! Latency-relative outlier detection (issue 28): a backend three times slower than its peers'
//! median gets under 10% of the requests once it is marked slow, and is ejected if it stays
//! so; when every backend is slow alike, nothing is marked.

mod support;

use std::time::Duration;
use support::*;

/// Closed-loop GETs from `threads` threads until `stop()` says so (bounded: 2,000 each).
fn drive(b: &Brace, threads: usize, stop: impl Fn() -> bool + Sync) {
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..2_000 {
                    if stop() {
                        return;
                    }
                    assert_eq!(b.get("/").status, 200);
                }
            });
        }
    });
}

fn config(ups: &[&Upstream], outlier: &str) -> String {
    let list: Vec<String> = ups.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    format!(
        "[[route]]\nname = \"r\"\nupstream = \"app\"\n[upstream.app]\nbackends = [{}]\n[upstream.app.outlier]\n{outlier}\n",
        list.join(", ")
    )
}

#[test]
fn a_backend_three_times_slower_than_its_peers_gets_little_traffic_then_is_ejected() {
    let fast: Vec<Upstream> = (0..3)
        .map(|i| Upstream::with_mode(&format!("f{i}"), Mode::Delay(Duration::from_millis(20))))
        .collect();
    let slow = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(60)));
    let mut all: Vec<&Upstream> = fast.iter().collect();
    all.push(&slow);
    let b = Brace::start(&config(&all, "latency_ejection_after = \"4s\""));
    let slow_gauge = format!(
        "brace_upstream_backend_slow{{backend=\"{}\",upstream=\"app\"}}",
        slow.addr
    );
    let marked = || b.metric(&slow_gauge) == 1.0;
    drive(&b, 4, marked);
    assert!(marked(), "not marked slow after 8,000 requests");
    // Marked: its share of the next 400 requests is under 10%.
    let before = slow.count();
    let total_before: usize = all.iter().map(|u| u.count()).sum();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert_eq!(b.get("/").status, 200);
                }
            });
        }
    });
    let share = (slow.count() - before) as f64
        / (all.iter().map(|u| u.count()).sum::<usize>() - total_before) as f64;
    assert!(share < 0.10, "the slow backend's share {share}");
    // Still slow 4 s later: ejected, with an event saying why.
    let ejected = format!(
        "brace_upstream_backend_ejected{{backend=\"{}\",upstream=\"app\"}}",
        slow.addr
    );
    drive(&b, 2, || b.metric(&ejected) == 1.0);
    assert_eq!(
        b.metric(&ejected),
        1.0,
        "{}",
        get(b.admin(), "/api/events").text()
    );
    let events = get(b.admin(), "/api/events").text();
    assert!(events.contains("the pool's median"), "{events}");
    // Slow, not failing: no request of it was a failure.
    for l in b
        .metrics()
        .lines()
        .filter(|l| l.starts_with("brace_upstream_requests_total{"))
    {
        assert!(
            l.contains("outcome=\"success\"") || l.ends_with(" 0"),
            "{l}"
        );
    }
}

#[test]
fn when_every_backend_is_slow_alike_none_is_marked() {
    let ups: Vec<Upstream> = (0..4)
        .map(|i| Upstream::with_mode(&format!("u{i}"), Mode::Delay(Duration::from_millis(30))))
        .collect();
    let refs: Vec<&Upstream> = ups.iter().collect();
    let b = Brace::start(&config(&refs, ""));
    // Long enough for several comparisons (one a second): 4 threads × 150 requests × 30 ms.
    let done = std::sync::atomic::AtomicUsize::new(0);
    drive(&b, 4, || {
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 600
    });
    let m = b.metrics();
    let marked: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("brace_upstream_backend_slow{") && !l.ends_with(" 0"))
        .collect();
    assert!(marked.is_empty(), "{marked:?}");
}
