//! OpenTelemetry traces, received by a real OTLP/HTTP endpoint on 127.0.0.1 that decodes the
//! protobuf with the `opentelemetry-proto` types: the span tree, W3C Trace Context in and
//! out, attributes, retries as two attempt spans, sampling, and collectors that are down or
//! stalled (no effect on clients; the dropped spans are counted).

mod support;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use std::time::Duration;
use support::otel::*;
use support::*;

/// The `traceparent` the upstream received: (trace id, parent span id, flags).
fn upstream_traceparent(u: &Upstream) -> (String, String, String) {
    let head = u.head();
    let tp = head
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap_or_else(|| panic!("no traceparent upstream:\n{head}"));
    let parts: Vec<&str> = tp.trim().split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// `GET /` with this `traceparent`; the status.
fn traced_get(b: &Brace, traceparent: &str) -> u16 {
    let head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\ntraceparent: {traceparent}\r\nConnection: close\r\n\r\n"
    );
    send(b.addr(), head.as_bytes()).unwrap().status
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn a_request_is_a_server_span_with_an_attempt_child_and_the_trace_continues_upstream() {
    let c = Collector::start();
    let app = Upstream::with_mode("app", Mode::Echo);
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.log");
    let (port, admin) = (free_port(), free_port());
    let text = tracing_config(
        &format!("http://{}", c.addr),
        "[tracing.headers]\nx-api-key = \"k123\"\n",
        &simple_config("", &[&app], ""),
        port,
        admin,
    )
    .replace(
        "access_log = \"off\"",
        &format!("access_log = {:?}", access.display().to_string()),
    );
    let b = Brace::start_raw(&text, port, admin);
    let r = send(
        b.addr(),
        format!(
            "GET /orders?id=7 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: test-agent\r\n\
             traceparent: 00-{CLIENT_TRACE}-{CLIENT_SPAN}-01\r\ntracestate: vendor=abc\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);

    // The app is the attempt span's child, in the client's trace; tracestate is kept.
    let (trace, parent, flags) = upstream_traceparent(&app);
    assert_eq!(trace, CLIENT_TRACE);
    assert_eq!(flags, "01");
    assert!(
        app.head().contains("tracestate: vendor=abc"),
        "{}",
        app.head()
    );

    let spans = c.trace(CLIENT_TRACE, 2);
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    let attempt = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .unwrap();
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(
        hex(&attempt.span_id),
        parent,
        "the app's parent is the attempt span"
    );
    assert_eq!(server.name, "GET main");
    assert_attrs(
        server,
        &[
            ("http.request.method", "GET"),
            ("url.path", "/orders"),
            ("http.response.status_code", "200"),
            ("brace.route", "main"),
            ("server.address", "shop.example"),
            ("client.address", "127.0.0.1"),
            ("user_agent.original", "test-agent"),
        ],
    );
    let app_addr = app.addr.to_string();
    assert_attrs(
        attempt,
        &[
            ("brace.upstream", "pool"),
            ("brace.backend", &app_addr),
            ("brace.attempt", "1"),
            ("brace.outcome", "success"),
            ("http.response.status_code", "200"),
        ],
    );
    assert!(attempt.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(attempt.end_time_unix_nano <= server.end_time_unix_nano);
    {
        let g = c.got.lock().unwrap();
        let services: Vec<&String> = g.spans.iter().map(|(service, _)| service).collect();
        assert!(services.iter().all(|s| *s == "edge"), "{services:?}");
        assert!(g.headers[0].contains("x-api-key: k123"), "{}", g.headers[0]);
        assert!(g.headers[0].contains("content-type: application/x-protobuf"));
    }
    wait_for("the export counted", Duration::from_secs(10), || {
        b.metric("brace_tracing_spans_exported_total") >= 2.0
    });
    // The collector's key is not shown by /api/config.
    let config = get(b.admin(), "/api/config").text();
    assert!(!config.contains("k123"), "{config}");

    // The access log line leads to the trace.
    let mut log = String::new();
    wait_for("the access record", Duration::from_secs(10), || {
        log = std::fs::read_to_string(&access).unwrap_or_default();
        log.contains("/orders")
    });
    let line: serde_json::Value =
        serde_json::from_str(log.lines().find(|l| l.contains("/orders")).unwrap()).unwrap();
    assert_eq!(line["trace_id"], CLIENT_TRACE, "{line}");
}

#[test]
fn a_retry_is_two_attempt_spans_the_first_with_its_retry_reason() {
    let c = Collector::start();
    let bad = Upstream::with_mode("bad", Mode::Status(503, "busy"));
    let good = Upstream::start("good");
    let b = start(
        &format!("http://{}/v1/traces", c.addr),
        "",
        &simple_config(
            "",
            &[&bad, &good],
            "balance = \"round_robin\"\n[upstream.pool.retry]\non = [\"503\"]\n\
             [upstream.pool.outlier]\nconsecutive_failures = 0\n",
        ),
    );
    // Round robin: one of two requests goes to the 503 backend first.
    for _ in 0..2 {
        assert_eq!(b.get("/").status, 200);
    }
    wait_for("2 server spans", Duration::from_secs(15), || {
        c.spans()
            .iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .count()
            == 2
    });
    let spans = c.spans();
    // Round robin sends one or both requests to the 503 backend first: take one retried.
    let attempts_of = |server: &[u8]| -> Vec<&Span> {
        spans
            .iter()
            .filter(|o| o.kind == SpanKind::Client as i32 && o.parent_span_id == server)
            .collect()
    };
    let retried = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .map(|s| attempts_of(&s.span_id))
        .find(|a| a.len() == 2)
        .unwrap_or_else(|| panic!("no request with two attempts: {spans:#?}"));
    let first = retried
        .iter()
        .find(|s| attr(&s.attributes, "brace.attempt").as_deref() == Some("1"))
        .unwrap();
    let second = retried
        .iter()
        .find(|s| attr(&s.attributes, "brace.attempt").as_deref() == Some("2"))
        .unwrap();
    let bad_addr = bad.addr.to_string();
    assert_attrs(
        first,
        &[
            ("brace.backend", &bad_addr),
            ("brace.outcome", "http_5xx"),
            ("http.response.status_code", "503"),
            ("brace.retry_reason", "503"),
        ],
    );
    assert_eq!(
        first.status.as_ref().map(|s| s.code),
        Some(2),
        "error status"
    );
    let good_addr = good.addr.to_string();
    assert_attrs(
        second,
        &[
            ("brace.backend", &good_addr),
            ("brace.outcome", "success"),
            ("http.request.resend_count", "1"),
        ],
    );
    assert!(first.end_time_unix_nano <= second.start_time_unix_nano);
    // Their server span answered 200 and is not an error.
    let server = spans
        .iter()
        .find(|s| s.span_id == first.parent_span_id)
        .unwrap();
    assert_eq!(
        attr(&server.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_ne!(server.status.as_ref().map(|s| s.code), Some(2));
}

#[test]
fn without_a_valid_traceparent_brace_starts_a_trace_and_never_forwards_the_client_s_garbage() {
    let c = Collector::start();
    let app = Upstream::with_mode("app", Mode::Echo);
    let b = start(
        &format!("http://{}", c.addr),
        "",
        &simple_config("", &[&app], TOUCHY),
    );
    let bad = [
        "zz-garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
    ];
    let mut seen = Vec::new();
    for tp in std::iter::once(None).chain(bad.iter().map(Some)) {
        let header = tp.map_or(String::new(), |t| format!("traceparent: {t}\r\n"));
        let r = send(
            b.addr(),
            format!("GET / HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "traceparent {tp:?}");
        let (trace, _, flags) = upstream_traceparent(&app);
        assert_ne!(
            trace, CLIENT_TRACE,
            "a malformed traceparent was continued: {tp:?}"
        );
        assert_ne!(trace, "0".repeat(32));
        assert!(trace
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(flags, "01", "sample_ratio 1 samples every new trace");
        assert_eq!(
            app.head().matches("traceparent:").count(),
            1,
            "{}",
            app.head()
        );
        seen.push(trace);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        bad.len() + 1,
        "each request is a trace of its own"
    );
    for t in &seen {
        c.trace(t, 2);
    }
    assert_no_backend_blamed(&b);
}

#[test]
fn sampling_is_parent_based_and_unsampled_traces_still_propagate() {
    let c = Collector::start();
    let app = Upstream::with_mode("app", Mode::Echo);
    let b = start(
        &format!("http://{}", c.addr),
        "sample_ratio = 0.0\n",
        &simple_config("", &[&app], ""),
    );
    // A new trace at ratio 0: not sampled, but the app still gets a traceparent (flag 00).
    assert_eq!(b.get("/").status, 200);
    let (unsampled, _, flags) = upstream_traceparent(&app);
    assert_eq!(flags, "00");
    // A client's sampled trace is followed whatever the ratio.
    assert_eq!(
        traced_get(&b, &format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")),
        200
    );
    assert_eq!(upstream_traceparent(&app).2, "01");
    c.trace(CLIENT_TRACE, 2);
    // And a client's unsampled one is not exported.
    let other = "0af7651916cd43dd8448eb211c80319c";
    assert_eq!(traced_get(&b, &format!("00-{other}-{CLIENT_SPAN}-00")), 200);
    let (t, _, f) = upstream_traceparent(&app);
    assert_eq!((t.as_str(), f.as_str()), (other, "00"));
    // A last sampled request: spans are exported in the order they end, so once its spans
    // are in, any of the unsampled requests' would be too.
    let last = "1af7651916cd43dd8448eb211c80319c";
    assert_eq!(traced_get(&b, &format!("00-{last}-{CLIENT_SPAN}-01")), 200);
    c.trace(last, 2);
    let traces: Vec<String> = c.spans().iter().map(|s| hex(&s.trace_id)).collect();
    assert!(!traces.contains(&unsampled), "{traces:?}");
    assert!(!traces.contains(&other.to_string()), "{traces:?}");
}

/// A client that forces sampling with huge paths and `User-Agent`s gets its values cut in
/// the span: each queued span has a bounded size, so the queue (bounded in spans) is bounded
/// in bytes while the collector is away.
#[test]
fn client_chosen_attributes_are_cut_so_queued_spans_stay_small() {
    let c = Collector::start();
    let app = Upstream::start("app");
    let b = start(
        &format!("http://{}", c.addr),
        "",
        &simple_config("", &[&app], ""),
    );
    let path = format!("/{}", "p".repeat(8000));
    let ua = "u".repeat(8000);
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {ua}\r\n\
         traceparent: 00-{CLIENT_TRACE}-{CLIENT_SPAN}-01\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(send(b.addr(), head.as_bytes()).unwrap().status, 200);
    let spans = c.trace(CLIENT_TRACE, 2);
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    for key in ["url.path", "user_agent.original"] {
        let v = attr(&server.attributes, key).unwrap();
        assert!(v.len() <= 256 + "…".len(), "{key}: {} bytes", v.len());
        assert!(v.ends_with('…'), "{key}");
    }
    assert!(attr(&server.attributes, "url.path")
        .unwrap()
        .starts_with("/ppp"));
}

#[test]
fn a_dead_or_stalled_collector_costs_only_dropped_spans() {
    let app = Upstream::start("app");
    // Dead: nothing listens there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let b = start(&dead, "", &simple_config("", &[&app], ""));
    for _ in 0..20 {
        let r = b.get("/");
        assert_eq!(r.status, 200);
    }
    wait_for("export failures counted", Duration::from_secs(15), || {
        b.metric("brace_tracing_spans_dropped_total{reason=\"export_failed\"}") >= 40.0
    });
    assert_eq!(b.metric("brace_tracing_spans_exported_total"), 0.0);
    assert_no_backend_blamed(&b);

    // Stalled: accepts and never answers; a queue of 8 fills while one export hangs.
    let hole = BlackHole::start();
    let hole_addr = hole.addr;
    let b = start(
        &format!("http://{hole_addr}"),
        "queue_size = 8\ntimeout = \"30s\"\n",
        &simple_config("", &[&app], ""),
    );
    let statuses = load(&b, 4, 400, "/");
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // Spans end as requests are logged, just after their answers: wait for the last ones.
    let mut full = 0.0;
    wait_for("700 of 800 spans dropped", Duration::from_secs(10), || {
        full = b.metric("brace_tracing_spans_dropped_total{reason=\"queue_full\"}");
        full >= 700.0
    });
    assert_no_backend_blamed(&b);
}

#[test]
fn tracing_settings_are_checked() {
    let bad = [
        (
            "otlp_endpoint = \"https://collector:4318\"",
            "https is not supported",
        ),
        (
            "otlp_endpoint = \"127.0.0.1:4318\"",
            "expected http://HOST:PORT",
        ),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 1.5",
            "not between 0 and 1",
        ),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318\"\nservice_name = \" \"",
            "must not be empty",
        ),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318\"\nqueue_size = 0",
            "must be greater than 0",
        ),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318\"\n[tracing.headers]\n\"bad name\" = \"x\"",
            "not a valid header name",
        ),
        ("sample_ratio = 0.5", "otlp_endpoint"),
        (
            "otlp_endpoint = \"http://127.0.0.1:4318\"\nsample_rate = 0.5",
            "unknown field",
        ),
    ];
    for (t, want) in bad {
        let (code, _, err, _) = check(&format!(
            "[tracing]\n{t}\n\n[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:1\"]\n"
        ));
        assert_eq!(code, 1, "{t}");
        assert!(err.contains(want) && err.contains("tracing"), "{t}: {err}");
    }
}

#[test]
fn cache_status_rate_limit_refusals_and_breaker_rejections_are_span_events() {
    let c = Collector::start();
    let app = Upstream::start("app");
    let down = Upstream::with_mode("down", Mode::Status(500, "down"));
    let b = start(
        &format!("http://{}", c.addr),
        "",
        &format!(
            "[cache]\nmax_size = \"1MiB\"\n\n\
             [[route]]\nname = \"cached\"\npath_prefix = \"/c/\"\nupstream = \"app\"\n\
             [route.cache]\ndefault_ttl = \"60s\"\n\n\
             [[route]]\nname = \"limited\"\npath_prefix = \"/l/\"\nupstream = \"app\"\n\
             rate_limits = [\"one\"]\n\n\
             [[route]]\nname = \"broken\"\npath_prefix = \"/b/\"\nupstream = \"down\"\n\n\
             [rate_limit.one]\nkey = \"client_ip\"\nrate = 1\nper = \"1m\"\nburst = 1\n\n\
             [upstream.app]\nbackends = [\"{}\"]\n\
             [upstream.down]\nbackends = [\"{}\"]\n[upstream.down.retry]\nattempts = 0\n\
             [upstream.down.circuit_breaker]\nconsecutive_failures = 1\nopen_duration = \"5m\"\n\
             max_open_duration = \"10m\"\n",
            app.addr, down.addr
        ),
    );
    let mut statuses: Vec<u16> = ["/c/x", "/c/x", "/l/x", "/l/x", "/b/x"]
        .iter()
        .map(|p| b.get(p).status)
        .collect();
    // The 500 trips the breaker when the request is logged, just after its answer.
    wait_for("the breaker open", Duration::from_secs(10), || {
        let u = upstreams(&b);
        u["upstreams"]["down"]["backends"][0]["breaker"]["state"] == "open"
    });
    statuses.push(b.get("/b/x").status);
    assert_eq!(statuses, [200, 200, 200, 429, 500, 503]);
    let mut servers = Vec::new();
    wait_for("six server spans", Duration::from_secs(15), || {
        servers = c
            .spans()
            .into_iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .collect();
        servers.len() == 6
    });
    servers.sort_by_key(|s| s.start_time_unix_nano);
    let events = |s: &Span| -> Vec<(String, Vec<(String, String)>)> {
        s.events
            .iter()
            .map(|e| {
                let attrs = e
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), attr(&e.attributes, &kv.key).unwrap()))
                    .collect();
                (e.name.clone(), attrs)
            })
            .collect()
    };
    let ev =
        |name: &str, k: &str, v: &str| (name.to_string(), vec![(k.to_string(), v.to_string())]);
    assert_eq!(
        events(&servers[0]),
        [ev("cache", "brace.cache.status", "MISS")]
    );
    assert_eq!(
        events(&servers[1]),
        [ev("cache", "brace.cache.status", "HIT")]
    );
    assert_eq!(events(&servers[2]), []);
    assert_eq!(
        events(&servers[3]),
        [(
            "rate_limit".to_string(),
            vec![
                (
                    "brace.rate_limit.decision".to_string(),
                    "limited".to_string()
                ),
                ("brace.rate_limit.name".to_string(), "one".to_string())
            ]
        )]
    );
    assert_eq!(
        events(&servers[5]),
        [ev("breaker_rejected", "brace.upstream", "down")]
    );
    // 5xx server spans are errors; the 429 is the client's and is not.
    let code = |s: &Span| s.status.as_ref().map_or(0, |st| st.code);
    assert_eq!(code(&servers[4]), 2);
    assert_eq!(code(&servers[5]), 2);
    assert_ne!(code(&servers[3]), 2);
    assert_eq!(servers[3].name, "GET limited");
}
