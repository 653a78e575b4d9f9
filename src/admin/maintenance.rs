//! `POST /api/routes/NAME/maintenance` with `{"on": true | false}` (and an optional
//! `"reason"`): a route's maintenance mode, without a reload (`runtime::maintenance`). With
//! `[cluster]` the change reaches every instance.

use crate::runtime::{maintenance, State};
use http::StatusCode;
use serde_json::json;

/// The route named by a maintenance path, or `None` for any other path.
pub fn target(path: &str) -> Option<String> {
    let route = path
        .strip_prefix("/api/routes/")?
        .strip_suffix("/maintenance")?;
    (!route.is_empty() && !route.contains('/')).then(|| route.to_owned())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    on: bool,
    reason: Option<String>,
}

pub async fn apply(state: &State, route: &str, body: &[u8]) -> (StatusCode, serde_json::Value) {
    let Body { on, reason } = match serde_json::from_slice::<Body>(body) {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("body: {e}; send {{\"on\": true}} or {{\"on\": false}}");
            return (StatusCode::BAD_REQUEST, json!({ "error": msg }));
        }
    };
    let by = match &reason {
        Some(r) => format!("admin API: {}", r.chars().take(200).collect::<String>()),
        None => "admin API".to_owned(),
    };
    let changed = match maintenance::set(state, route, on, &by) {
        Ok(c) => c,
        Err(e) => return (StatusCode::NOT_FOUND, json!({ "error": e })),
    };
    let mut answer = json!({ "route": route, "maintenance": on, "changed": changed });
    if let Some(cluster) = &state.env.cluster {
        answer["cluster"] = super::drain::shared(maintenance::share(cluster, route, on).await);
    }
    (StatusCode::OK, answer)
}

#[cfg(test)]
mod tests {
    #[test]
    fn maintenance_paths() {
        assert_eq!(
            super::target("/api/routes/shop/maintenance").as_deref(),
            Some("shop")
        );
        for p in [
            "/api/routes//maintenance",
            "/api/routes/a/b/maintenance",
            "/api/routes/shop/canary",
        ] {
            assert_eq!(super::target(p), None, "{p}");
        }
    }
}
