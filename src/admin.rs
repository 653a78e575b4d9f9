//! The admin listener: `/metrics`, `/healthz`, `/readyz`. Separate from the proxy listeners so
//! operator endpoints are never reachable through a route.

use crate::runtime::State;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct Admin {
    pub state: Arc<State>,
}

fn text(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .expect("static response parts")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        let req = s.req_header();
        let (method, path) = (req.method.clone(), req.uri.path().to_owned());
        if method != Method::GET && method != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            );
        }
        match path.as_str() {
            "/metrics" => {
                for l in self.state.snapshot().limiters.values() {
                    l.refresh_gauge();
                }
                text(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.state.metrics.render(),
                )
            }
            "/healthz" => text(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/api/upstreams" => text(
                StatusCode::OK,
                "application/json",
                upstreams_json(&self.state).into_bytes(),
            ),
            "/readyz" if self.state.is_ready() => {
                text(StatusCode::OK, "text/plain", b"ready\n".to_vec())
            }
            "/readyz" => {
                let why: &[u8] = if self.state.is_draining() {
                    b"draining\n"
                } else {
                    b"starting\n"
                };
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", why.to_vec())
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "text/plain",
                b"not found; try /metrics, /healthz, /readyz, /api/upstreams\n".to_vec(),
            ),
        }
    }
}

/// Every pool and backend with its health, ejection, in-flight count and last check.
fn upstreams_json(state: &State) -> String {
    use crate::upstream::now_ms;
    use serde_json::json;
    let snap = state.snapshot();
    let now = now_ms();
    let wall = std::time::SystemTime::now();
    let unix = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let pools: serde_json::Map<String, serde_json::Value> = snap
        .pools
        .iter()
        .map(|(name, p)| {
            let backends: Vec<_> = p
                .backends
                .iter()
                .map(|b| {
                    let ejected = b.outlier.ejected(now);
                    let until = ejected.then(|| {
                        unix(
                            wall + std::time::Duration::from_millis(
                                b.outlier.ejected_until() - now,
                            ),
                        )
                    });
                    let last = b.health.last.lock().ok().and_then(|l| l.clone());
                    json!({
                        "addr": b.label,
                        "weight": b.weight,
                        "available": b.available(now),
                        "health": b.health.status().as_str(),
                        "ejected": ejected,
                        "ejected_until_unix": until,
                        "ejections": b.outlier.ejections.load(std::sync::atomic::Ordering::Relaxed),
                        "in_flight": b.in_flight(),
                        "breaker": {
                            "state": b.breaker.state().as_str(),
                            "open_until_unix": (!b.breaker.admits(now)).then(|| {
                                unix(wall + std::time::Duration::from_millis(b.breaker.open_until().saturating_sub(now)))
                            }),
                        },
                        "last_check": last.map(|l| json!({
                            "at_unix": unix(l.at),
                            "ok": l.ok,
                            "detail": l.detail,
                        })),
                    })
                })
                .collect();
            let value = json!({
                "balance": format!("{:?}", p.config.balance),
                "backup": p.config.backup,
                "health_check": p.config.health_check.is_some(),
                "backends": backends,
            });
            (name.clone(), value)
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "upstreams": pools })).unwrap_or_default() + "\n"
}
