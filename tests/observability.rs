//! What brace ships for Prometheus and Grafana: the alert rules (valid, unit-tested with
//! promtool: each alert fires on its failure and stays quiet without it) and the dashboard
//! (every query parses as PromQL); both name only metrics brace exports, so neither can drift
//! from the code.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const RULES: &str = "docker/prometheus/alerts.yml";
const RULE_TESTS: &str = "docker/prometheus/alerts_test.yml";
const DASHBOARD: &str = "docker/grafana/brace.json";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("promtool not installed: run the README's test command, which installs it");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_each_passes_its_promtool_test() {
    let checked = promtool(&["check", "rules", RULES]);
    assert!(checked.contains("SUCCESS: 17 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // The compose file's Prometheus loads them.
    let config = promtool(&["check", "config", "docker/prometheus/prometheus.yml"]);
    assert!(config.contains("SUCCESS: 17 rules found"), "{config}");
}

#[test]
fn every_alert_has_a_test_and_guidance() {
    let rules = read(RULES);
    let tests = read(RULE_TESTS);
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 17);
    for a in &alerts {
        // A firing case and a quiet case.
        let cases = tests.matches(&format!("alertname: {a}\n")).count();
        assert!(cases >= 2, "{a} has {cases} test cases");
    }
    assert_eq!(rules.matches("summary: ").count(), alerts.len());
    assert_eq!(rules.matches("description: ").count(), alerts.len());
}

#[test]
fn the_alert_rules_name_only_metrics_brace_exports() {
    let named = metric_names(&read(RULES));
    assert!(named.len() >= 10, "{named:?}");
    assert_exported(&named);
}

#[test]
fn every_dashboard_query_parses_and_names_only_metrics_brace_exports() {
    let dash: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    assert_eq!(dash["uid"], "brace");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 30, "{} queries", exprs.len());
    // promtool parses each query as the expression of a recording rule, with Grafana's
    // variables given values.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        rules.push_str(&format!("      - record: q{i}\n        expr: {e:?}\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.yml");
    std::fs::write(&file, rules).unwrap();
    let checked = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{checked}"
    );
    let named: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    // The dashboard covers every area: traffic, backends, breakers, retries, limits, cache,
    // reloads and drift.
    for must in [
        "brace_requests_total",
        "brace_upstream_backend_ejected",
        "brace_circuit_breaker_state",
        "brace_upstream_retries_total",
        "brace_rate_limit_decisions_total",
        "brace_cache_requests_total",
        "brace_config_reloads_total",
        "brace_config_info",
    ] {
        assert!(named.contains(must), "the dashboard does not show {must}");
    }
    assert_exported(&named);
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Fails naming every `brace_*` name that is not a family brace exports.
fn assert_exported(named: &BTreeSet<String>) {
    let exported: BTreeSet<String> = brace::metrics::Metrics::new()
        .families()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let unknown: Vec<&String> = named
        .iter()
        .filter(|n| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !exported.contains(family) && !exported.contains(n.as_str())
        })
        .collect();
    assert!(unknown.is_empty(), "not exported by brace: {unknown:?}");
}

/// The `brace_*` identifiers in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("brace_") {
        let word: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `brace_config_info` and the like; not a word that merely contains it.
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(word.clone());
        }
        rest = &rest[i + word.len()..];
    }
    names
}
