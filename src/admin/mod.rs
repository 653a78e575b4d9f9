//! The admin listener: the status page (`/`), `/metrics`, `/healthz`, `/readyz` and the JSON
//! API. Separate from the proxy listeners so operator endpoints are never reachable through a
//! route. Reading needs no token; anything that changes state needs `admin.token` when set.

mod canary;
mod drain;
mod guard;
mod maintenance;
mod status;
mod upstreams;

use crate::cluster::purge::{self, Op};
use crate::runtime::State;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::Duration;

pub struct Admin {
    pub state: Arc<State>,
    /// Recent counter samples for `/api/status`, taken by the admin service.
    pub window: Arc<status::Window>,
}

/// Binds the admin address (with SO_REUSEPORT, so a gracefully upgrading successor can bind
/// it while this process drains). Fails at start, with the address, when it is taken.
pub fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let fail = |e: std::io::Error| format!("cannot listen on {addr}: {e}");
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    s.set_reuse_address(true).map_err(fail)?;
    s.set_reuse_port(true).map_err(fail)?;
    s.bind(&addr.into()).map_err(fail)?;
    s.listen(1024).map_err(fail)?;
    s.set_nonblocking(true).map_err(fail)?;
    Ok(s.into())
}

/// Serves the admin endpoints until the process exits, through the drain: the listener is
/// not tied to pingora's shutdown.
pub struct AdminService {
    pub state: Arc<State>,
    pub listener: std::sync::Mutex<Option<std::net::TcpListener>>,
}

#[async_trait]
impl pingora::services::background::BackgroundService for AdminService {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        use pingora::apps::ServerApp;
        let Some(l) = self.listener.lock().ok().and_then(|mut l| l.take()) else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(l) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("admin listener: {e}");
                return;
            }
        };
        let window = Arc::new(status::Window::default());
        // One sample of the counters a second, for the rates on the status page.
        tokio::spawn({
            let (state, window) = (self.state.clone(), window.clone());
            async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    let at = tick.tick().await;
                    window.push(status::Sample::take(&state.metrics, at.into_std()));
                }
            }
        });
        let app = Arc::new(pingora::apps::http_app::HttpServer::new_app(Admin {
            state: self.state.clone(),
            window,
        }));
        // A shutdown signal that never comes: admin connections end with the process.
        let (_keep, never) = tokio::sync::watch::channel(false);
        loop {
            let sock = match listener.accept().await {
                Ok((sock, _)) => sock,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!("admin listener: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (app, never) = (app.clone(), never.clone());
            tokio::spawn(async move {
                let stream: pingora::protocols::Stream =
                    Box::new(pingora::protocols::l4::stream::Stream::from(sock));
                let _ = app.process_new(stream, &never).await;
            });
        }
    }
}

fn text(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .body(body)
        .expect("static response parts")
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    text(status, "application/json", body.into_bytes())
}

/// Endpoints and the methods they take.
const ENDPOINTS: &[(&str, &[Method])] = &[
    ("/", &[Method::GET, Method::HEAD]),
    ("/status.js", &[Method::GET, Method::HEAD]),
    ("/metrics", &[Method::GET, Method::HEAD]),
    ("/healthz", &[Method::GET, Method::HEAD]),
    ("/readyz", &[Method::GET, Method::HEAD]),
    ("/api/status", &[Method::GET]),
    ("/api/events", &[Method::GET]),
    ("/api/upstreams", &[Method::GET]),
    ("/api/config", &[Method::GET]),
    ("/api/fleet", &[Method::GET]),
    ("/api/reload", &[Method::POST]),
    ("/api/cache/purge", &[Method::POST]),
    ("/api/cache/clear", &[Method::POST]),
];

impl Admin {
    /// `POST /api/cache/purge` with `{"url": "..."}` (one URL, all its variants) or
    /// `{"prefix": "..."}`; `POST /api/cache/clear`. Answers with how many entries went.
    ///
    /// With `[cluster]` the purge is published to every instance, and the answer lists what
    /// each removed (`cluster.instances`) and how many did not answer within a second.
    async fn purge(&self, path: &str, body: &[u8]) -> Response<Vec<u8>> {
        let snap = self.state.snapshot();
        let Some(cache) = &snap.cache else {
            return json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "no [cache] is configured"}),
            );
        };
        let op = if path == "/api/cache/clear" {
            Op::Clear
        } else {
            let req: serde_json::Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": format!("body is not JSON ({e}); send {{\"url\": \"http://host/path\"}} or {{\"prefix\": \"http://host/path/\"}}")}),
                    )
                }
            };
            // Keys hold the scheme and the host normalised as requests' are (`host`): lower
            // case, no trailing dot, no default or listener port; so does the match.
            let server = &snap.config.server;
            let ports: Vec<u16> = server
                .listen
                .iter()
                .chain(server.tls.iter().map(|t| &t.listen))
                .map(|a| a.port())
                .collect();
            let norm = |u: &str| crate::host::purge_url(u, &ports);
            match (req["url"].as_str(), req["prefix"].as_str()) {
                (Some(u), None) => Op::Url { url: norm(u) },
                (None, Some(p)) => Op::Prefix { prefix: norm(p) },
                _ => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": "give exactly one of \"url\" or \"prefix\""}),
                    )
                }
            }
        };
        let removed = op.apply(cache);
        self.state.metrics.cache_purged_total.inc_by(removed);
        let Some(cluster) = &self.state.env.cluster else {
            return json(StatusCode::OK, &serde_json::json!({ "purged": removed }));
        };
        let report = purge::broadcast(cluster, op, removed, Duration::from_secs(1)).await;
        let fleet = match report {
            Some(r) => serde_json::to_value(&r).unwrap_or_default(),
            None => {
                serde_json::json!({"error": "the cluster store could not be reached: purged on this instance only"})
            }
        };
        json(
            StatusCode::OK,
            &serde_json::json!({ "purged": removed, "cluster": fleet }),
        )
    }

    /// `GET /api/fleet`: the live instances sharing the `[cluster]` store, with drift flagged.
    async fn fleet(&self) -> Response<Vec<u8>> {
        let Some(cluster) = &self.state.env.cluster else {
            return json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": "no [cluster] is configured"}),
            );
        };
        match crate::cluster::fleet::read(cluster).await {
            Some(f) => json(
                StatusCode::OK,
                &serde_json::to_value(&f).unwrap_or_default(),
            ),
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"error": "the cluster store could not be reached"}),
            ),
        }
    }

    /// Mutating endpoints need `Authorization: Bearer TOKEN` when `admin.token` is set.
    fn authorized(&self, s: &ServerSession) -> bool {
        let snap = self.state.snapshot();
        let Some(token) = &snap.config.admin.token else {
            return true;
        };
        let given = s
            .req_header()
            .headers
            .get("authorization")
            .and_then(|v| bearer(v.as_bytes()))
            .unwrap_or(b"");
        token_matches(given, token.as_bytes())
    }
}

/// The status page: one HTML file with its style inline and its script beside it at
/// `/status.js` (brace may run where nothing else can be fetched).
const STATUS_PAGE: &str = include_str!("page.html");
const STATUS_SCRIPT: &str = include_str!("page.js");

/// The value of query parameter `key`, if given.
fn req_query(s: &ServerSession, key: &str) -> Option<String> {
    s.req_header().uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_owned())
    })
}

/// The credentials of `Authorization: Bearer TOKEN`.
fn bearer(v: &[u8]) -> Option<&[u8]> {
    crate::access::credentials(v, b"bearer")
}

/// Compares in time that depends only on the length of what the client sent: neither how
/// much of it matched nor the token's length shows in the timing.
fn token_matches(given: &[u8], token: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    if token.is_empty() {
        return false;
    }
    let mut eq = (given.len() as u64).ct_eq(&(token.len() as u64));
    for (i, b) in given.iter().enumerate() {
        eq &= b.ct_eq(&token[i % token.len()]);
    }
    bool::from(eq)
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, s: &mut ServerSession) -> Response<Vec<u8>> {
        // Read the request body (purge requests carry JSON), at most 64 KiB.
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = s.read_request_body().await {
            if body.len() + chunk.len() <= 64 * 1024 {
                body.extend_from_slice(&chunk);
            }
        }
        let req = s.req_header();
        let (method, path) = (req.method.clone(), req.uri.path().to_owned());
        let drain = drain::target(&path);
        let canary = canary::target(&path);
        let maint = maintenance::target(&path);
        let methods = ENDPOINTS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, m)| *m)
            .or((drain.is_some() || canary.is_some() || maint.is_some())
                .then_some(&[Method::POST][..]));
        match methods {
            None => {
                return text(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    b"not found; try / (the status page), /metrics, /healthz, /readyz, /api/status, /api/events, /api/upstreams, /api/config, /api/fleet, POST /api/reload, POST /api/cache/purge, POST /api/cache/clear, POST /api/upstreams/NAME/backends/ADDR/drain (or undrain), POST /api/routes/NAME/canary, POST /api/routes/NAME/maintenance\n".to_vec(),
                )
            }
            Some(methods) if !methods.contains(&method) => {
                return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", b"method not allowed\n".to_vec())
            }
            Some(_) => {}
        }
        let refusal = if guard::any_host(&path) {
            Ok(())
        } else {
            guard::host(req, &self.state.snapshot().config.admin.hosts)
        };
        let refusal = refusal.and_then(|()| match method {
            Method::POST => guard::same_origin(req),
            _ => Ok(()),
        });
        if let Err(why) = refusal {
            tracing::debug!("admin request refused: {why}");
            return json(StatusCode::FORBIDDEN, &serde_json::json!({ "error": why }));
        }
        let mutating = drain.is_some()
            || canary.is_some()
            || maint.is_some()
            || matches!(
                path.as_str(),
                "/api/reload" | "/api/cache/purge" | "/api/cache/clear"
            );
        if mutating && !self.authorized(s) {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "missing or wrong bearer token (admin.token)"}),
            );
            r.headers_mut()
                .insert("www-authenticate", http::HeaderValue::from_static("Bearer"));
            return r;
        }
        if let Some(t) = drain {
            let (status, answer) = drain::apply(&self.state, t, &body).await;
            return json(status, &answer);
        }
        if let Some(route) = maint {
            let (status, answer) = maintenance::apply(&self.state, &route, &body).await;
            return json(status, &answer);
        }
        if let Some(route) = canary {
            let (status, answer) = canary::apply(&self.state, &route, &body).await;
            return json(status, &answer);
        }
        match path.as_str() {
            "/status.js" => text(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                STATUS_SCRIPT.as_bytes().to_vec(),
            ),
            "/" => {
                let mut r = text(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    STATUS_PAGE.as_bytes().to_vec(),
                );
                // Self-contained: no script, style or image from anywhere but this listener,
                // no inline script, and never inside another page's frame.
                r.headers_mut().insert(
                    "content-security-policy",
                    http::HeaderValue::from_static(
                        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
                    ),
                );
                r
            }
            "/api/status" => json(StatusCode::OK, &status::status(&self.state, &self.window)),
            "/api/events" => {
                let q = |k: &'static str| {
                    req_query(s, k).map(move |v| v.parse::<u64>().map_err(|_| (k, v)))
                };
                match (q("since").transpose(), q("limit").transpose()) {
                    (Ok(since), Ok(limit)) => {
                        let events = self.state.metrics.events.since(
                            since.unwrap_or(0),
                            limit.map_or(crate::events::CAPACITY, |l| l as usize),
                        );
                        json(StatusCode::OK, &serde_json::json!({ "events": events }))
                    }
                    (Err((k, v)), _) | (_, Err((k, v))) => json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": format!("{k}={v:?} is not a whole number")}),
                    ),
                }
            }
            "/metrics" => {
                let snap = self.state.snapshot();
                for l in snap.limiters.values() {
                    l.refresh_gauge();
                }
                if let Some(c) = &snap.cache {
                    let m = &self.state.metrics;
                    m.cache_stored_bytes.set(c.storage.stored_bytes() as i64);
                    m.cache_entries.set(c.storage.entry_count() as i64);
                }
                if let Some(log) = &self.state.log {
                    let c = &self.state.metrics.access_log_dropped_lines_total;
                    c.inc_by(log.access_dropped().saturating_sub(c.get()));
                    let c = &self.state.metrics.process_log_dropped_lines_total;
                    c.inc_by(log.process_dropped().saturating_sub(c.get()));
                }
                text(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.state.metrics.render(),
                )
            }
            "/healthz" if self.state.log.as_ref().is_some_and(|l| l.access_stuck()) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"access log writer stuck\n".to_vec(),
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
            "/api/upstreams" => text(
                StatusCode::OK,
                "application/json",
                upstreams::json(&self.state).into_bytes(),
            ),
            "/api/config" => {
                let snap = self.state.snapshot();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "hash": snap.hash,
                        "path": self.state.config_path,
                        "toml": crate::config::redacted(&snap.source),
                    }),
                )
            }
            "/api/cache/purge" | "/api/cache/clear" => self.purge(&path, &body).await,
            "/api/fleet" => self.fleet().await,
            "/api/reload" => {
                let state = self.state.clone();
                let result = tokio::task::spawn_blocking(move || {
                    crate::runtime::reload::reload(&state, "api")
                })
                .await
                .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
                match result {
                    Ok(plan) => json(
                        StatusCode::OK,
                        &serde_json::json!({
                            "result": "applied",
                            "hash": self.state.snapshot().hash,
                            "summary": plan.summary(),
                            "not_applied_until_restart": plan.restart_required,
                            "plan": plan,
                        }),
                    ),
                    Err(e) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &serde_json::json!({
                            "result": "failed",
                            "error": e,
                            "message": "kept the running config",
                        }),
                    ),
                }
            }
            _ => text(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_and_token() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER   abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secretsecret", b"secret"));
        assert!(!token_matches(b"sec", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }
}
