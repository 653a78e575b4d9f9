//! A request path's normal form, the one routing, every policy and (in `strict` mode) the
//! upstream see; the rules are in `proxy::request`'s module doc. Its own module, below
//! `config` and `proxy`, because a route's `path_prefix` is checked against it at load.

use std::borrow::Cow;

/// Why a path has no normal form (the `400`'s reason, logged and counted).
pub type Refusal = &'static str;

/// The value of the `%XY` escape at `i`, if it is one.
pub fn hex_pair(b: &[u8], i: usize) -> Option<u8> {
    let h = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    Some(h(*b.get(i + 1)?)? << 4 | h(*b.get(i + 2)?)?)
}

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// The path's normal form, or why it has none. Empty input gives an empty string. A path that
/// is already normal (the common case: no escape, backslash or empty segment) is returned as
/// it is, without an allocation.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, Refusal> {
    let b = path.as_bytes();
    let plain = !b.iter().any(|&c| c == b'%' || c == b'\\') && !path.contains("//");
    if plain {
        if has_dot_segment(path) {
            return Err("dot segment in path");
        }
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                let v = hex_pair(b, i).ok_or("malformed percent-encoding in path")?;
                match v {
                    b'/' | b'\\' => return Err("encoded slash or backslash in path"),
                    _ if v < 0x20 || v == 0x7f => return Err("encoded control character in path"),
                    _ if unreserved(v) => out.push(v as char),
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.push('%');
                        out.push(HEX[usize::from(v >> 4)] as char);
                        out.push(HEX[usize::from(v & 0xf)] as char);
                    }
                }
                i += 3;
            }
            b'\\' => return Err("backslash in path"),
            b'/' if out.ends_with('/') => i += 1,
            _ => {
                // Multi-byte UTF-8 is copied whole (it cannot contain an ASCII byte).
                let len = utf8_len(c);
                out.push_str(&path[i..i + len]);
                i += len;
            }
        }
    }
    // Dot segments are checked on the decoded form, so `%2e%2E` is `..`.
    if has_dot_segment(&out) {
        return Err("dot segment in path");
    }
    Ok(Cow::Owned(out))
}

/// True when a (decoded) path has a `.` or `..` segment; a segment's parameters (`..;x`, as
/// Tomcat reads them) do not hide it.
fn has_dot_segment(path: &str) -> bool {
    // Most paths have no dot at all: one byte scan instead of a split.
    if !path.as_bytes().contains(&b'.') {
        return false;
    }
    path.split('/').any(|seg| {
        let name = seg.split(';').next().unwrap_or(seg);
        name == "." || name == ".."
    })
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_path_is_returned_as_it_is_without_a_copy() {
        assert!(matches!(
            normalize_path("/a/b.c/d"),
            Ok(Cow::Borrowed("/a/b.c/d"))
        ));
        assert!(matches!(normalize_path(""), Ok(Cow::Borrowed(""))));
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_upper_cased_and_slashes_merged() {
        assert_eq!(normalize_path("/%61%2d%7e").unwrap(), "/a-~");
        assert_eq!(
            normalize_path("/a%2fb").unwrap_err(),
            "encoded slash or backslash in path"
        );
        assert_eq!(normalize_path("/%e2%82%ac").unwrap(), "/%E2%82%AC");
        assert_eq!(normalize_path("//a///b").unwrap(), "/a/b");
    }

    #[test]
    fn dot_segments_backslashes_and_bad_escapes_are_refused_in_any_spelling() {
        for (p, why) in [
            ("/a/../b", "dot segment in path"),
            ("/a/%2e%2E/b", "dot segment in path"),
            ("/a/..;x/b", "dot segment in path"),
            ("/a/./b", "dot segment in path"),
            ("/a\\b", "backslash in path"),
            ("/a%5cb", "encoded slash or backslash in path"),
            ("/a%zz", "malformed percent-encoding in path"),
            ("/a%0a", "encoded control character in path"),
        ] {
            assert_eq!(normalize_path(p).unwrap_err(), why, "{p}");
        }
        // A dot inside a name is not a dot segment.
        assert_eq!(
            normalize_path("/a..b/.well-known").unwrap(),
            "/a..b/.well-known"
        );
    }

    #[test]
    fn multi_byte_characters_are_copied_whole() {
        assert_eq!(normalize_path("//caf\u{e9}/%41").unwrap(), "/caf\u{e9}/A");
    }
}
