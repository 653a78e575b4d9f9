//! Latency-relative outlier detection: a backend much slower than its peers, not just slower
//! than a fixed threshold (Envoy's success-rate detection, applied to latency).
//!
//! Once a second per pool, each available backend's latency (the median time to answer of its
//! successful answers in its limiter's last window, `upstream::concurrency`: failures do not
//! count, so a backend back from a crash is judged by its answers) is compared with the median
//! of the pool's. A backend
//! over `latency_ratio` times the median is *slow*: it gets only a small share of the picks
//! ([`SLOW_SHARE`], enough to keep measuring it and to notice its recovery), and when it stays
//! slow for `latency_ejection_after` it is ejected like a failing one (doubling, within
//! `max_ejection_percent`). When every backend slows down together the median moves with them
//! and nothing is slow: that is overload, which the adaptive limits handle. A comparison needs
//! three available backends with estimates; with fewer, nothing is marked.

use super::backend::Backend;
use super::pool::Pool;
use crate::events::{Event, Kind, Level};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How often a pool's backends are compared.
const EVERY_MS: u64 = 1_000;

pub use super::backend::SLOW_SHARE;

/// Available backends with an estimate needed before one can be told apart.
const MIN_PEERS: usize = 3;

/// A slow backend stays slow until its latency is back under this share of `latency_ratio`
/// times the median, so one hovering at the threshold does not flap.
const HYSTERESIS: f64 = 0.8;

/// Each of `estimates` (µs; 0 = not measured) divided by the median of the measured ones;
/// all 0 with fewer than [`MIN_PEERS`] measured (nothing can be told apart).
pub fn ratios(estimates: &[f64]) -> Vec<f64> {
    let mut measured: Vec<f64> = estimates.iter().copied().filter(|e| *e > 0.0).collect();
    if measured.len() < MIN_PEERS {
        return vec![0.0; estimates.len()];
    }
    measured.sort_by(f64::total_cmp);
    let n = measured.len();
    let median = if n % 2 == 1 {
        measured[n / 2]
    } else {
        (measured[n / 2 - 1] + measured[n / 2]) / 2.0
    };
    estimates.iter().map(|e| e / median.max(1.0)).collect()
}

/// Whether a backend at `ratio` times the median is slow, given whether it `was`.
pub fn is_slow(ratio: f64, was: bool, limit: f64) -> bool {
    limit > 0.0 && ratio > if was { limit * HYSTERESIS } else { limit }
}

/// One comparison of `pool`'s backends, at most once a second (the health tick calls it).
pub(super) fn sweep(pool: &Pool, now: u64) {
    let Some(cfg) = &pool.config.outlier else {
        return;
    };
    if cfg.latency_ratio == 0.0 || now < pool.slow_swept_ms.load(Relaxed) + EVERY_MS {
        return;
    }
    pool.slow_swept_ms.store(now, Relaxed);
    let available: Vec<&Backend> = pool
        .backends
        .iter()
        .filter(|b| b.available(now))
        .map(|b| &**b)
        .collect();
    let estimates: Vec<f64> = available
        .iter()
        .map(|b| f64::from(b.limiter.median_us()))
        .collect();
    let ratios = ratios(&estimates);
    let mut marked = 0;
    for b in pool.backends.iter() {
        let k = available.iter().position(|a| std::ptr::eq(*a, &**b));
        let est = k.map_or(0.0, |k| estimates[k]);
        let ratio = k.map_or(0.0, |k| ratios[k]);
        let since = b.outlier.slow_since_ms.load(Relaxed);
        let is_slow = is_slow(ratio, since != 0, cfg.latency_ratio);
        if !is_slow {
            if since != 0 {
                b.outlier.slow_since_ms.store(0, Relaxed);
                b.gauges.slow.set(0);
                if k.is_some() {
                    pool.events().record(
                        Event::new(
                            Kind::Ejection,
                            Level::Info,
                            "available",
                            "latency back within latency_ratio of its peers",
                        )
                        .backend(&pool.name, &b.label)
                        .from_state("slow")
                        .message("backend no longer slower than its peers; full share restored"),
                    );
                }
            }
            continue;
        }
        let reason = format!(
            "latency {ratio:.1}x the pool's median ({} vs {})",
            fmt_us(est),
            fmt_us(est / ratio.max(f64::MIN_POSITIVE))
        );
        if since == 0 {
            b.outlier.slow_since_ms.store(now, Relaxed);
            b.gauges.slow.set(1);
            marked += 1;
            pool.events().record(
                Event::new(Kind::Ejection, Level::Warn, "slow", reason.clone())
                    .backend(&pool.name, &b.label)
                    .from_state("available")
                    .message(format!(
                        "backend much slower than its peers: {reason}; it gets {:.0}% of the picks",
                        SLOW_SHARE * 100.0
                    )),
            );
            continue;
        }
        let after = cfg.latency_ejection_after.as_millis() as u64;
        if now.saturating_sub(since) >= after && pool.may_eject(now) {
            let ms = b.outlier.eject(now, cfg);
            b.outlier.slow_since_ms.store(0, Relaxed);
            b.gauges.slow.set(0);
            b.gauges.ejected.set(1);
            b.gauges.ejections.inc();
            let why = format!(
                "{reason} for {}",
                humantime::format_duration(Duration::from_millis(after))
            );
            pool.events().record(
                Event::new(Kind::Ejection, Level::Warn, "ejected", why.clone())
                    .backend(&pool.name, &b.label)
                    .from_state("slow")
                    .message(format!(
                        "backend ejected for {} after {why}",
                        humantime::format_duration(Duration::from_millis(ms))
                    )),
            );
        } else {
            marked += 1;
        }
    }
    pool.slow_marked.store(marked, Relaxed);
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backend_three_times_slower_than_the_median_is_slow() {
        let slow = |e: &[f64], was: bool| -> Vec<bool> {
            ratios(e).iter().map(|r| is_slow(*r, was, 2.5)).collect()
        };
        assert_eq!(
            slow(&[10.0, 11.0, 9.0, 30.0], false),
            [false, false, false, true]
        );
        // All slow together: the median moves with them, nothing stands out.
        assert_eq!(slow(&[40.0, 44.0, 41.0], false), [false; 3]);
        // Two measured backends cannot tell which is odd; unmeasured ones are never slow.
        assert_eq!(slow(&[10.0, 90.0, 0.0], false), [false; 3]);
        assert_eq!(slow(&[10.0, 10.0, 10.0, 0.0], false), [false; 4]);
        // Hovering at the threshold: marked once over it, kept until well under it.
        assert!(!slow(&[10.0, 10.0, 10.0, 24.0], false)[3]);
        assert!(slow(&[10.0, 10.0, 10.0, 24.0], true)[3]);
        assert!(!slow(&[10.0, 10.0, 10.0, 19.0], true)[3]);
        // Off.
        assert!(!is_slow(9.0, false, 0.0));
    }
}
