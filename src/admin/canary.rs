//! `POST /api/routes/NAME/canary` with `{"action": "promote" | "abort" | "resume"}`: an
//! operator's hand on a canary rollout (`runtime::canary::act`). With `[cluster]` the new
//! state reaches every instance.

use crate::canary::Action;
use crate::runtime::State;
use http::StatusCode;
use serde_json::json;

/// The route named by a canary path, or `None` for any other path.
pub fn target(path: &str) -> Option<String> {
    let route = path.strip_prefix("/api/routes/")?.strip_suffix("/canary")?;
    (!route.is_empty() && !route.contains('/')).then(|| route.to_owned())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    action: Action,
}

pub async fn apply(state: &State, route: &str, body: &[u8]) -> (StatusCode, serde_json::Value) {
    let action = match serde_json::from_slice::<Body>(body) {
        Ok(b) => b.action,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("body: {e}; send {{\"action\": \"promote\" | \"abort\" | \"resume\"}}") }),
            )
        }
    };
    match crate::runtime::canary::act(state, route, action).await {
        Ok(s) => {
            let percent = state
                .snapshot()
                .rollouts
                .get(route)
                .map_or(0, |r| r.percent());
            (
                StatusCode::OK,
                json!({ "route": route, "phase": s.phase, "step": s.step, "percent": percent, "reason": s.reason }),
            )
        }
        Err(e) => (StatusCode::NOT_FOUND, json!({ "error": e })),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn canary_paths() {
        assert_eq!(
            super::target("/api/routes/api/canary").as_deref(),
            Some("api")
        );
        for p in [
            "/api/routes//canary",
            "/api/routes/a/b/canary",
            "/api/routes/api",
            "/api/routes/api/canary/x",
        ] {
            assert_eq!(super::target(p), None, "{p}");
        }
    }
}
