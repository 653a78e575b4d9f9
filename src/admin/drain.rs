//! `POST /api/upstreams/NAME/backends/ADDR/drain` and `.../undrain`: take a backend out of
//! rotation for a deploy, and put it back. The body is optional: `{"reason": "..."}` goes
//! into the event. With `[cluster]` the drain is written to the shared store, so every
//! instance applies it (`runtime::drain`).

use crate::runtime::{drain, State};
use http::StatusCode;
use serde_json::json;
use std::net::SocketAddr;

/// A drain request's target, read from its path.
pub struct Target {
    upstream: String,
    addr: String,
    on: bool,
}

/// The target of a drain path, or `None` for any other path.
pub fn target(path: &str) -> Option<Target> {
    let rest = path.strip_prefix("/api/upstreams/")?;
    let (upstream, rest) = rest.split_once("/backends/")?;
    let (addr, verb) = rest.rsplit_once('/')?;
    let on = match verb {
        "drain" => true,
        "undrain" => false,
        _ => return None,
    };
    (!upstream.is_empty() && !upstream.contains('/') && !addr.contains('/')).then(|| Target {
        upstream: upstream.to_owned(),
        addr: addr.to_owned(),
        on,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    reason: Option<String>,
}

/// Applies `t` here and, with `[cluster]`, across the fleet; the answer says what it did.
pub async fn apply(state: &State, t: Target, body: &[u8]) -> (StatusCode, serde_json::Value) {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, json!({ "error": msg }));
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Body>(body) {
            Ok(b) => b.reason,
            Err(e) => {
                return bad(format!(
                    "body: {e}; send nothing or {{\"reason\": \"...\"}}"
                ))
            }
        }
    };
    // `[::1]:8080` may arrive percent-encoded.
    let raw = percent_encoding::percent_decode_str(&t.addr).decode_utf8_lossy();
    let Ok(addr) = raw.parse::<SocketAddr>() else {
        return bad(format!(
            "\"{raw}\" is not a backend address; give IP:PORT as /api/upstreams shows it"
        ));
    };
    let by = match &reason {
        Some(r) => format!("admin API: {}", r.chars().take(200).collect::<String>()),
        None => "admin API".to_owned(),
    };
    let done = match drain::set(state, &t.upstream, addr, t.on, &by) {
        Ok(d) => d,
        Err(e) => return (StatusCode::NOT_FOUND, json!({ "error": e })),
    };
    let mut answer = serde_json::to_value(&done).unwrap_or_default();
    if let Some(cluster) = &state.env.cluster {
        answer["cluster"] = shared(drain::share(cluster, &t.upstream, addr, t.on).await);
    }
    (StatusCode::OK, answer)
}

/// The `cluster` part of an answer to a change the fleet shares: whether the store took it.
pub(super) fn shared(took: Option<()>) -> serde_json::Value {
    match took {
        Some(()) => json!({ "shared": true }),
        None => json!({
            "shared": false,
            "error": "the cluster store could not be reached: applied on this instance only",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn drain_paths() {
        let t = target("/api/upstreams/api/backends/127.0.0.1:8080/drain").unwrap();
        assert_eq!(
            (t.upstream.as_str(), t.addr.as_str(), t.on),
            ("api", "127.0.0.1:8080", true)
        );
        let t = target("/api/upstreams/api/backends/%5B::1%5D:80/undrain").unwrap();
        assert_eq!((t.addr.as_str(), t.on), ("%5B::1%5D:80", false));
        for p in [
            "/api/upstreams",
            "/api/upstreams/api/backends/1.2.3.4:5/nuke",
            "/api/upstreams//backends/1.2.3.4:5/drain",
            "/api/upstreams/a/b/backends/1.2.3.4:5/drain",
            "/api/upstreams/api/backends/1.2.3.4:5/x/drain",
        ] {
            assert!(target(p).is_none(), "{p}");
        }
    }
}
