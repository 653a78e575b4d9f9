//! Admission to a pool (`max_in_flight`) and choosing a backend for one attempt: the route's
//! pool first, its backup pool when the primary has none available, and the consistent-hash
//! key a request hashes by.

use super::pool::Pool;
use super::retry::RetryReason;
use crate::config::{Balance, HashKey};
use pingora::http::RequestHeader;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

impl Pool {
    /// Admits a request to the pool: its place under `max_in_flight` (`None`, counted, when
    /// the pool is full), and a request for the retry budget's count.
    pub fn admit(self: &Arc<Self>, now: u64) -> Option<PoolSlot> {
        let Some(slot) = PoolSlot::take(self) else {
            self.stats.in_flight_rejected.inc();
            return None;
        };
        self.budget.note_request(now);
        Some(slot)
    }

    /// No backend could be chosen: counts a breaker refusal when breakers are why, and says
    /// when to come back (`Retry-After`).
    pub fn none_available(&self, now: u64) -> Duration {
        if self.breakers_open(now) {
            self.stats.breaker_rejected.inc();
        }
        self.retry_after(now)
    }
}

/// One place under a pool's `max_in_flight`; released when dropped.
pub struct PoolSlot(Arc<Pool>);

impl PoolSlot {
    /// Takes a place, or `None` when the pool is full.
    fn take(pool: &Arc<Pool>) -> Option<PoolSlot> {
        use std::sync::atomic::Ordering::AcqRel;
        let max = pool.config.max_in_flight;
        if max == 0 {
            return Some(PoolSlot(pool.clone()));
        }
        let before = pool.in_flight.fetch_add(1, AcqRel);
        let slot = PoolSlot(pool.clone());
        (before < max).then_some(slot)
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        if self.0.config.max_in_flight > 0 {
            self.0
                .in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

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
        HashKey::Cookie(name) => super::sticky::cookie(req, name)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
    }
}

/// True when one more attempt is allowed by `attempts` (`tries` were made) and the pool's
/// retry budget; counts it. Like nginx's `proxy_next_upstream`, a retry goes to another
/// backend: with none left (in the pool or its backup), the client gets the real error
/// rather than a retry that could only fail.
pub fn may_retry(
    pool: &Pool,
    pools: &BTreeMap<String, Arc<Pool>>,
    tried: &[SocketAddr],
    tries: u32,
    reason: RetryReason,
    now: u64,
) -> bool {
    let r = &pool.config.retry;
    if tries > r.attempts {
        return false;
    }
    // A retry never queues and never adds to a pool that is shedding: it goes only to a
    // backend with room under its adaptive limit.
    if pool.config.adaptive.enforced() && (pool.shedding(now) || !pool.queue().is_empty()) {
        return false;
    }
    let untried = |p: &Pool| {
        let limited = p.config.adaptive.enforced();
        p.backends
            .iter()
            .any(|b| !tried.contains(&b.addr) && b.available(now) && (!limited || b.has_room()))
    };
    let backup = pool.config.backup.as_deref().and_then(|b| pools.get(b));
    if !untried(pool) && !backup.is_some_and(|b| untried(b)) {
        return false;
    }
    // A connection that was never made put no work on any backend, so retrying it elsewhere
    // cannot amplify load: only retries of requests a backend received draw on the budget.
    let free = reason == RetryReason::ConnectError;
    if !free
        && !pool
            .budget
            .try_retry(now, r.budget_percent, r.min_retries_per_second)
    {
        pool.stats.budget_exhausted.inc();
        return false;
    }
    pool.stats.retries.get(reason).inc();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/cart/1?x=2", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn by(key: HashKey, r: &RequestHeader, ip: Option<IpAddr>) -> String {
        String::from_utf8(hash_key(r, ip, &Balance::ConsistentHash(key))).unwrap()
    }

    #[test]
    fn hash_keys_by_cookie_path_header_and_client() {
        let r = req(&[
            ("cookie", "a=1; sid2=no"),
            ("cookie", "sid=abc;theme=dark"),
            ("x-user", "u7"),
        ]);
        // The named cookie, across Cookie lines; a longer name that starts alike is not it.
        assert_eq!(by(HashKey::Cookie("sid".into()), &r, None), "abc");
        assert_eq!(by(HashKey::Cookie("theme".into()), &r, None), "dark");
        assert_eq!(by(HashKey::Cookie("none".into()), &r, None), "");
        // The path without the query.
        assert_eq!(by(HashKey::Path, &r, None), "/cart/1");
        assert_eq!(by(HashKey::Header("x-user".into()), &r, None), "u7");
        assert_eq!(by(HashKey::Header("x-none".into()), &r, None), "");
        let ip = Some(IpAddr::from([192, 0, 2, 9]));
        assert_eq!(by(HashKey::ClientIp, &r, ip), "192.0.2.9");
        assert_eq!(by(HashKey::ClientIp, &r, None), "");
        // Other balancers need no key.
        assert!(hash_key(&r, ip, &Balance::RoundRobin).is_empty());
    }
}
