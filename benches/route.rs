//! Criterion benchmark of the per-request hot path pieces built so far: route matching and
//! host normalisation, on a snapshot built from a realistic config.

use brace::config;
use brace::metrics::Metrics;
use brace::route::normalize_host;
use brace::runtime::build::build;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;

fn config_text() -> String {
    let mut t = String::new();
    for i in 0..20 {
        t += &format!(
            "[[route]]\nname = \"r{i}\"\nhosts = [\"svc{i}.example.com\"]\npath_prefix = \"/\"\nupstream = \"u\"\n\
             [[route]]\nname = \"r{i}-api\"\nhosts = [\"svc{i}.example.com\"]\npath_prefix = \"/api/v{i}/\"\nupstream = \"u\"\n"
        );
    }
    t += "[[route]]\nname = \"wild\"\nhosts = [\"*.example.org\"]\nupstream = \"u\"\n";
    t += "[[route]]\nname = \"any\"\nupstream = \"u\"\n";
    t += "[upstream.u]\nbackends = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n";
    t
}

fn bench_routing(c: &mut Criterion) {
    let loaded = config::parse(&config_text(), "bench", Path::new(".")).expect("valid config");
    let snap = build(
        (&loaded).into(),
        &std::sync::Arc::new(Metrics::new()),
        &Default::default(),
        None,
    );
    let mut g = c.benchmark_group("route");
    g.bench_function("exact host, longest prefix", |b| {
        b.iter(|| {
            snap.router
                .find(black_box("svc7.example.com"), black_box("/api/v7/users/42"))
        })
    });
    g.bench_function("wildcard host", |b| {
        b.iter(|| {
            snap.router
                .find(black_box("a.example.org"), black_box("/x"))
        })
    });
    g.bench_function("no host match, any-host route", |b| {
        b.iter(|| snap.router.find(black_box("other.net"), black_box("/x")))
    });
    g.bench_function("normalize_host with port and capitals", |b| {
        b.iter(|| normalize_host(black_box("API.Example.com:8080")).len())
    });
    g.finish();
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
