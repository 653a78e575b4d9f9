//! `brace demo`: the embedded demo config and three small app servers on loopback that it
//! proxies to, one healthy, one flaky (fails a share of requests with 500), one slow.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::time::Duration;

/// The demo config, also at `config/demo.toml`.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

#[derive(Clone, Copy)]
pub enum Behaviour {
    Healthy,
    /// Answers 503 to this percentage of requests.
    Flaky(u32),
    /// Answers after this delay; one request in ten takes ten times as long.
    Slow(Duration),
}

pub struct DemoBackend {
    pub name: &'static str,
    pub addr: &'static str,
    pub behaviour: Behaviour,
}

/// The backends `config/demo.toml` points at.
pub const BACKENDS: [DemoBackend; 3] = [
    DemoBackend {
        name: "healthy",
        addr: "127.0.0.1:9001",
        behaviour: Behaviour::Healthy,
    },
    DemoBackend {
        name: "flaky",
        addr: "127.0.0.1:9002",
        behaviour: Behaviour::Flaky(30),
    },
    DemoBackend {
        name: "slow",
        addr: "127.0.0.1:9003",
        behaviour: Behaviour::Slow(Duration::from_millis(300)),
    },
];

pub struct DemoApp(pub &'static DemoBackend);

#[async_trait]
impl ServeHttp for DemoApp {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        // Drain any request body so the connection can be reused.
        while let Ok(Some(_)) = s.read_request_body().await {}
        let path = s.req_header().uri.path().to_owned();
        let b = self.0;
        let (status, note) = match (path.as_str(), b.behaviour) {
            ("/healthz", _) => (200, "ok"),
            (_, Behaviour::Healthy) => (200, "hello"),
            (_, Behaviour::Flaky(pct)) if fastrand::u32(0..100) < pct => (503, "failed (flaky)"),
            (_, Behaviour::Flaky(_)) => (200, "hello (this time)"),
            (_, Behaviour::Slow(d)) => {
                let d = if fastrand::u32(0..10) == 0 { d * 10 } else { d };
                tokio::time::sleep(d).await;
                (200, "hello, slowly")
            }
        };
        let body = format!(
            "{{\"backend\":\"{}\",\"addr\":\"{}\",\"path\":{:?},\"says\":\"{note}\"}}\n",
            b.name, b.addr, path
        );
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(body.into_bytes())
            .expect("static response parts")
    }
}
