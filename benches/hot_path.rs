//! Criterion benchmarks of per-request decisions: a rate-limit check (allowed and refused), a
//! breaker's admit and outcome, and a backend pick. Run: `cargo bench --bench hot_path`.

use brace::config::{self, BreakerConfig, BreakerMode, FailureOn, LimitKey, RateLimitConfig};
use brace::limit::{KeyValue, Limiter};
use brace::metrics::Metrics;
use brace::upstream::breaker::Breaker;
use brace::upstream::outcome::Outcome;
use brace::upstream::pool::Pool;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

fn limiter(rate: u32, burst: u32) -> Limiter {
    let cfg = RateLimitConfig {
        key: LimitKey::ClientIp,
        rate,
        per: Duration::from_secs(1),
        burst,
        status: 429,
        shadow: false,
        max_keys: 100_000,
        scope: brace::config::Scope::Local,
        on_store_error: brace::config::StoreFallback::Local,
        lease: 1,
    };
    Limiter::new("bench", &cfg, &Arc::new(Metrics::new()), None, None)
}

fn bench_limits(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limit");
    let open = limiter(u32::MAX, u32::MAX);
    let ip = KeyValue::Ip(IpAddr::from([10, 0, 0, 1]));
    let mut t = 1u64;
    g.bench_function("check, allowed", |b| {
        b.iter(|| {
            t += 1;
            open.check(black_box(ip.clone()), t)
        })
    });
    let shut = limiter(1, 1);
    shut.check(ip.clone(), 1);
    g.bench_function("check, refused", |b| {
        b.iter(|| shut.check(black_box(ip.clone()), 2))
    });
    g.finish();
}

fn bench_breaker(c: &mut Criterion) {
    let cfg = BreakerConfig {
        consecutive_failures: 5,
        failure_ratio: 0.5,
        min_requests: 20,
        window: Duration::from_secs(10),
        slow_call_duration: Duration::from_secs(2),
        slow_call_ratio: 0.0,
        open_duration: Duration::from_secs(10),
        max_open_duration: Duration::from_secs(120),
        half_open_requests: 3,
        failure_on: FailureOn::default_set(),
        mode: BreakerMode::Enforce,
    };
    let br = Breaker::default();
    let mut g = c.benchmark_group("breaker");
    g.bench_function("admits (closed)", |b| {
        b.iter(|| br.admits(black_box(1_000)))
    });
    g.bench_function("acquire (closed)", |b| {
        b.iter(|| br.acquire(&cfg, black_box(1_000)))
    });
    let mut t = 0u64;
    g.bench_function("on_outcome success", |b| {
        b.iter(|| {
            t += 1;
            br.on_outcome(&cfg, Outcome::Success, 1, black_box(t))
        })
    });
    g.finish();
}

fn bench_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    for balance in ["round_robin", "least_requests", "p2c"] {
        let text = format!(
            "[[route]]\nname = \"r\"\nupstream = \"p\"\n[upstream.p]\nbalance = \"{balance}\"\n\
             backends = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\", \"127.0.0.1:4\"]\n"
        );
        let loaded = config::parse(&text, "bench", std::path::Path::new(".")).unwrap();
        let pool = Pool::new(
            "p",
            &loaded.config.upstreams["p"],
            &Arc::new(Metrics::new()),
            None,
            Vec::new(),
        );
        g.bench_function(balance, |b| {
            b.iter(|| pool.pick(black_box(b""), &[], 1_000))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_limits, bench_breaker, bench_pick);
criterion_main!(benches);
