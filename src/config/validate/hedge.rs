//! Validation of a route's `hedge = { after = "p95" | "50ms", max_extra_percent = 5 }`.

use super::*;
use crate::config::hedge::{HedgeAfter, HedgeConfig, DEFAULT_MAX_EXTRA_PERCENT};

pub(super) fn validate_hedge(
    h: FileHedge,
    p: &KeyPath,
    upstream: Option<&UpstreamConfig>,
) -> VResult<HedgeConfig> {
    let FileHedge {
        after,
        max_extra_percent,
    } = h;
    let after = match after.strip_prefix('p') {
        Some(q) => match percentile(q) {
            Some(q) => HedgeAfter::Percentile(q),
            None => {
                return err(
                    p.key("after"),
                    format!("\"{after}\": a percentile is p50 to p99.9 (\"p95\", \"p99.9\")"),
                )
            }
        },
        None => {
            let Ok(d) = crate::config::units::parse_duration(&after) else {
                return err(
                    p.key("after"),
                    format!("\"{after}\": a percentile (\"p95\") or a duration (\"50ms\")"),
                );
            };
            let (min, max) = (Duration::from_millis(1), Duration::from_secs(60));
            HedgeAfter::Fixed(within(p.key("after"), d, min, max)?)
        }
    };
    let max_extra_percent = max_extra_percent.unwrap_or(DEFAULT_MAX_EXTRA_PERCENT);
    if !(1..=100).contains(&max_extra_percent) {
        return err(
            p.key("max_extra_percent"),
            format!("{max_extra_percent}: from 1 to 100 (remove `hedge` to send none)"),
        );
    }
    if upstream.is_some_and(|u| u.protocol != crate::config::Protocol::Http1) {
        return err(
            p.clone(),
            "hedging needs an HTTP/1.1 upstream (`protocol = \"http1\"`)",
        );
    }
    Ok(HedgeConfig {
        after,
        max_extra_percent,
    })
}

/// "95" → 950, "99.9" → 999: from 50 to 99.9, in tenths.
fn percentile(q: &str) -> Option<u16> {
    let (whole, tenth) = match q.split_once('.') {
        Some((w, t)) if t.len() == 1 => (w, t),
        Some(_) => return None,
        None => (q, "0"),
    };
    if whole.len() != 2 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !tenth.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = whole.parse::<u16>().ok()? * 10 + tenth.parse::<u16>().ok()?;
    (500..=999).contains(&v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::super::tests_support;
    use super::percentile;
    use crate::config::hedge::HedgeAfter;
    use std::time::Duration;

    fn load(route_extra: &str, upstream_extra: &str) -> Result<crate::config::Config, String> {
        tests_support::load(&tests_support::text("", route_extra, upstream_extra))
    }

    #[test]
    fn percentiles_are_p50_to_p99_9_in_tenths() {
        assert_eq!(percentile("95"), Some(950));
        assert_eq!(percentile("99.9"), Some(999));
        assert_eq!(percentile("50"), Some(500));
        for bad in ["49", "100", "9", "95.", "95.55", "+95", "9a", ""] {
            assert_eq!(percentile(bad), None, "{bad}");
        }
    }

    #[test]
    fn hedge_is_off_by_default_and_takes_a_percentile_or_a_delay() {
        assert_eq!(load("", "").unwrap().routes[0].hedge, None);
        let h = load("hedge = { after = \"p95\" }", "").unwrap().routes[0]
            .hedge
            .clone()
            .unwrap();
        assert_eq!(h.after, HedgeAfter::Percentile(950));
        assert_eq!(h.max_extra_percent, 5);
        let h = load("hedge = { after = \"40ms\", max_extra_percent = 10 }", "")
            .unwrap()
            .routes[0]
            .hedge
            .clone()
            .unwrap();
        assert_eq!(h.after, HedgeAfter::Fixed(Duration::from_millis(40)));
        assert_eq!(h.max_extra_percent, 10);
    }

    #[test]
    fn bad_hedges_name_the_key_and_the_fix() {
        let e = load("hedge = { after = \"p100\" }", "").unwrap_err();
        assert!(
            e.contains("route[0].hedge.after") && e.contains("p50 to p99.9"),
            "{e}"
        );
        let e = load("hedge = { after = \"soon\" }", "").unwrap_err();
        assert!(e.contains("a percentile (\"p95\") or a duration"), "{e}");
        let e = load("hedge = { after = \"0ms\" }", "").unwrap_err();
        assert!(e.contains("route[0].hedge.after"), "{e}");
        let e = load("hedge = { after = \"p95\", max_extra_percent = 0 }", "").unwrap_err();
        assert!(
            e.contains("max_extra_percent") && e.contains("remove `hedge`"),
            "{e}"
        );
        let e = load("hedge = { after = \"p95\", extra = 5 }", "").unwrap_err();
        assert!(e.contains("extra"), "{e}");
        let e = load("hedge = { after = \"p95\" }", "protocol = \"h2c\"").unwrap_err();
        assert!(e.contains("HTTP/1.1 upstream"), "{e}");
    }
}
