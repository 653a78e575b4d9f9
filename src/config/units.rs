//! Units in config values: durations (`250ms`, `2s`, `1m`) and byte sizes (`512KiB`, `10MiB`).
//!
//! Parsed once, while the file is deserialized, so a bad value is reported with its line and
//! key path by the loader and never reaches the validated [`super::Config`].

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A duration written as a humantime string (`250ms`, `2s`, `1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `250ms`, `2s`, `1m`, `1h30m`; a bare number is refused because its unit is ambiguous.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid duration \"{s}\": give a unit, e.g. \"{t}s\" or \"{t}ms\""
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("invalid duration \"{s}\" ({e}); expected e.g. \"250ms\", \"2s\", \"1m\"")
    })
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A byte size written as `10MiB`, `512KiB`, `1GB`, or a plain integer number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Str(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `10MiB`, `512KiB`, `1GB`, `100` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size \"{s}\" ({e}); expected e.g. \"512KiB\", \"10MiB\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("10").unwrap_err().contains("give a unit"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn sizes_in_decimal_and_binary_units_and_bare_bytes() {
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("1 KiB").unwrap(), 1024);
        assert_eq!(parse_size(" 100 ").unwrap(), 100);
        assert!(parse_size("-1MiB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn compound_durations_and_refusals() {
        assert_eq!(
            parse_duration("1h30m").unwrap(),
            Duration::from_secs(90 * 60)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
