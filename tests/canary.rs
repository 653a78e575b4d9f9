//! Canary releases (issue 29, part 1): a route sends a share of its requests to another
//! upstream, steps the share up while the canary does as well as the baseline, and pulls it
//! back to 0% at once when it fails more or is much slower; operators promote, abort and
//! resume; a header sends chosen requests to it over every protocol; the state survives a
//! reload and reaches a fleet.

mod support;
use std::time::Duration;
use support::edge::{Edge, PROTOS};
use support::redis::Redis;
use support::*;

/// A route `main` on `stable`, with a canary on `v2` and these extra `[route.canary]` lines
/// (`interval` among them).
fn config(stable: &Upstream, v2: &Upstream, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"main\"\nupstream = \"stable\"\n\
         [route.canary]\nupstream = \"v2\"\nsteps = [10, 50]\nwindow = \"5s\"\nmin_requests = 5\n{extra}\n\
         [upstream.stable]\nbackends = [\"{}\"]\n[upstream.v2]\nbackends = [\"{}\"]\n",
        stable.addr, v2.addr
    )
}

fn canary(b: &Brace) -> serde_json::Value {
    let s: serde_json::Value = serde_json::from_slice(&get(b.admin(), "/api/status").body).unwrap();
    s["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "main")
        .unwrap()["canary"]
        .clone()
}

/// Sends requests (ten at a time) until `done` holds, within `deadline`; the statuses seen.
fn drive(b: &Brace, what: &str, deadline: Duration, mut done: impl FnMut() -> bool) -> Vec<u16> {
    let mut seen = Vec::new();
    wait_for(what, deadline, || {
        for _ in 0..10 {
            seen.push(b.get("/").status);
        }
        done()
    });
    seen
}

fn post(b: &Brace, path: &str, body: &str) -> Response {
    admin_post(b, path, "", body)
}

#[test]
fn a_healthy_canary_walks_through_its_steps_and_is_promoted() {
    let (stable, v2) = (Upstream::start("stable"), Upstream::start("v2"));
    let b = Brace::start(&config(&stable, &v2, "interval = \"1s\""));
    assert_eq!(canary(&b)["percent"], 10);
    let seen = drive(&b, "promotion", Duration::from_secs(60), || {
        canary(&b)["phase"] == "promoted"
    });
    assert!(seen.iter().all(|s| *s == 200));
    let transitions = |to: &str| {
        b.metric(&format!(
            "brace_canary_transitions_total{{route=\"main\",to=\"{to}\"}}"
        ))
    };
    // The transition is counted just after the state the status page read changed.
    wait_for(
        "the promotion to be counted",
        Duration::from_secs(10),
        || transitions("promoted") == 1.0,
    );
    assert_eq!((transitions("step"), transitions("aborted")), (1.0, 0.0));
    b.wait_metric("brace_canary_percent{route=\"main\"}", 100.0);
    // Promoted: every request goes to the canary.
    for _ in 0..10 {
        assert_eq!(b.get("/").text(), "hello from v2\n");
    }
    assert!(
        b.metric("brace_canary_requests_total{result=\"ok\",route=\"main\",side=\"canary\"}") > 0.0
    );
}

#[test]
fn a_canary_that_fails_a_third_of_its_requests_is_pulled_back_at_once() {
    let stable = Upstream::start("stable");
    let v2 = Upstream::with_mode(
        "v2",
        script(|_, n| match n % 3 {
            0 => (500, String::new(), b"broken\n".to_vec()),
            _ => (200, String::new(), b"hello from v2\n".to_vec()),
        }),
    );
    // A long interval: only the analysis can move it.
    let b = Brace::start(&config(&stable, &v2, "interval = \"1h\""));
    let seen = drive(&b, "the abort", Duration::from_secs(60), || {
        canary(&b)["phase"] == "aborted"
    });
    let failed = seen.iter().filter(|s| **s == 500).count();
    let c = canary(&b);
    assert_eq!(c["percent"], 0);
    assert!(c["reason"].as_str().unwrap().contains("5xx share"), "{c}");
    // Few clients saw the canary's failures: it had a tenth of the traffic, briefly.
    assert!(failed * 10 <= seen.len(), "{failed} of {}", seen.len());
    // Pulled back: nothing goes to it any more.
    let before = v2.count();
    for _ in 0..20 {
        assert_eq!(b.get("/").text(), "hello from stable\n");
    }
    assert_eq!(v2.count(), before);
    b.wait_metric(
        "brace_canary_transitions_total{route=\"main\",to=\"aborted\"}",
        1.0,
    );
    let events = get(b.admin(), "/api/events").text();
    assert!(
        events.contains("\"kind\": \"canary\"") && events.contains("\"level\": \"warn\""),
        "{events}"
    );
    // The status page names it and says why.
    let page = support::browser::rendered(&format!("http://{}/", b.admin()));
    assert!(
        page.contains("canary v2: 0% aborted") && page.contains("5xx share"),
        "{page}"
    );

    // An operator resumes it (fixed): it starts over at the first step.
    v2.set(Mode::Ok);
    let r = post(&b, "/api/routes/main/canary", "{\"action\": \"resume\"}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(canary(&b)["phase"], "stepping");
    assert_eq!(canary(&b)["percent"], 10);
}

#[test]
fn a_canary_that_is_only_slower_is_caught() {
    let stable = Upstream::start("stable");
    let v2 = Upstream::with_mode("v2", Mode::Delay(Duration::from_millis(40)));
    let b = Brace::start(&config(&stable, &v2, "interval = \"1h\""));
    drive(&b, "the abort", Duration::from_secs(60), || {
        canary(&b)["phase"] == "aborted"
    });
    let c = canary(&b);
    assert!(c["reason"].as_str().unwrap().contains("p99"), "{c}");
    assert_no_backend_blamed(&b);
}

#[test]
fn a_header_chooses_the_canary_only_where_the_operator_allows_it() {
    let (stable, v2) = (Upstream::start("stable"), Upstream::start("v2"));
    // One route with a header match, one without; otherwise a 1% share drawn by the client's
    // address, which puts 127.0.0.1 on the baseline (its draw is 6635 of 10,000).
    let body = |name: &str, hosts: &str, matching: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\nhosts = [\"{hosts}\"]\nupstream = \"stable\"\n\
             [route.canary]\nupstream = \"v2\"\nsteps = [1]\ninterval = \"1h\"\nsticky = \"client_ip\"\n{matching}\n"
        )
    };
    let edge = Edge::start(&format!(
        "{}{}[upstream.stable]\nbackends = [\"{}\"]\n[upstream.v2]\nbackends = [\"{}\"]\n",
        body(
            "open",
            "a.test",
            "match_header = { name = \"X-Canary\", value = \"1\" }"
        ),
        body("closed", "b.test", ""),
        stable.addr,
        v2.addr
    ));
    for proto in PROTOS {
        for _ in 0..3 {
            let (s, body) = edge.get_with(proto, "a.test", "/", &["X-Canary: 1"]);
            assert_eq!((s, body.as_str()), (200, "hello from v2\n"), "{proto:?}");
            // Another value, or the header on a route that did not ask for it: the share decides.
            let v2_before = v2.count();
            let hits = [
                edge.get_with(proto, "a.test", "/", &["X-Canary: yes"]),
                edge.get_with(proto, "b.test", "/", &["X-Canary: 1"]),
            ];
            let to_v2 = v2.count() - v2_before;
            assert!(hits.iter().all(|(s, _)| *s == 200));
            assert_eq!(to_v2, 0, "{proto:?}: forged requests reached v2");
        }
    }
    // Aborted: a matching request goes to the baseline too.
    let r = send(
        edge.b.admin(),
        b"POST /api/routes/open/canary HTTP/1.1\r\nHost: localhost\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{\"action\":\"abort\"}\n",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    for proto in PROTOS {
        assert_eq!(
            edge.get_with(proto, "a.test", "/", &["X-Canary: 1"]).1,
            "hello from stable\n"
        );
    }
}

#[test]
fn operators_steer_it_a_reload_keeps_it_and_bad_commands_are_refused() {
    let (stable, v2) = (Upstream::start("stable"), Upstream::start("v2"));
    let b = Brace::start(&config(&stable, &v2, "interval = \"1h\""));
    for (path, body, status, says) in [
        (
            "/api/routes/nope/canary",
            "{\"action\": \"abort\"}",
            404,
            "has no canary",
        ),
        (
            "/api/routes/main/canary",
            "{\"action\": \"explode\"}",
            400,
            "unknown variant",
        ),
        ("/api/routes/main/canary", "", 400, "action"),
        (
            "/api/routes/main/canary",
            "{\"action\": \"abort\", \"x\": 1}",
            400,
            "unknown field",
        ),
    ] {
        let r = post(&b, path, body);
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert!(r.text().contains(says), "{}", r.text());
    }
    assert_eq!(get(b.admin(), "/api/routes/main/canary").status, 405);
    assert_eq!(canary(&b)["phase"], "stepping");

    let r = post(&b, "/api/routes/main/canary", "{\"action\": \"promote\"}");
    assert_eq!(r.status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["percent"],
        100
    );
    // A reload that leaves [route.canary] alone keeps the rollout where it is...
    b.rewrite(
        &config(&stable, &v2, "interval = \"1h\"")
            .replace("name = \"main\"", "name = \"main\"\ntimeout = \"20s\""),
    );
    assert_eq!(b.reload().status, 200);
    assert_eq!(canary(&b)["phase"], "promoted");
    // ... and one that changes it starts the rollout over.
    b.rewrite(&config(&stable, &v2, "interval = \"2h\""));
    assert_eq!(b.reload().status, 200);
    assert_eq!(
        (canary(&b)["phase"].clone(), canary(&b)["percent"].clone()),
        ("stepping".into(), 10.into())
    );
}

#[test]
fn an_abort_on_one_instance_pulls_the_canary_back_across_the_fleet() {
    let redis = Redis::start();
    let (stable, v2) = (Upstream::start("stable"), Upstream::start("v2"));
    let fleet: Vec<Brace> = ["one", "two"]
        .iter()
        .map(|id| {
            Brace::start(&format!(
                "[cluster]\nredis = \"{}\"\ninstance_id = \"{id}\"\nheartbeat = \"200ms\"\n\n{}",
                redis.url(),
                config(&stable, &v2, "interval = \"1h\"")
            ))
        })
        .collect();
    wait_for(
        "both instances to reach the store",
        Duration::from_secs(10),
        || {
            fleet
                .iter()
                .all(|f| f.metric("brace_cluster_connected") == 1.0)
        },
    );
    let r = post(
        &fleet[0],
        "/api/routes/main/canary",
        "{\"action\": \"abort\"}",
    );
    assert_eq!(r.status, 200);
    wait_for(
        "the other instance to abort",
        Duration::from_secs(10),
        || canary(&fleet[1])["phase"] == "aborted",
    );
    let r = post(
        &fleet[1],
        "/api/routes/main/canary",
        "{\"action\": \"promote\"}",
    );
    assert_eq!(r.status, 200);
    wait_for(
        "the first instance to promote",
        Duration::from_secs(10),
        || canary(&fleet[0])["phase"] == "promoted",
    );
    assert_eq!(fleet[0].get("/").text(), "hello from v2\n");
}

#[test]
fn canary_settings_are_checked() {
    let base = "[[route]]\nname = \"r\"\nupstream = \"a\"\n[route.canary]\n";
    let ups =
        "[upstream.a]\nbackends = [\"127.0.0.1:9\"]\n[upstream.b]\nbackends = [\"127.0.0.1:10\"]\n";
    for (canary, says) in [
        ("upstream = \"nope\"", "canary.upstream"),
        ("upstream = \"a\"", "the route's own upstream"),
        ("upstream = \"b\"\nsteps = []", "canary.steps"),
        ("upstream = \"b\"\nsteps = [5, 5]", "steps must increase"),
        ("upstream = \"b\"\nsteps = [0, 5]", "1 to 100"),
        ("upstream = \"b\"\nsteps = [50, 101]", "1 to 100"),
        ("upstream = \"b\"\nsteps = [\"5%\"]", "canary.steps"),
        ("upstream = \"b\"\ninterval = \"10ms\"", "canary.interval"),
        ("upstream = \"b\"\nwindow = \"1h\"", "canary.window"),
        ("upstream = \"b\"\nmin_requests = 0", "canary.min_requests"),
        (
            "upstream = \"b\"\nlatency_ratio = 1.0",
            "canary.latency_ratio",
        ),
        (
            "upstream = \"b\"\nerror_margin_percent = 101",
            "canary.error_margin_percent",
        ),
        (
            "upstream = \"b\"\nmatch_header = { name = \"bad header\", value = \"1\" }",
            "canary.match_header",
        ),
        (
            "upstream = \"b\"\nmatch_cookie = { name = \"beta\", value = \"\" }",
            "canary.match_cookie",
        ),
        ("upstream = \"b\"\nsticky = \"path\"", "canary.sticky"),
        ("upstream = \"b\"\nweight = 5", "unknown field"),
    ] {
        let (code, _, err, _) = check(&format!("{base}{canary}\n{ups}"));
        assert_eq!(code, 1, "{canary}");
        assert!(err.contains(says), "{canary}: {err}");
    }
    let (code, _, err, _) = check(&format!(
        "{base}upstream = \"b\"\nsticky = \"cookie:uid\"\n{ups}"
    ));
    assert_eq!(code, 0, "{err}");
}
