//! What the validation layers' unit tests share: a config from parts, and its error.

use crate::config::{parse, Config};
use std::path::Path;

/// A route `r` to upstream `u` with one backend, after `top` (sections before them), with
/// `route` lines in the route and `upstream` lines in the upstream.
pub fn text(top: &str, route: &str, upstream: &str) -> String {
    format!(
        "{top}\n[[route]]\nname = \"r\"\nupstream = \"u\"\n{route}\n[upstream.u]\nbackends = [\"127.0.0.1:9001\"]\n{upstream}\n"
    )
}

pub fn load(text: &str) -> Result<Config, String> {
    parse(text, "t.toml", Path::new("."))
        .map(|l| l.config)
        .map_err(|e| e.to_string())
}

/// Asserts that each config is refused with a message holding every wanted piece.
pub fn refused(cases: &[(String, &[&str])]) {
    for (text, want) in cases {
        let e = match load(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        for w in *want {
            assert!(e.contains(w), "{w:?} not in {e:?} for:\n{text}");
        }
    }
}
