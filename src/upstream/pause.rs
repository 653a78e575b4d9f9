//! A backend's own request for a pause: a `503` (or a `429`, when `retry.pause_on` has it)
//! with `Retry-After` keeps new requests from that backend for that long, capped by
//! `retry.max_pause`, instead of retrying into it at once or counting the answer as a plain
//! failure. The answer itself reaches the client as the backend sent it.

use super::pool::Pool;
use crate::events::{Event, Kind, Level};
use std::time::{Duration, SystemTime};

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP date, from `now`.
/// `None` for anything else, or a date in the past.
pub fn retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // A number too long for u64 is "a very long time": capped later.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    at.duration_since(now).ok()
}

impl Pool {
    /// Backend `i` answered `status` with `Retry-After: value`: pauses it when the upstream
    /// honours that status and the value is good. True when it paused.
    pub fn pause(&self, i: usize, status: u16, value: &[u8], now: u64) -> bool {
        let r = &self.config.retry;
        if !r.pauses_on(status) {
            return false;
        }
        let Some(wait) = retry_after(value, SystemTime::now()) else {
            return false;
        };
        let wait = wait.min(r.max_pause);
        if wait.is_zero() {
            return false;
        }
        let b = &self.backends[i];
        b.gauges.pauses.inc();
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        if b.pause(now, now.saturating_add(ms)) {
            let reason = format!("answered {status} with Retry-After");
            self.events().record(
                Event::new(Kind::Pause, Level::Info, "paused", reason)
                    .backend(&self.name, &b.label)
                    .from_state("available")
                    .message(format!(
                        "backend paused for {} at its request",
                        humantime::format_duration(wait)
                    )),
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after(b"120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(b" 0 ", now), Some(Duration::ZERO));
        // Ten years, or more digits than fit: very long, capped by the caller.
        assert_eq!(
            retry_after(b"315360000", now),
            Some(Duration::from_secs(315_360_000))
        );
        assert_eq!(
            retry_after(b"99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(later.as_bytes(), now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(past.as_bytes(), now), None);
        for bad in [&b""[..], b"-5", b"1.5", b"soon", b"12 s", b"\xff"] {
            assert_eq!(
                retry_after(bad, now),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
