//! Config builders for the common shapes.

use super::*;

/// A `[[route]]` + `[upstream.NAME]` pair pointing at these upstreams.
pub fn simple_config(route_extra: &str, backends: &[&Upstream], upstream_extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n{route_extra}\n\n[upstream.pool]\nbackends = [{}]\n{upstream_extra}\n",
        list.join(", ")
    )
}

/// `GET path` for host `shop.example`, with extra header lines, on a new connection.
pub fn shop_get(b: &Brace, path: &str, headers: &str) -> Response {
    send(
        b.addr(),
        format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap()
}

/// The response's `X-Cache-Status`, or `-`.
pub fn cache_status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("-")
}
