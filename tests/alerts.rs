//! The shipped Prometheus alert rules: valid, unit-tested with promtool (each alert fires on
//! its failure and stays quiet without it), and naming only metrics brace exports.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const RULES: &str = "docker/prometheus/alerts.yml";
const RULE_TESTS: &str = "docker/prometheus/alerts_test.yml";

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
    assert!(checked.contains("SUCCESS: 12 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_has_a_test_and_guidance() {
    let rules = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES)).unwrap();
    let tests =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(RULE_TESTS)).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 12);
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
    let rules = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES)).unwrap();
    let exported: BTreeSet<String> = brace::metrics::Metrics::new()
        .family_names()
        .iter()
        .cloned()
        .collect();
    let named = metric_names(&rules);
    assert!(named.len() >= 10, "{named:?}");
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
