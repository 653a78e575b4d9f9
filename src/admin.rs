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
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.state.metrics.render(),
            ),
            "/healthz" => text(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
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
                b"not found; try /metrics, /healthz, /readyz\n".to_vec(),
            ),
        }
    }
}
