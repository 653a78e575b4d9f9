//! What a reload keeps, by identity: a backend is its address, so a change of its weight alone
//! keeps its breaker, ejection and health (issue 32's review found them reset).

mod support;
use support::*;

#[test]
fn a_reload_that_changes_only_a_weight_keeps_the_backends_state() {
    let (bad, good) = (
        Upstream::with_mode("bad", Mode::Status(500, "x")),
        Upstream::start("good"),
    );
    let cfg = |weight: u32| {
        format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\n\
             [upstream.pool]\nbalance = \"round_robin\"\n\
             backends = [{{ addr = \"{}\", weight = {weight} }}, \"{}\"]\n\
             [upstream.pool.retry]\nattempts = 0\n\
             [upstream.pool.circuit_breaker]\nconsecutive_failures = 2\nfailure_ratio = 0.0\nopen_duration = \"60s\"\n",
            bad.addr, good.addr
        )
    };
    let b = Brace::start(&cfg(1));
    let state = trip_breaker(&b, "pool", bad.addr, 4);
    b.rewrite(&cfg(3));
    let r = b.reload();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.metric(&state), 2.0, "a weight edit closed the breaker");
    let up = upstreams(&b);
    let backend = &up["upstreams"]["pool"]["backends"][0];
    assert_eq!(backend["breaker"]["state"], "open", "{up}");
    assert_eq!(backend["weight"], 3, "the new weight is in force: {up}");
    let before = bad.count();
    for _ in 0..6 {
        assert_eq!(b.get("/").status, 200);
    }
    assert_eq!(
        bad.count(),
        before,
        "the open breaker still keeps requests off it"
    );
}

/// An upstream's `keepalive` needs a restart: a reload keeps the running value in the
/// snapshot, so the next reload still reports it pending (it forgot it before: issue 32).
#[test]
fn a_keepalive_change_stays_pending_across_reloads_until_a_restart() {
    let up = Upstream::start("u");
    let b = Brace::start(&simple_config("", &[&up], ""));
    b.rewrite(&simple_config("", &[&up], "keepalive = 16"));
    for round in 0..2 {
        let r = b.reload();
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["not_applied_until_restart"][0]["key"], "upstream.pool.keepalive",
            "reload {round}: {v}"
        );
        assert_eq!(
            b.metric("brace_config_restart_required"),
            1.0,
            "reload {round}"
        );
    }
    assert_eq!(b.get("/").status, 200);
}
