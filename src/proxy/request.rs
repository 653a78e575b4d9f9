//! What the request is, decided once before routing: its target (one normalised path that
//! routing, limits, the cache key, the access log and the upstream all see), and its
//! framing (`Content-Length` as one canonical number).
//!
//! The path rule (`[server] path_normalization`), as Envoy's `normalize_path` +
//! `merge_slashes` + `path_with_escaped_slashes_action = REJECT_REQUEST` and nginx's decoding
//! before `location` matching:
//! - only origin-form (`/...`), absolute-form (`http://host/...`) and `*` for `OPTIONS` are
//!   accepted; anything else is `400`;
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other escapes
//!   keep their encoding with upper-case hex digits;
//! - repeated slashes are merged;
//! - refused with `400`: a dot segment in any spelling (`.`, `..`, `%2e`, `..;x`), an encoded
//!   `/` or `\` (`%2F`, `%5C`), a backslash, `%00` or any other encoded or raw control
//!   character, and a malformed escape.
//!
//! In `strict` mode the normalised path is what the upstream receives; in `forward_as_is` the
//! route is still chosen by the normalised path but the target goes upstream byte for byte.

use crate::config::PathNormalization;
use crate::path::{hex_pair, normalize_path};
use http::Method;
use pingora::http::RequestHeader;
use pingora::protocols::http::authority::{raw_target_authority, RawTargetAuthority};
use std::borrow::Cow;

/// Why a request target is refused (the `400`'s reason, logged and counted).
pub type Refusal = &'static str;

/// The request target as brace routes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The normalised path (`*` for an asterisk-form `OPTIONS`).
    pub path: Cow<'a, str>,
    /// The query as sent, without `?`.
    pub query: Option<&'a str>,
    /// True when the upstream must be sent a rewritten target (normalised, or absolute-form
    /// turned into origin-form).
    pub rewrite: bool,
}

impl Target<'_> {
    /// The origin-form target to send upstream (`path?query`).
    pub fn origin_form(&self) -> String {
        let mut s = String::with_capacity(self.path.len() + self.query.map_or(0, |q| q.len() + 1));
        s.push_str(&self.path);
        if let Some(q) = self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

/// Classifies and normalises a request's target (see the module doc).
pub fn target<'a>(
    method: &Method,
    raw: &'a [u8],
    mode: PathNormalization,
) -> Result<Target<'a>, Refusal> {
    if raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err("control character in request target");
    }
    let Ok(raw) = std::str::from_utf8(raw) else {
        return Err("request target is not UTF-8");
    };
    if raw == "*" {
        return if method == Method::OPTIONS {
            Ok(Target {
                path: Cow::Borrowed("*"),
                query: None,
                rewrite: false,
            })
        } else {
            Err("asterisk-form target outside OPTIONS")
        };
    }
    let (path_and_query, absolute) = if raw.starts_with('/') {
        (raw, false)
    } else {
        match raw_target_authority(raw.as_bytes()) {
            RawTargetAuthority::Absolute {
                scheme,
                path_and_query,
                ..
            } if scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https") => {
                // The classifier splits on ASCII delimiters, so this is a suffix of `raw`.
                (&raw[raw.len() - path_and_query.len()..], true)
            }
            _ => return Err("request target is not origin-form or absolute-form"),
        }
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if let Some(q) = query {
        check_query(q)?;
    }
    let normal = normalize_path(path)?;
    let rewrite = match mode {
        PathNormalization::Strict => absolute || normal != path,
        PathNormalization::ForwardAsIs => false,
    };
    let path = if normal.is_empty() {
        Cow::Borrowed("/")
    } else {
        normal
    };
    Ok(Target {
        path,
        query,
        rewrite,
    })
}

/// A query is forwarded as sent, except what no upstream should ever be handed: an encoded
/// NUL or control character, or a malformed escape.
fn check_query(q: &str) -> Result<(), Refusal> {
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let v = hex_pair(b, i).ok_or("malformed percent-encoding in query")?;
            if v < 0x20 || v == 0x7f {
                return Err("encoded control character in query");
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// True for an HTTP/1.1 request with `Expect: 100-continue` (any case) and a body.
pub fn expects_continue(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        && (req.headers.contains_key(http::header::TRANSFER_ENCODING)
            || req
                .headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0"))
}

/// `Content-Length` as one decimal number (RFC 9110 §8.6, RFC 9112 §6.3): every line and
/// every list member must be the same run of digits. `Ok(None)` when there is none.
/// Leading zeros are refused: a backend that reads `010` as octal would frame the body
/// differently from brace.
pub fn content_length(headers: &http::HeaderMap) -> Result<Option<Length>, Refusal> {
    let mut found: Option<Length> = None;
    let mut lines = 0;
    for v in headers.get_all(http::header::CONTENT_LENGTH) {
        lines += 1;
        let mut members = 0;
        for member in v.as_bytes().split(|&b| b == b',') {
            members += 1;
            let m = member.trim_ascii();
            let digits = !m.is_empty() && m.len() <= 19 && m.iter().all(u8::is_ascii_digit);
            if !digits || (m.len() > 1 && m[0] == b'0') {
                return Err("invalid Content-Length");
            }
            // At most 19 digits: no overflow.
            let n = m.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            match found {
                Some(f) if f.n != n => return Err("conflicting Content-Length values"),
                _ => {
                    found = Some(Length {
                        n,
                        canonical: lines == 1 && members == 1 && m.len() == v.len(),
                    })
                }
            }
        }
    }
    Ok(found)
}

/// A `Content-Length` read by [`content_length`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    pub n: u64,
    /// One line holding one number with nothing around it, as brace would write it.
    pub canonical: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, Refusal> {
        normalize_path(p).map(Cow::into_owned)
    }

    #[test]
    fn decodes_unreserved_and_merges_slashes() {
        assert_eq!(norm("/%6cogin/x").unwrap(), "/login/x");
        assert_eq!(norm("//login//x").unwrap(), "/login/x");
        assert_eq!(norm("/a%7e%2D").unwrap(), "/a~-");
        assert_eq!(norm("/a%20b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(norm("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        assert_eq!(norm("/café").unwrap(), "/café");
        assert_eq!(norm("/a/..b/.c").unwrap(), "/a/..b/.c");
        assert_eq!(norm("/").unwrap(), "/");
    }

    #[test]
    fn refuses_what_cannot_be_normalised() {
        for p in [
            "/public\\..\\login/x",
            "/public/..;/login/x",
            "/public/..%2flogin/x",
            "/public/%2E%2E%2Flogin/x",
            "/a/%2e%2E/b",
            "/a/./b",
            "/a/..",
            "/a%5cb",
            "/a%00b",
            "/a%0d%0ab",
            "/a%zz",
            "/a%2",
            "/a/.;x/b",
        ] {
            assert!(norm(p).is_err(), "{p} should be refused");
        }
    }

    #[test]
    fn target_forms() {
        let get = Method::GET;
        let strict = PathNormalization::Strict;
        assert!(target(&get, b"nothing-here", strict).is_err());
        assert!(target(&get, b"x/../../evil", strict).is_err());
        assert!(target(&get, b"*", strict).is_err());
        assert!(target(&Method::OPTIONS, b"*", strict).is_ok());
        assert!(target(&get, b"/a\rb", strict).is_err());
        assert!(target(&get, b"/a\0b", strict).is_err());
        assert!(target(&get, b"/a?x=%00", strict).is_err());
        let t = target(&get, b"http://h.example/a//b?q=1", strict).unwrap();
        assert_eq!(
            (t.path.as_ref(), t.query, t.rewrite),
            ("/a/b", Some("q=1"), true)
        );
        let t = target(&get, b"/x?y", strict).unwrap();
        assert!(!t.rewrite);
        assert_eq!(t.origin_form(), "/x?y");
        let t = target(&get, b"//x", PathNormalization::ForwardAsIs).unwrap();
        assert_eq!((t.path.as_ref(), t.rewrite), ("/x", false));
        assert!(target(&get, b"ftp://h/x", strict).is_err());
    }

    #[test]
    fn content_length_rules() {
        let map = |vals: &[&str]| {
            let mut m = http::HeaderMap::new();
            for v in vals {
                m.append("content-length", v.parse().unwrap());
            }
            m
        };
        let n = |h: &http::HeaderMap| content_length(h).map(|l| l.map(|l| l.n));
        assert_eq!(content_length(&map(&[])), Ok(None));
        assert_eq!(n(&map(&["4"])), Ok(Some(4)));
        assert_eq!(n(&map(&["0"])), Ok(Some(0)));
        assert_eq!(n(&map(&["4, 4"])), Ok(Some(4)));
        assert_eq!(n(&map(&["4", "4"])), Ok(Some(4)));
        assert_eq!(
            n(&map(&["9999999999999999999"])),
            Ok(Some(9_999_999_999_999_999_999))
        );
        for bad in ["010", "0004", "+4", "4 4", "", "4,", "0x4", "-1"] {
            assert!(content_length(&map(&[bad])).is_err(), "{bad:?}");
        }
        assert!(content_length(&map(&["00000000000000000000004"])).is_err());
        assert!(content_length(&map(&["4", "5"])).is_err());
        let canonical = |vals: &[&str]| content_length(&map(vals)).unwrap().unwrap().canonical;
        assert!(canonical(&["4"]));
        assert!(canonical(&["1234567"]));
        assert!(!canonical(&["4, 4"]));
        assert!(!canonical(&["4", "4"]));
        assert!(!canonical(&[" 4"]));
        assert!(!canonical(&["4 "]));
    }
}
