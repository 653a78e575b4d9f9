//! The admin listener's status page as an operator sees it, in a real headless Chromium, and
//! the JSON it reads: `/api/status` (rates, error share, percentiles over the last seconds)
//! and `/api/events` (recent transitions with their reasons), which are also logged as
//! structured events.

mod support;
use std::time::Duration;
use support::browser::rendered;
use support::*;

/// Two pools that go wrong in different ways: in `ejecting`, a backend answering 500 is
/// ejected for five minutes; in `breaking`, a backend answering 500 trips its breaker, open
/// for five minutes. Each pool also has a good backend.
fn failing(good: &[&Upstream; 2], bad: &[&Upstream; 2]) -> String {
    format!(
        "[[route]]\nname = \"ej\"\npath_prefix = \"/ej/\"\nupstream = \"ejecting\"\n\n\
         [[route]]\nname = \"br\"\npath_prefix = \"/br/\"\nupstream = \"breaking\"\n\n\
         [upstream.ejecting]\nbackends = [\"{}\", \"{}\"]\nbalance = \"round_robin\"\n\
         [upstream.ejecting.retry]\nattempts = 0\n\
         [upstream.ejecting.outlier]\nconsecutive_failures = 2\nbase_ejection = \"5m\"\nmax_ejection_percent = 50\n\n\
         [upstream.breaking]\nbackends = [\"{}\", \"{}\"]\nbalance = \"round_robin\"\n\
         [upstream.breaking.retry]\nattempts = 0\n\
         [upstream.breaking.circuit_breaker]\nconsecutive_failures = 2\nopen_duration = \"5m\"\nmax_open_duration = \"10m\"\n",
        good[0].addr, bad[0].addr, good[1].addr, bad[1].addr
    )
}

fn upstream_backend(b: &Brace, pool: &str, addr: std::net::SocketAddr) -> serde_json::Value {
    let u = upstreams(b);
    u["upstreams"][pool]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["addr"] == addr.to_string())
        .cloned()
        .unwrap()
}

/// Drives failures until `bad[0]` is ejected and `bad[1]`'s breaker is open.
fn break_things(b: &Brace, bad: &[&Upstream; 2]) {
    wait_for("the 500 backend ejected", Duration::from_secs(10), || {
        b.get("/ej/x");
        upstream_backend(b, "ejecting", bad[0].addr)["ejected"] == true
    });
    wait_for(
        "the 500 backend's breaker open",
        Duration::from_secs(10),
        || {
            b.get("/br/x");
            upstream_backend(b, "breaking", bad[1].addr)["breaker"]["state"] == "open"
        },
    );
}

/// The `data-state` of the backend row for `addr`, if the page shows one.
fn shown_state(dom: &str, addr: std::net::SocketAddr) -> Option<String> {
    let at = dom.find(&format!("data-backend=\"{addr}\""))?;
    let rest = &dom[at..];
    let s = rest.find("data-state=\"")? + "data-state=\"".len();
    Some(rest[s..s + rest[s..].find('"')?].to_owned())
}

#[test]
fn the_status_page_shows_the_ejected_backend_and_the_open_breaker_in_a_real_browser() {
    let (g1, g2) = (Upstream::start("g1"), Upstream::start("g2"));
    let (b1, b2) = (
        Upstream::with_mode("b1", Mode::Status(500, "down")),
        Upstream::with_mode("b2", Mode::Status(500, "down")),
    );
    let b = Brace::start(&failing(&[&g1, &g2], &[&b1, &b2]));
    break_things(&b, &[&b1, &b2]);

    // Served self-contained: one HTML document, nothing fetched from elsewhere.
    let page = get(b.admin(), "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = page.text();
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!html.contains(external), "the page loads {external}…");
    }

    let url = format!("http://{}/", b.admin());
    let mut dom = String::new();
    wait_for(
        "the page to show the ejected backend and the open breaker",
        Duration::from_secs(90),
        || {
            dom = rendered(&url);
            shown_state(&dom, b1.addr).as_deref() == Some("ejected")
                && shown_state(&dom, b2.addr).as_deref() == Some("breaker open")
        },
    );
    // The good backends read as up, and each pool says how many of its backends are.
    assert_eq!(shown_state(&dom, g1.addr).as_deref(), Some("up"));
    assert_eq!(shown_state(&dom, g2.addr).as_deref(), Some("up"));
    assert_eq!(dom.matches("1 of 2 up").count(), 2, "{dom}");
    // The reason of the last transition is on the backend's row, in words.
    assert!(
        dom.contains("ejected: 2 consecutive failures (last: http_5xx)"),
        "{dom}"
    );
    assert!(dom.contains("open: consecutive_failures"), "{dom}");
    // Routes with their figures, the version, and no "cannot reach" error.
    assert!(dom.contains("data-route=\"ej\""), "{dom}");
    assert!(dom.contains(env!("CARGO_PKG_VERSION")));
    assert!(dom.contains("data-loaded=\"1\""), "{dom}");
    assert!(
        dom.contains("<span id=\"error\" role=\"alert\"></span>"),
        "the page shows an error: {dom}"
    );
}

#[test]
fn a_page_with_200_backends_lists_the_bad_one_first() {
    // 199 backends that refuse connections (127.0.0.2, where no test server listens, on ports
    // below the ephemeral range, which no connection of this machine uses) and two that
    // answer, one with 500s. Requests open the breakers of all but the good one.
    let good = Upstream::start("good");
    let bad = Upstream::with_mode("bad", Mode::Status(500, "down"));
    let mut list: Vec<String> = (0..199)
        .map(|i| format!("\"127.0.0.2:{}\"", 20_000 + i))
        .collect();
    list.push(format!("\"{}\"", good.addr));
    list.push(format!("\"{}\"", bad.addr));
    let b = Brace::start(&format!(
        "[[route]]\nname = \"big\"\nupstream = \"big\"\n\n\
         [upstream.big]\nbackends = [{}]\nbalance = \"round_robin\"\n\
         [upstream.big.retry]\nattempts = 0\n\
         [upstream.big.circuit_breaker]\nconsecutive_failures = 1\nopen_duration = \"5m\"\n\
         max_open_duration = \"10m\"\n",
        list.join(", ")
    ));
    wait_for(
        "the 500 backend's breaker open",
        Duration::from_secs(30),
        || {
            b.get("/");
            upstream_backend(&b, "big", bad.addr)["breaker"]["state"] == "open"
        },
    );
    let url = format!("http://{}/", b.admin());
    let mut dom = String::new();
    wait_for(
        "the page to show 201 backends",
        Duration::from_secs(90),
        || {
            dom = rendered(&url);
            dom.matches("data-backend=").count() == 201
        },
    );
    // Problem rows come before every backend that is up.
    let bad_row = dom.find(&format!("data-backend=\"{}\"", bad.addr)).unwrap();
    let good_row = dom
        .find(&format!("data-backend=\"{}\"", good.addr))
        .unwrap();
    assert!(
        bad_row < good_row,
        "the open breaker is listed after a good backend"
    );
    assert_eq!(shown_state(&dom, bad.addr).as_deref(), Some("breaker open"));
    assert_eq!(shown_state(&dom, good.addr).as_deref(), Some("up"));
    assert!(
        dom.contains(" of 201 up"),
        "{}",
        &dom[..dom.len().min(4000)]
    );
}

#[test]
fn api_status_gives_rates_error_share_and_percentiles_over_the_last_seconds() {
    let half = Upstream::with_mode("half", Mode::Alternate(500));
    let slow = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(300)));
    let b = Brace::start(&format!(
        "[[route]]\nname = \"half\"\npath_prefix = \"/half/\"\nupstream = \"half\"\n\n\
         [[route]]\nname = \"slow\"\npath_prefix = \"/slow/\"\nupstream = \"slow\"\n\
         rate_limits = [\"tight\"]\n\n\
         [rate_limit.tight]\nkey = \"client_ip\"\nrate = 1\nper = \"1m\"\nburst = 3\n\n\
         [upstream.half]\nbackends = [\"{}\"]\n[upstream.half.retry]\nattempts = 0\n\
         [upstream.slow]\nbackends = [\"{}\"]\n",
        half.addr, slow.addr
    ));
    for _ in 0..20 {
        b.get("/half/x");
    }
    let slow_statuses: Vec<u16> = (0..5).map(|_| b.get("/slow/x").status).collect();
    assert_eq!(slow_statuses, [200, 200, 200, 429, 429]);

    let status = || -> serde_json::Value {
        serde_json::from_slice(&get(b.admin(), "/api/status").body).unwrap()
    };
    let route = |s: &serde_json::Value, name: &str| {
        s["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap()
    };
    // Wait until the window covers all 20 requests of /half/ (a sample before and after).
    let mut s = serde_json::Value::Null;
    wait_for(
        "a window over all 20 requests",
        Duration::from_secs(20),
        || {
            s = status();
            let (rps, secs) = (
                route(&s, "half")["requests_per_second"].as_f64(),
                s["window_seconds"].as_f64(),
            );
            rps.zip(secs).is_some_and(|(r, w)| (r * w).round() == 20.0)
        },
    );
    let half_route = route(&s, "half");
    assert_eq!(half_route["requests_total"], 20);
    assert_eq!(half_route["error_share"], 0.5, "{half_route}");
    // 300 ms answers land in the 250-500 ms bucket: the percentiles are inside it.
    let slow_route = route(&s, "slow");
    let p50 = slow_route["p50_ms"].as_f64().unwrap();
    let p99 = slow_route["p99_ms"].as_f64().unwrap();
    assert!((250.0..=500.0).contains(&p50), "{slow_route}");
    assert!((250.0..=500.0).contains(&p99) && p99 >= p50, "{slow_route}");
    // The two refusals, the limit's keys, no cache configured, the config in force.
    let tight = &s["rate_limits"][0];
    assert_eq!(tight["name"], "tight");
    assert_eq!(tight["limited_total"], 2, "{tight}");
    assert_eq!(tight["keys"], 1, "{tight}");
    assert_eq!(s["cache"], serde_json::Value::Null);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["ready"], true);
    assert_eq!(s["config"]["last_reload"], serde_json::Value::Null);
    let metrics = b.metrics();
    let hash = s["config"]["hash"].as_str().unwrap();
    assert!(metrics.contains(&format!("brace_config_info{{hash=\"{hash}\"}} 1")));

    // A failed reload shows with its reason; the running config stays.
    b.rewrite("[[route]]\nname = \"half\"\nupstream = \"nowhere\"\n");
    assert_eq!(b.reload().status, 422);
    let s = status();
    assert_eq!(s["config"]["last_reload"]["result"], "failed");
    assert_eq!(s["config"]["last_reload"]["trigger"], "api");
    assert!(s["config"]["last_reload"]["error"]
        .as_str()
        .unwrap()
        .contains("nowhere"));
    assert_eq!(s["config"]["hash"], hash);
}

#[test]
fn transitions_are_kept_in_order_with_reasons_and_logged_as_structured_events() {
    let (g1, g2) = (Upstream::start("g1"), Upstream::start("g2"));
    let (b1, b2) = (
        Upstream::with_mode("b1", Mode::Status(500, "down")),
        Upstream::with_mode("b2", Mode::Status(500, "down")),
    );
    let (port, admin_port) = (free_port(), free_port());
    let mut b = Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
             token = \"s3cret\"\n[log]\nlevel = \"info\"\nformat = \"json\"\naccess_log = \"off\"\n\n{}",
            failing(&[&g1, &g2], &[&b1, &b2])
        ),
        port,
        admin_port,
    );
    break_things(&b, &[&b1, &b2]);
    let events = |q: &str| -> Vec<serde_json::Value> {
        let r = get(b.admin(), &format!("/api/events{q}"));
        assert_eq!(r.status, 200, "read-only: no token needed");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["events"].as_array().unwrap().clone()
    };
    // The state is visible a moment before its event is recorded: wait for both events.
    let mut all = Vec::new();
    wait_for(
        "the ejection and breaker events",
        Duration::from_secs(10),
        || {
            all = events("");
            ["ejection", "breaker"]
                .iter()
                .all(|k| all.iter().any(|e| e["kind"] == *k))
        },
    );
    let ejection = all
        .iter()
        .find(|e| e["kind"] == "ejection")
        .expect("an ejection event");
    assert_eq!(ejection["upstream"], "ejecting");
    assert_eq!(ejection["backend"], b1.addr.to_string());
    assert_eq!(ejection["from"], "available");
    assert_eq!(ejection["to"], "ejected");
    assert_eq!(ejection["level"], "warn");
    assert_eq!(
        ejection["reason"],
        "2 consecutive failures (last: http_5xx)"
    );
    let trip = all
        .iter()
        .find(|e| e["kind"] == "breaker")
        .expect("a breaker event");
    assert_eq!(trip["backend"], b2.addr.to_string());
    assert_eq!(
        (&trip["from"], &trip["to"]),
        (&"closed".into(), &"open".into())
    );
    assert_eq!(trip["reason"], "consecutive_failures");
    // Sequence numbers increase; `since` pages, `limit` keeps the newest.
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let first = seqs[0];
    assert_eq!(events(&format!("?since={first}")).len(), all.len() - 1);
    assert_eq!(events("?limit=1")[0]["seq"], *seqs.last().unwrap());
    assert_eq!(get(b.admin(), "/api/events?since=abc").status, 400);
    // The status page and the JSON reads need no token; changes still do.
    assert_eq!(get(b.admin(), "/").status, 200);
    assert_eq!(get(b.admin(), "/api/status").status, 200);
    assert_eq!(post(b.admin(), "/api/reload", "").status, 401);
    assert_eq!(post(b.admin(), "/api/events", "").status, 405);

    // The same transitions in the process log, one JSON object each, with their fields.
    let log = b.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("\"event\":\"ejection\""))
        .unwrap_or_else(|| panic!("no ejection event in the log:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert_eq!(
        v["fields"]["reason"], "2 consecutive failures (last: http_5xx)",
        "{line}"
    );
    assert_eq!(v["fields"]["backend"], b1.addr.to_string(), "{line}");
    assert!(log.contains("\"event\":\"breaker\""), "{log}");
}
