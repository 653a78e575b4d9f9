//! HTTP dates read as RFC 9110 §5.6.7 asks of a recipient: leniently. `httpdate` parses the
//! three standard forms strictly (a wrong weekday or `nov` instead of `Nov` fails); dates
//! that it refuses are read again here by the shape of their parts, with the weekday ignored
//! and names in any case. Hand-written because no well-kept crate offers lenient HTTP dates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// A date in IMF-fixdate, RFC 850 or asctime form, or `None`.
pub fn parse(v: &str) -> Option<SystemTime> {
    let v = v.trim();
    httpdate::parse_http_date(v).ok().or_else(|| lenient(v))
}

fn lenient(v: &str) -> Option<SystemTime> {
    let mut day = None;
    let mut year = None;
    let mut month = None;
    let mut time = None;
    for (i, tok) in v
        .split([' ', ',', '-', '\t'])
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        if tok.contains(':') {
            let mut hms = tok.split(':').map(|p| p.parse::<u64>().ok());
            let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
            if hms.next().is_some() || h > 23 || m > 59 || s > 60 {
                return None;
            }
            time = Some(h * 3600 + m * 60 + s.min(59));
        } else if tok.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = tok.parse().ok()?;
            if day.is_none() && tok.len() <= 2 {
                day = Some(n);
            } else if year.is_none() {
                year = Some(match (tok.len(), n) {
                    (2, n) if n >= 70 => 1900 + n,
                    (2, n) => 2000 + n,
                    (4, n) => n,
                    _ => return None,
                });
            } else {
                return None;
            }
        } else if tok.eq_ignore_ascii_case("gmt") || tok.eq_ignore_ascii_case("utc") {
        } else if let Some(m) = MONTHS
            .iter()
            .position(|m| tok.len() == 3 && tok.eq_ignore_ascii_case(m))
        {
            month = Some(m as i64 + 1);
        } else if i == 0 && tok.bytes().all(|b| b.is_ascii_alphabetic()) {
            // The weekday: its spelling does not matter.
        } else {
            return None;
        }
    }
    let (day, month, year, time) = (day?, month?, year?, time?);
    if !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + time;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_lenient_forms_agree() {
        let want = parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        for v in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "sun, 06 nov 1994 08:49:37 gmt",
            "SUN, 06 NOV 1994 08:49:37 GMT",
            "Thursday, 06-nov-94 08:49:37 GMT",
        ] {
            assert_eq!(parse(v), Some(want), "{v}");
        }
        assert_eq!(
            want.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            784_111_777
        );
    }

    #[test]
    fn nonsense_is_not_a_date() {
        for v in [
            "",
            "0",
            "-1",
            "tomorrow",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994",
        ] {
            assert_eq!(parse(v), None, "{v}");
        }
    }
}
