//! The cache key: which URL and request headers tell two stored responses apart (the
//! primary key, with `key_query` and `key_headers`), the variance key a response's `Vary`
//! adds, and the query a cacheable request forwards (only what the key keeps).

use crate::config::{KeyQuery, RouteCacheConfig};
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, VarianceBuilder};
use pingora::http::RequestHeader;

/// `scheme://host/path?query` as the cache sees it: the host lower-cased, the query filtered
/// by `key_query` (kept parameters sorted, so their order does not split the key). `host` is
/// the request's host as the client named it; `tls` whether it came over TLS.
pub fn url(req: &RequestHeader, tls: bool, host: &str, policy: &RouteCacheConfig) -> String {
    let path = req.uri.path();
    let mut u = String::with_capacity(16 + host.len() + path.len());
    u.push_str(if tls { "https://" } else { "http://" });
    let at = u.len();
    u.push_str(host);
    u[at..].make_ascii_lowercase();
    u.push_str(path);
    if let Some(q) = req.uri.query() {
        match &policy.key_query {
            KeyQuery::All => {
                u.push('?');
                u.push_str(q);
            }
            KeyQuery::None => {}
            KeyQuery::Only(names) => {
                let mut kept: Vec<&str> = keyed_params(names, q).collect();
                kept.sort_unstable();
                if !kept.is_empty() {
                    u.push('?');
                    u.push_str(&kept.join("&"));
                }
            }
        }
    }
    u
}

/// The query to send upstream for a request the cache may store: with `key_query` a list,
/// only those parameters (in the client's order); with `"none"`, no query. What is fetched is
/// then exactly what is keyed, so an unkeyed parameter cannot change a page that is stored for
/// everyone. `None` when the query goes as it is.
pub fn forwarded_query(policy: &RouteCacheConfig, query: &str) -> Option<String> {
    match &policy.key_query {
        KeyQuery::All => None,
        KeyQuery::None => Some(String::new()),
        KeyQuery::Only(names) => {
            let kept: Vec<&str> = keyed_params(names, query).collect();
            (kept.len() != query.split('&').count()).then(|| kept.join("&"))
        }
    }
}

/// The `name=value` parameters of `query` whose name is in `key_query`, in the client's order.
fn keyed_params<'a>(names: &'a [String], query: &'a str) -> impl Iterator<Item = &'a str> {
    query.split('&').filter(move |p| {
        names
            .iter()
            .any(|n| p.split('=').next() == Some(n.as_str()))
    })
}

/// `cache_key_callback`: the URL, then one line per `key_headers` entry. The scheme and Host
/// are always part of it, so one host's content is never served for another. A believed
/// `X-Forwarded-Host` (`forwarded_host`) reaches the upstream, which may build the page from
/// it: it is then part of what the page depends on.
pub fn key(
    req: &RequestHeader,
    tls: bool,
    host: &str,
    policy: &RouteCacheConfig,
    forwarded_host: Option<&http::HeaderValue>,
) -> CacheKey {
    let mut primary = url(req, tls, host, policy);
    for h in &policy.key_headers {
        let values: Vec<&[u8]> = req
            .headers
            .get_all(h.as_str())
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        primary.push('\n');
        primary.push_str(h);
        primary.push(':');
        primary.push_str(&String::from_utf8_lossy(&values.join(&b","[..])));
    }
    if let Some(v) = forwarded_host {
        primary.push_str("\nx-forwarded-host:");
        primary.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    let hash = primary_hash(primary.as_bytes());
    let mut key = CacheKey::new(primary, "");
    key.set_primary_bin_override(hash);
    key
}

/// The primary key's 128-bit hash, set on the key so that pingora does not make its own
/// (BLAKE2b: ~1.9k instructions, the largest single cost of a cache hit): SipHash-1-3 (std's
/// `RandomState`) under a key drawn at start, over the primary with a 0 and with a 1
/// appended. The key is secret, so a client cannot choose two URLs that collide; the hash
/// never leaves the process (the store is in memory, and a purge names URLs).
fn primary_hash(primary: &[u8]) -> HashBinary {
    use std::hash::BuildHasher;
    static KEY: std::sync::LazyLock<std::hash::RandomState> =
        std::sync::LazyLock::new(std::hash::RandomState::new);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&KEY.hash_one((primary, 0u8)).to_le_bytes());
    out[8..].copy_from_slice(&KEY.hash_one((primary, 1u8)).to_le_bytes());
    out
}

/// `cache_vary_filter`: the request's values of the response's `Vary` headers, with names
/// lower-cased and list values' whitespace normalised, so `gzip,deflate` and `gzip, deflate`
/// share a variant.
pub fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    let names: Vec<String> = meta
        .headers()
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut vb = VarianceBuilder::new();
    for n in names {
        let joined: Vec<String> = req
            .headers
            .get_all(n.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect();
        vb.add_owned_name_value(n, joined.join(",").into_bytes());
    }
    vb.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_hash_is_stable_and_tells_keys_apart() {
        let a = primary_hash(b"http://a/x");
        assert_eq!(a, primary_hash(b"http://a/x"));
        assert_ne!(a, primary_hash(b"http://a/y"));
        assert_ne!(a, primary_hash(b"http://a/x\n"));
        assert_ne!(a[..8], a[8..], "the two halves are independent");
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let h = primary_hash(format!("http://a/{i}").as_bytes());
            assert!(seen.insert(h[..8].to_vec()) & seen.insert(h[8..].to_vec()));
        }
    }
}
