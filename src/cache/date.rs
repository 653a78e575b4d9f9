//! HTTP dates in the three forms RFC 9110 §5.6.7 names, and no other shape:
//! - IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
//! - the obsolete RFC 850 form: `Sunday, 06-Nov-94 08:49:37 GMT`
//! - the obsolete asctime form: `Sun Nov  6 08:49:37 1994`
//!
//! Leniency stays where it cannot change the instant: names in any letter case, and a
//! weekday that does not match the date. A wrong zone (`UTC`), separator, field width or
//! year form (a two-digit year in IMF-fixdate), doubled spaces or a one-digit hour are not
//! dates (and an invalid `Expires` means already expired, RFC 9111 §5.3). `httpdate` reads
//! the forms but not in any case; this is the same grammar with case folded, written by hand
//! because no well-kept crate offers that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LONG_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A date in IMF-fixdate, RFC 850 or asctime form, or `None`.
pub fn parse(v: &str) -> Option<SystemTime> {
    let v = v.trim_matches([' ', '\t']).as_bytes();
    let (day, month, year, time) = imf_fixdate(v)
        .or_else(|| rfc850(v))
        .or_else(|| asctime(v))?;
    if !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + time;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// (day, month, year, seconds into the day).
type Parts = (i64, i64, i64, u64);

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(v: &[u8]) -> Option<Parts> {
    if v.len() != 29 || v[3] != b',' || !sp(v, &[4, 7, 11, 16, 25]) {
        return None;
    }
    name(&v[..3], &DAYS)?;
    let day = digits(&v[5..7])?;
    let month = name(&v[8..11], &MONTHS)? + 1;
    let year = digits(&v[12..16])?;
    let time = clock(&v[17..25])?;
    gmt(&v[26..])?;
    Some((day, month, year, time))
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn rfc850(v: &[u8]) -> Option<Parts> {
    let comma = v.iter().position(|&b| b == b',')?;
    name(&v[..comma], &LONG_DAYS)?;
    let r = &v[comma + 1..];
    if r.len() != 23 || !sp(r, &[0, 10, 19]) || r[3] != b'-' || r[7] != b'-' {
        return None;
    }
    let day = digits(&r[1..3])?;
    let month = name(&r[4..7], &MONTHS)? + 1;
    // RFC 9110 §5.6.7 leaves the century to the recipient; as `httpdate` reads it.
    let yy = digits(&r[8..10])?;
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    let time = clock(&r[11..19])?;
    gmt(&r[20..])?;
    Some((day, month, year, time))
}

/// `Sun Nov  6 08:49:37 1994` (the day padded with a space, or two digits)
fn asctime(v: &[u8]) -> Option<Parts> {
    if v.len() != 24 || !sp(v, &[3, 7, 10, 19]) {
        return None;
    }
    name(&v[..3], &DAYS)?;
    let month = name(&v[4..7], &MONTHS)? + 1;
    let day = match v[8] {
        b' ' => digits(&v[9..10])?,
        _ => digits(&v[8..10])?,
    };
    let time = clock(&v[11..19])?;
    let year = digits(&v[20..24])?;
    Some((day, month, year, time))
}

/// Whether `v` has a single space at each of `at`.
fn sp(v: &[u8], at: &[usize]) -> bool {
    at.iter().all(|&i| v.get(i) == Some(&b' '))
}

/// The index of `v` in `names`, in any letter case.
fn name(v: &[u8], names: &[&str]) -> Option<i64> {
    let i = names
        .iter()
        .position(|n| v.eq_ignore_ascii_case(n.as_bytes()))?;
    Some(i as i64)
}

/// A run of ASCII digits, all of them.
fn digits(v: &[u8]) -> Option<i64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

/// `HH:MM:SS`, two digits each; a leap second is read as :59.
fn clock(v: &[u8]) -> Option<u64> {
    if v.len() != 8 || v[2] != b':' || v[5] != b':' {
        return None;
    }
    let (h, m, s) = (digits(&v[..2])?, digits(&v[3..5])?, digits(&v[6..])?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    u64::try_from(h * 3600 + m * 60 + s.min(59)).ok()
}

fn gmt(v: &[u8]) -> Option<()> {
    v.eq_ignore_ascii_case(b"gmt").then_some(())
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
            "Sun Nov 06 08:49:37 1994",
            "sun, 06 nov 1994 08:49:37 gmt",
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
            // The shapes the RFC 9111 suite sends as invalid `Expires` values.
            "Sun, 06 Nov 2050 08:49:37 UTC",
            "Sun, 06 Nov 50 08:49:37 GMT",
            "Sun 06 Nov 2050 08:49:37 GMT",
            "Sun,  06 Nov 2050 08:49:37 GMT",
            "Sun, 06  Nov 2050 08:49:37 GMT",
            "Sun, 18-Aug-2050 08:49:37 GMT",
            "Sun, 06 Nov 2050 8:49:37 GMT",
            "Sunday, 06-Nov-2050 08:49:37 GMT",
            "Sun Nov 6 08:49:37 2050",
            "Sun Nov  6 08:49:37 50",
            "Sun, 06 Nov 2050 08:49:37 +0000",
            "Sun, 06 Nov 2050 08:49 GMT",
            "Sun, 06 Nov 2050 08:49:37 GMT junk",
            "Xyz, 06 Nov 2050 08:49:37 GMT",
            "Sun, 06 Nov 2050 24:00:00 GMT",
        ] {
            assert_eq!(parse(v), None, "{v}");
        }
    }
}
