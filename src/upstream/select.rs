//! Choosing a backend for one attempt: the route's pool first, its backup pool when the
//! primary has none available, and the consistent-hash key a request hashes by.

use super::pool::Pool;
use crate::config::{Balance, HashKey};
use pingora::http::RequestHeader;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Picks an untried backend from `primary`, else from its backup pool (named in its config,
/// found in `pools`). A half-open breaker admits only its trial calls; a backend that lost
/// the race for the last permit is skipped.
pub fn choose(
    pools: &BTreeMap<String, Arc<Pool>>,
    primary: &Arc<Pool>,
    key: &[u8],
    tried: &[SocketAddr],
    now: u64,
) -> Option<(Arc<Pool>, usize)> {
    let pick = |p: &Arc<Pool>| {
        let mut skip: Option<Vec<SocketAddr>> = None;
        for _ in 0..=p.backends.len() {
            let i = p.pick(key, skip.as_deref().unwrap_or(tried), now)?;
            if p.acquire(i, now) {
                return Some((p.clone(), i));
            }
            skip.get_or_insert_with(|| tried.to_vec())
                .push(p.backends[i].addr);
        }
        None
    };
    pick(primary).or_else(|| {
        let backup = pools.get(primary.config.backup.as_deref()?)?;
        let found = pick(backup)?;
        primary.stats.backup_used.inc();
        Some(found)
    })
}

/// The consistent-hash key of a request; empty for other algorithms. A request without the
/// header or cookie hashes as empty.
pub fn hash_key(req: &RequestHeader, client_ip: Option<IpAddr>, balance: &Balance) -> Vec<u8> {
    let Balance::ConsistentHash(key) = balance else {
        return Vec::new();
    };
    match key {
        HashKey::ClientIp => client_ip
            .map(|ip| ip.to_string().into_bytes())
            .unwrap_or_default(),
        HashKey::Path => req.uri.path().as_bytes().to_vec(),
        HashKey::Header(name) => req
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
        HashKey::Cookie(name) => req
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes().to_vec())
            .unwrap_or_default(),
    }
}
