//! Config errors name file, line, column, key path and what is wrong; `brace check` exit codes.

mod support;
use support::*;

const BASE: &str =
    "[[route]]\nname = \"r\"\nupstream = \"u\"\n\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n";

fn check_err(text: &str) -> (String, String) {
    let (code, out, err, path) = check(text);
    assert_eq!(code, 1, "expected failure; stdout: {out}");
    (err, path)
}

#[test]
fn valid_config_passes_with_a_summary() {
    let (code, out, err, _) = check(BASE);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("http://127.0.0.1:8080"), "{out}");
    assert!(out.contains("1 route: r (*/ -> u)"), "{out}");
    assert!(out.contains("1 upstream: u (1 backend)"), "{out}");
}

#[test]
fn shipped_example_and_demo_configs_load() {
    let root = env!("CARGO_MANIFEST_DIR");
    for f in ["config/brace.toml", "config/demo.toml"] {
        let out = std::process::Command::new(BRACE)
            .args(["check", "-c", &format!("{root}/{f}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_duration_names_line_and_key() {
    let text = format!("{BASE}connect_timeout = \"soon\"\n");
    let (err, path) = check_err(&text);
    assert!(
        err.contains(&format!(
            "{path}:7:19: upstream.u.connect_timeout: invalid duration \"soon\""
        )),
        "{err}"
    );
    let (err, _) = check_err(&format!("{BASE}read_timeout = \"10\"\n"));
    assert!(
        err.contains(":7:16: upstream.u.read_timeout:") && err.contains("give a unit"),
        "{err}"
    );
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = format!("[server]\nlisten = [\"127.0.0.1:8080\"]\nlistn = 1\n{BASE}");
    let (err, path) = check_err(&text);
    assert!(err.contains(&format!("{path}:3:1:")), "{err}");
    assert!(err.contains("unknown field `listn`"), "{err}");
    assert!(err.contains("server"), "{err}");
}

#[test]
fn missing_upstream_names_the_route() {
    let text = "[[route]]\nname = \"a\"\nupstream = \"u\"\n\n[[route]]\nname = \"shop\"\nupstream = \"nope\"\n\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n";
    let (err, path) = check_err(text);
    assert!(
        err.contains(&format!("{path}:7:12: route[1].upstream: route \"shop\" names upstream \"nope\", which is not defined (defined: u)")),
        "{err}"
    );
}

#[test]
fn bad_address_and_bad_weight() {
    let text = "[[route]]\nname = \"a\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\", \"nohost\"]\n";
    let (err, _) = check_err(text);
    assert!(
        err.contains(":5:31: upstream.u.backends[1]: invalid address \"nohost\""),
        "{err}"
    );

    let text = "[[route]]\nname = \"a\"\nupstream = \"u\"\n[upstream.u]\nbackends = [{ addr = \"127.0.0.1:9001\", weight = 0 }]\n";
    let (err, _) = check_err(text);
    assert!(
        err.contains("upstream.u.backends[0].weight: weight 0 is out of range 1..=1000"),
        "{err}"
    );

    let text = format!("[server]\nlisten = [\"localhost\"]\n{BASE}");
    let (err, _) = check_err(&text);
    assert!(
        err.contains(":2:11: server.listen[0]: invalid listen address \"localhost\""),
        "{err}"
    );
}

#[test]
fn other_error_classes() {
    let cases: &[(&str, &str)] = &[
        (
            "[server]\nclient_max_body_size = \"lots\"\n",
            "server.client_max_body_size: invalid size",
        ),
        (
            "[admin]\nlisten = \"0.0.0.0:9901\"\n",
            "admin.listen: 0.0.0.0:9901 is reachable from other hosts",
        ),
        (
            "[admin]\nlisten = \"127.0.0.1:8080\"\n",
            "overlaps a proxy listener",
        ),
        ("[log]\nlevel = \"loud\"\n", "log.level: invalid level"),
        (
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            "server.trusted_proxies[0]: invalid network",
        ),
        (
            "[upstream.v]\nbackends = []\n",
            "upstream.v.backends: no backends",
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n",
            "route[1].name: duplicate route name",
        ),
        (
            "[[route]]\nname = \"r2\"\nupstream = \"u\"\n",
            "repeats host (any) with path_prefix \"/\"",
        ),
        (
            "[[route]]\nname = \"r3\"\nupstream = \"u\"\npath_prefix = \"x\"\n",
            "must start with '/'",
        ),
        (
            "[[route]]\nname = \"r4\"\nupstream = \"u\"\nhosts = [\"a b\"]\npath_prefix = \"/z\"\n",
            "route[1].hosts[0]: invalid host",
        ),
        ("[[route]]\nname = \"r5\"\n", "missing field `upstream`"),
        ("[server]\nlisten = [\n", "invalid array"),
    ];
    for (extra, want) in cases {
        // Put tables before BASE's [[route]] so keys land in the intended table.
        let text = if extra.starts_with("[[route]]") {
            format!("{BASE}{extra}")
        } else {
            format!("{extra}{BASE}")
        };
        let (err, path) = check_err(&text);
        assert!(err.contains(want), "for {extra:?}: {err}");
        assert!(err.contains(&path), "file not named: {err}");
    }
}

#[test]
fn run_refuses_a_bad_config_and_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.toml");
    std::fs::write(&p, "[[route]]\nname = \"a\"\nupstream = \"missing\"\n").unwrap();
    let out = std::process::Command::new(BRACE)
        .args(["run", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("route[0].upstream"));
}

#[test]
fn run_refuses_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.toml");
    std::fs::write(
        &p,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{}\"\n{BASE}",
            free_port()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BRACE)
        .args(["run", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(&format!("cannot listen on 127.0.0.1:{port}")));
}

#[test]
fn load_balancing_config_errors() {
    let hc = |body: &str| {
        format!("[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n[upstream.u.health_check]\n{body}")
    };
    let cases: Vec<(String, &str)> = vec![
        (
            hc("healthy_threshold = 0\n"),
            "upstream.u.health_check.healthy_threshold: must be at least 1",
        ),
        (
            hc("interval = \"1s\"\ntimeout = \"2s\"\n"),
            "upstream.u.health_check.timeout: timeout (2s) is longer than interval (1s)",
        ),
        (
            hc("expect_status = \"200-700\"\n"),
            "upstream.u.health_check.expect_status: invalid status range \"200-700\"",
        ),
        (
            hc("type = \"udp\"\n"),
            "upstream.u.health_check.type: unknown variant `udp`, expected `http` or `tcp`",
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\npath_prefix = \"//api/\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n".to_string(),
            "route[0].path_prefix: \"//api/\" can never match a normalised path; write \"/api/\"",
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\npath_prefix = \"/%6cogin\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n".to_string(),
            "write \"/login\"",
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\npath_prefix = \"/a/%2e%2e/\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n".to_string(),
            "can never match (dot segment in path",
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\npath_prefix = \"/api?x=1\"\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n".to_string(),
            "can never match: the query is not part of the path",
        ),
        (
            format!("[server]\ntrusted_proxies = [\"10.0.0.1/8\"]\n{BASE}"),
            "server.trusted_proxies[0]: \"10.0.0.1/8\" has host bits set; write \"10.0.0.0/8\"",
        ),
        // Header values from config never carry CR or LF into a request.
        (
            hc("host = \"a.test\\r\\nX-Injected: 1\"\n"),
            "upstream.u.health_check.host: \"a.test\\r\\nX-Injected: 1\" is not a host[:port]",
        ),
        (
            hc("path = \"/health\\r\\nX: 1\"\n"),
            "upstream.u.health_check.path: a control character or space in the path",
        ),
        (
            format!("{BASE}balance = \"fastest\"\n"),
            "upstream.u.balance: unknown variant `fastest`, expected one of `ewma`, `round_robin`",
        ),
        (
            format!("{BASE}hash_key = \"path\"\n"),
            "hash_key applies only to balance = \"consistent_hash\"",
        ),
        (
            format!("{BASE}balance = \"consistent_hash\"\nhash_key = \"ip\"\n"),
            "invalid hash_key \"ip\"",
        ),
        (
            format!("{BASE}backup = \"u\"\n"),
            "cannot be its own backup",
        ),
        (
            format!("{BASE}backup = \"nope\"\n"),
            "backup upstream \"nope\" is not defined",
        ),
        (
            format!("{BASE}panic_threshold = 1.5\n"),
            "upstream.u.panic_threshold: 1.5 is outside 0.0..=1.0",
        ),
        (
            format!("{BASE}[upstream.u.retry]\non = [\"500\"]\n"),
            "upstream.u.retry.on[0]: unknown variant `500`, expected one of `connect_error`",
        ),
        (
            format!("{BASE}[upstream.u.outlier]\nmax_ejection_percent = 101\n"),
            "max_ejection_percent: 101 is over 100",
        ),
    ];
    for (text, want) in cases {
        let (err, _) = check_err(&text);
        assert!(err.contains(want), "want {want:?} in: {err}");
    }
}

#[test]
fn breaker_and_rate_limit_config_errors() {
    let cases: Vec<(String, &str)> = vec![
        (format!("{BASE}[upstream.u.circuit_breaker]\nfailure_ratio = 1.5\n"), "upstream.u.circuit_breaker.failure_ratio: 1.5 is outside 0.0..=1.0"),
        (format!("{BASE}[upstream.u.circuit_breaker]\nhalf_open_requests = 0\n"), "half_open_requests: must be at least 1"),
        (format!("{BASE}[upstream.u.circuit_breaker]\nmode = \"loud\"\n"), "upstream.u.circuit_breaker.mode: unknown variant `loud`, expected `enforce` or `shadow`"),
        (format!("{BASE}[upstream.u.circuit_breaker]\nfailure_on = [\"4xx\"]\n"), "upstream.u.circuit_breaker.failure_on[0]: unknown variant `4xx`, expected one of"),
        (format!("[rate_limit.l]\nkey = \"client_ip\"\nrate = 1\nburst = 0\n{BASE}"), "rate_limit.l.burst: must be at least 1"),
        (format!("[rate_limit.l]\nkey = \"ip\"\nrate = 1\nburst = 1\n{BASE}"), "rate_limit.l.key: invalid key \"ip\""),
        (format!("[rate_limit.l]\nkey = \"client_ip\"\nrate = 1\nburst = 1\nstatus = 200\n{BASE}"), "rate_limit.l.status: 200 is not a 4xx or 5xx status"),
        ("[[route]]\nname = \"r\"\nupstream = \"u\"\nrate_limits = [\"nope\"]\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n".to_string(), "route[0].rate_limits[0]: route \"r\" names rate limit \"nope\", which is not defined (defined: none)"),
    ];
    for (text, want) in cases {
        let (err, _) = check_err(&text);
        assert!(err.contains(want), "want {want:?} in: {err}");
    }
}

#[test]
fn cache_config_errors() {
    let route_cache = "[[route]]\nname = \"r\"\nupstream = \"u\"\n[route.cache]\n";
    let up = "[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{route_cache}{up}"),
            "route[0].cache: route caching needs the shared store: add a [cache] section",
        ),
        (
            format!("[cache]\nmax_size = \"1MiB\"\nmax_object_size = \"2MiB\"\n{route_cache}{up}"),
            "cache.max_object_size: must be greater than 0 and at most max_size",
        ),
        (
            format!("[cache]\n{route_cache}key_query = \"some\"\n{up}"),
            "route[0].cache.key_query: \"some\": expected \"all\", \"none\" or a list",
        ),
        (
            format!("[cache]\n{route_cache}default_ttl = \"2h\"\n{up}"),
            "route[0].cache.default_ttl: is longer than max_ttl",
        ),
        (
            format!("[cache]\n{route_cache}key_headers = [\"bad header\"]\n{up}"),
            "route[0].cache.key_headers[0]: invalid header name",
        ),
    ];
    for (text, want) in cases {
        let (err, _) = check_err(&text);
        assert!(err.contains(want), "want {want:?} in: {err}");
    }
    let (code, _, err, _) = check(&format!(
        "[cache]\n{route_cache}key_query = [\"page\", \"q\"]\n{up}"
    ));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn every_duration_and_size_is_bounded_at_load() {
    let server = |line: &str| format!("[server]\n{line}\n{BASE}");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("[rate_limit.l]\nkey = \"client_ip\"\nrate = 1\nburst = 1\nper = \"100000000000h\"\n{BASE}"),
            "must be between 1ms and 1day",
        ),
        (
            format!("{BASE}connect_timeout = \"1ns\"\n"),
            "upstream.u.connect_timeout: 1ns is out of range: must be between 1ms and 5m",
        ),
        (
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:0\"]\n".to_string(),
            "upstream.u.backends[0]: \"127.0.0.1:0\": port 0",
        ),
        (
            server("client_header_timeout = \"0s\""),
            "server.client_header_timeout: 0s is out of range",
        ),
        (
            server("max_request_header_size = \"2MiB\""),
            "server.max_request_header_size: 2097152 bytes: must be between 1KiB and 1MiB",
        ),
        (
            format!("{BASE}upgrade_idle_timeout = \"30d\"\n"),
            "upstream.u.upgrade_idle_timeout: 30days is out of range",
        ),
        (
            format!("{BASE}[upstream.u.retry]\nbackoff = \"2h\"\n"),
            "upstream.u.retry.backoff: 2h is out of range",
        ),
        (
            format!("{BASE}[upstream.u.outlier]\nbase_ejection = \"0s\"\n"),
            "upstream.u.outlier.base_ejection: 0s is out of range",
        ),
        // Pools are sized from it at start: a billion allocated gigabytes and never started.
        (
            format!("{BASE}keepalive = 1000000000\n"),
            "upstream.u.keepalive: at most 10000",
        ),
    ];
    for (text, want) in cases {
        let (err, _) = check_err(&text);
        assert!(err.contains(want), "want {want:?} in: {err}");
    }
    // Only max_size set: max_object_size follows it down rather than failing on its default.
    let (code, _, err, _) = check(
        "[cache]\nmax_size = \"4MiB\"\n[[route]]\nname = \"r\"\nupstream = \"u\"\n[route.cache]\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n",
    );
    assert_eq!(code, 0, "{err}");
}
