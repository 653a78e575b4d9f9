//! What a test asks of a running brace: `/api/upstreams`, the attack tests' "no backend was blamed" check and its touchy tables, and concurrent load.

use super::*;

/// `POST path` to the admin listener with these extra header lines and this body.
pub fn admin_post(b: &Brace, path: &str, headers: &str, body: &str) -> Response {
    send(
        b.admin(),
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap()
}

/// Fetches `/api/upstreams` as JSON.
pub fn upstreams(b: &Brace) -> serde_json::Value {
    serde_json::from_slice(&get(b.admin(), "/api/upstreams").body).unwrap()
}

/// Asserts that no backend was charged for what a client did: every
/// `brace_upstream_requests_total` sample is a success or a client outcome (`client_abort`,
/// `client_error`: these feed neither ejection nor breakers), no backend is ejected or unhealthy, and every breaker is closed.
pub fn assert_no_backend_blamed(b: &Brace) {
    let text = b.metrics();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let value = || l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
        // brace's own resource failures (local_error) and attempts a hedge beat (cancelled)
        // blame nobody either.
        let clients = [
            "success",
            "client_abort",
            "client_error",
            "client_timeout",
            "local_error",
            "cancelled",
        ]
        .iter()
        .any(|o| l.contains(&format!("outcome=\"{o}\"")));
        if l.starts_with("brace_upstream_requests_total{") && !clients {
            assert_eq!(value(), 0.0, "a backend was blamed: {l}");
        }
        if l.starts_with("brace_upstream_backend_ejected{") {
            assert_eq!(value(), 0.0, "a backend was ejected: {l}");
        }
        if l.starts_with("brace_circuit_breaker_state{") {
            assert_eq!(value(), 0.0, "a breaker is not closed: {l}");
        }
        if l.starts_with("brace_upstream_backend_healthy{") {
            assert_eq!(value(), 1.0, "a backend is marked unhealthy: {l}");
        }
    }
}

/// Upstream tables that make a backend pay at once for any failure charged to it: the attack
/// tests use them, so a client fault wrongly blamed on the backend would eject it and open
/// its breaker.
pub const TOUCHY: &str =
    "[upstream.pool.outlier]\nconsecutive_failures = 1\nmax_ejection_percent = 100\n\
     [upstream.pool.circuit_breaker]\nconsecutive_failures = 1\n";

/// [`TOUCHY`] for an upstream of another name.
pub fn touchy(upstream: &str) -> String {
    TOUCHY.replace("upstream.pool.", &format!("upstream.{upstream}."))
}

/// `n` requests from `threads` concurrent clients; returns the statuses.
pub fn load(b: &Brace, threads: usize, n: usize, path: &'static str) -> Vec<u16> {
    let addr = b.addr();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                    out.push(try_get(addr, path).map_or(0, |r| r.status));
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// Sends `GET /` until `backend`'s breaker in `upstream` is open (state 2), at most
/// `requests` times first; returns the state's sample name, for checking it later.
pub fn trip_breaker(b: &Brace, upstream: &str, backend: SocketAddr, requests: usize) -> String {
    let state =
        format!("brace_circuit_breaker_state{{backend=\"{backend}\",upstream=\"{upstream}\"}}");
    for _ in 0..requests {
        b.get("/");
    }
    wait_for("breaker open", Duration::from_secs(5), || {
        b.metric(&state) == 2.0
    });
    state
}
