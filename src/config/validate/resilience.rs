//! Validation of an upstream's health check, outlier ejection and retry tables.

use super::*;

pub(super) fn validate_health(h: FileHealthCheck, p: &KeyPath) -> VResult<HealthCheckConfig> {
    let FileHealthCheck {
        kind,
        path,
        host,
        expect_status,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
    } = h;
    let kind = match kind {
        CheckType::Tcp => CheckKind::Tcp,
        CheckType::Http => {
            if !path.starts_with('/') {
                return err(p.key("path"), format!("\"{path}\" must start with '/'"));
            }
            // Both go into the request line and a header field as they are: no control
            // character (CR, LF) may split them.
            if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return err(p.key("path"), "a control character or space in the path");
            }
            let plain = crate::host::Listener {
                tls: false,
                port: None,
            };
            if let Some(h) = &host {
                if crate::host::normalise(h, plain).is_none() {
                    return err(p.key("host"), format!("{h:?} is not a host[:port]"));
                }
            }
            let expect = status_range(&expect_status).ok_or_else(|| {
                (
                    p.key("expect_status"),
                    format!("invalid status range \"{expect_status}\": expected e.g. \"200\" or \"200-399\" within 100-599"),
                )
            })?;
            CheckKind::Http { path, host, expect }
        }
    };
    let interval = within(p.key("interval"), interval.0, MS, HOUR)?;
    let timeout = within(p.key("timeout"), timeout.0, MS, HOUR)?;
    if timeout > interval {
        return err(
            p.key("timeout"),
            format!(
                "timeout ({}) is longer than interval ({}): checks would overlap",
                crate::config::units::Dur(timeout),
                crate::config::units::Dur(interval)
            ),
        );
    }
    for (k, v) in [
        ("healthy_threshold", healthy_threshold),
        ("unhealthy_threshold", unhealthy_threshold),
    ] {
        if v == 0 {
            return err(p.key(k), "must be at least 1");
        }
    }
    Ok(HealthCheckConfig {
        kind,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
    })
}

pub(super) fn status_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v = s.trim().parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&a) && (100..=599).contains(&b) && a <= b).then_some((a, b))
}

pub(super) fn validate_outlier(o: FileOutlier, p: &KeyPath) -> VResult<Option<OutlierConfig>> {
    let FileOutlier {
        consecutive_failures,
        base_ejection,
        max_ejection,
        max_ejection_percent,
        latency_ratio,
        latency_ejection_after,
    } = o;
    if latency_ratio != 0.0 && !(1.5..=100.0).contains(&latency_ratio) {
        return err(
            p.key("latency_ratio"),
            format!("{latency_ratio}: give 0 (off) or a ratio from 1.5 to 100"),
        );
    }
    let latency_ejection_after = within(
        p.key("latency_ejection_after"),
        latency_ejection_after.0,
        Duration::from_secs(1),
        DAY,
    )?;
    if consecutive_failures == 0 {
        return Ok(None);
    }
    let base = within(p.key("base_ejection"), base_ejection.0, MS, DAY)?;
    within(p.key("max_ejection"), max_ejection.0, MS, DAY)?;
    if max_ejection.0 < base {
        return err(p.key("max_ejection"), "must be at least base_ejection");
    }
    if max_ejection_percent > 100 {
        return err(
            p.key("max_ejection_percent"),
            format!("{max_ejection_percent} is over 100"),
        );
    }
    Ok(Some(OutlierConfig {
        consecutive_failures,
        base_ejection: base,
        max_ejection: max_ejection.0,
        max_ejection_percent,
        latency_ratio,
        latency_ejection_after,
    }))
}

pub(super) fn validate_retry(r: FileRetry, p: &KeyPath) -> VResult<RetryConfig> {
    let FileRetry {
        attempts,
        on,
        budget_percent,
        min_retries_per_second,
        backoff,
        idempotency_key,
        pause_on,
        max_pause,
        buffer_body,
    } = r;
    if buffer_body.0 > crate::config::resilience::MAX_BUFFER_BODY {
        return err(
            p.key("buffer_body"),
            format!(
                "{} bytes: at most 8MiB (each request's body is held in memory that long)",
                buffer_body.0
            ),
        );
    }
    if attempts > 10 {
        return err(p.key("attempts"), format!("{attempts} is over 10"));
    }
    let mut set = RetryOn::default();
    for o in on {
        match o {
            RetryCondition::ConnectError => set.connect_error = true,
            RetryCondition::Timeout => set.timeout = true,
            RetryCondition::Error => set.error = true,
            RetryCondition::Status502 => set.status_502 = true,
            RetryCondition::Status503 => set.status_503 = true,
            RetryCondition::Status504 => set.status_504 = true,
        }
    }
    if budget_percent > 100 {
        return err(
            p.key("budget_percent"),
            format!("{budget_percent} is over 100"),
        );
    }
    Ok(RetryConfig {
        attempts,
        on: set,
        budget_percent,
        min_retries_per_second,
        backoff: within(p.key("backoff"), backoff.0, Duration::ZERO, MINUTE)?,
        idempotency_key,
        pause_on_503: pause_on.contains(&PauseStatus::Status503),
        pause_on_429: pause_on.contains(&PauseStatus::Status429),
        max_pause: within(p.key("max_pause"), max_pause.0, Duration::ZERO, HOUR)?,
        buffer_body: buffer_body.0,
    })
}

#[cfg(test)]
mod tests;
