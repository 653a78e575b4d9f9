//! Global rate limits: one budget per key shared by every instance on the `[cluster]` Redis.
//!
//! No Redis round trip per request: an instance takes tokens from the shared bucket in
//! leases (`[rate_limit.NAME] lease`, by default a fiftieth of a second's rate) and spends
//! them locally; when a lease runs low it fetches the next one in the background. A request
//! waits on Redis only when its key has no tokens and no refusal in force here (the first
//! request of a key, or one that outruns the prefetch), and then at most `[cluster] timeout`
//! in all, however many leases it waits for.
//! When Redis refuses (the shared bucket is empty), the instance refuses locally until the
//! bucket has had time to refill half a lease, and fetches again then.
//!
//! Accuracy: Redis hands out no more than the bucket allows (`burst` plus `rate` per `per`),
//! so the fleet can exceed the limit only by tokens leased and spent later, at most one
//! lease per instance and key; it can fall short by leases that expire unspent (a lease
//! lives `LEASE_TTL`). While Redis cannot be reached, `on_store_error` decides: `local`
//! limits each instance to `rate / instances` (instances: `[cluster] expected_instances`, or
//! the live count at the last heartbeat), `allow` or `deny`.

use super::{Decision, KeyValue};
use crate::cluster::Cluster;
use crate::config::StoreFallback;
use prometheus::{Histogram, IntCounter};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long leased tokens stay spendable; unspent ones are given up.
const LEASE_TTL: Duration = Duration::from_millis(500);
/// After a failed lease request, a key asks its fallback for this long before trying again.
const RETRY_STORE_AFTER: Duration = crate::cluster::DOWN_FOR;

pub struct Global {
    inner: Arc<Inner>,
    leases: moka::sync::Cache<KeyValue, Arc<Lease>>,
    pub fallback: StoreFallback,
}

struct Inner {
    cluster: Arc<Cluster>,
    /// `NAMESPACE:rl:NAME:`.
    prefix: String,
    lease: u32,
    interval_us: u64,
    capacity_us: u64,
    store_errors: IntCounter,
    pub fallbacks: IntCounter,
    wait: Histogram,
}

#[derive(Default)]
struct Lease {
    st: Mutex<LeaseState>,
    done: Notify,
}

#[derive(Default)]
struct LeaseState {
    /// Tokens leased and not spent.
    tokens: u32,
    expires_us: u64,
    /// Redis said the shared bucket is empty: refuse until then.
    denied_until_us: u64,
    /// The store failed for this key: fallback until then.
    failed_until_us: u64,
    /// Tokens the shared bucket still held at the last lease.
    available: u32,
    fetching: bool,
    /// A request was refused while `denied_until_us` held: fetch again when it ends.
    wanted: bool,
    /// Requests the local fallback let through while the store could not be asked: taken
    /// from the shared bucket with the next lease, so an outage does not add its spending to
    /// the budget the shared bucket refilled meanwhile.
    debt: u32,
}

/// What the shared budget says; `None` from [`Global::check`] means ask the fallback.
impl Global {
    pub fn new(
        name: &str,
        cluster: &Arc<Cluster>,
        cfg: &crate::config::RateLimitConfig,
        interval_us: u64,
        capacity_us: u64,
        metrics: &crate::metrics::Metrics,
        old: Option<&Global>,
    ) -> Global {
        let leases = match old {
            Some(o)
                if o.inner.interval_us == interval_us
                    && o.inner.capacity_us == capacity_us
                    && o.inner.lease == cfg.lease =>
            {
                o.leases.clone()
            }
            _ => moka::sync::Cache::builder()
                .max_capacity(cfg.max_keys)
                .time_to_idle(LEASE_TTL.max(RETRY_STORE_AFTER) * 2)
                .build(),
        };
        Global {
            inner: Arc::new(Inner {
                cluster: cluster.clone(),
                prefix: cluster.key(&format!("rl:{name}:")),
                lease: cfg.lease,
                interval_us,
                capacity_us,
                store_errors: metrics
                    .rate_limit_store_errors_total
                    .with_label_values(&[name]),
                fallbacks: metrics
                    .rate_limit_store_fallbacks_total
                    .with_label_values(&[name]),
                wait: metrics.rate_limit_store_wait.with_label_values(&[name]),
            }),
            leases,
            fallback: cfg.on_store_error,
        }
    }

    pub fn instances(&self) -> u32 {
        self.inner.cluster.instances()
    }

    pub fn count_fallback(&self) {
        self.inner.fallbacks.inc();
    }

    /// Notes a request the local fallback let through for `key`, to be paid to the shared
    /// bucket when the store answers again (at most a bucket's worth is remembered).
    pub fn owe(&self, key: &KeyValue) {
        let lease = self.leases.get_with_by_ref(key, Default::default);
        let mut st = lease.st.lock().unwrap_or_else(|e| e.into_inner());
        let burst = (self.inner.capacity_us / self.inner.interval_us.max(1)) as u32;
        st.debt = st.debt.saturating_add(1).min(burst.max(1));
    }

    /// Decides one request from the shared budget; `None` when the store cannot be asked.
    pub async fn check(&self, key: &KeyValue, now_us: u64) -> Option<Decision> {
        let inner = &self.inner;
        if !inner.cluster.available(now_us) {
            return None;
        }
        let lease = self.leases.get_with_by_ref(key, Default::default);
        let mut waited: Option<Instant> = None;
        // However many leases it waits for, a request waits on the store at most `timeout`
        // in all.
        let deadline = tokio::time::Instant::now() + inner.cluster.config.timeout;
        let mut now_us = now_us;
        for _ in 0..3 {
            let notified = {
                let mut st = lease.st.lock().unwrap_or_else(|e| e.into_inner());
                if st.tokens > 0 && now_us < st.expires_us {
                    st.tokens -= 1;
                    // Fetch the next lease when a quarter of this one is left.
                    let refill = st.tokens <= inner.lease / 4 && !st.fetching;
                    st.fetching |= refill;
                    let remaining = st.tokens.saturating_add(st.available);
                    drop(st);
                    if refill {
                        spawn_fetch(inner, &lease, key);
                    }
                    if let Some(t) = waited {
                        inner.wait.observe(t.elapsed().as_secs_f64());
                    }
                    let used = u64::from(remaining).min(inner.capacity_us / inner.interval_us);
                    let refill_us = inner.capacity_us - used * inner.interval_us;
                    return Some(Decision::Allowed {
                        remaining,
                        reset_secs: super::ceil_secs(refill_us),
                    });
                }
                if st.failed_until_us > now_us {
                    return None;
                }
                if st.denied_until_us > now_us {
                    st.wanted = true;
                    let wait = st.denied_until_us - now_us;
                    return Some(Decision::Limited {
                        retry_after_secs: super::ceil_secs(wait).max(1),
                        reset_secs: super::ceil_secs(wait),
                    });
                }
                let start = !st.fetching;
                st.fetching = true;
                st.wanted = true;
                let notified = lease.done.notified();
                drop(st);
                if start {
                    spawn_fetch(inner, &lease, key);
                }
                notified
            };
            waited.get_or_insert_with(Instant::now);
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
            now_us = crate::clock::now_us();
        }
        // Three leases in a row went to other requests: the budget is that contended.
        Some(Decision::Limited {
            retry_after_secs: 1,
            reset_secs: 1,
        })
    }
}

/// Redis's key for a limit key; long text (a header value) is hashed to bound key size.
fn redis_key(prefix: &str, key: &KeyValue) -> String {
    let text = |t: &str| {
        if t.len() <= 128 {
            t.to_owned()
        } else {
            // FNV-1a: the same on every instance and every build (std's hasher may change
            // between Rust releases, and a fleet mid-rollout must agree on keys).
            format!("#{}", crate::config::fnv1a_hex(t.as_bytes()))
        }
    };
    match key {
        KeyValue::Ip(ip) => format!("{prefix}{ip}"),
        KeyValue::Text(t) => format!("{prefix}{}", text(t)),
        KeyValue::IpText(ip, t) => format!("{prefix}{ip}|{}", text(t)),
    }
}

fn spawn_fetch(inner: &Arc<Inner>, lease: &Arc<Lease>, key: &KeyValue) {
    let (inner, lease, key) = (inner.clone(), lease.clone(), redis_key(&inner.prefix, key));
    tokio::spawn(async move { fetch(inner, lease, key).await });
}

/// Asks Redis for a lease and records the answer; wakes every request waiting on it. A
/// refused key is asked again as soon as it may have tokens, if requests came meanwhile, so
/// that they find a lease rather than wait for one.
async fn fetch(inner: Arc<Inner>, lease: Arc<Lease>, key: String) {
    loop {
        let debt = lease.st.lock().unwrap_or_else(|e| e.into_inner()).debt;
        let grant = inner
            .cluster
            .take(
                &key,
                inner.lease.saturating_add(debt),
                inner.interval_us,
                inner.capacity_us,
            )
            .await;
        let now_us = crate::clock::now_us();
        let again = {
            let mut st = lease.st.lock().unwrap_or_else(|e| e.into_inner());
            st.fetching = false;
            match grant {
                Some(g) if g.granted > 0 => {
                    // What the fallback spent is paid first.
                    let paid = g.granted.min(st.debt);
                    st.debt -= paid;
                    st.tokens += g.granted - paid;
                    st.expires_us = now_us + LEASE_TTL.as_micros() as u64;
                    st.available = g.available;
                    st.denied_until_us = 0;
                    None
                }
                Some(g) => {
                    // Empty: come back when half a lease has refilled (or one token, if later).
                    let half = inner.interval_us * u64::from(inner.lease.div_ceil(2));
                    let wait = g.wait_us.max(half);
                    st.denied_until_us = now_us + wait;
                    st.available = 0;
                    st.wanted = false;
                    st.fetching = true;
                    Some(wait)
                }
                None => {
                    inner.store_errors.inc();
                    st.failed_until_us = now_us + RETRY_STORE_AFTER.as_micros() as u64;
                    None
                }
            }
        };
        lease.done.notify_waiters();
        let Some(wait) = again else { return };
        tokio::time::sleep(Duration::from_micros(wait)).await;
        let mut st = lease.st.lock().unwrap_or_else(|e| e.into_inner());
        if !st.wanted {
            st.fetching = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed_and_short_ones_kept() {
        let k = KeyValue::IpText([10, 0, 0, 1].into(), "k1".into());
        assert_eq!(redis_key("b:rl:x:", &k), "b:rl:x:10.0.0.1|k1");
        let long = KeyValue::Text("a".repeat(500).into());
        let r = redis_key("b:rl:x:", &long);
        assert!(r.starts_with("b:rl:x:#") && r.len() < 40, "{r}");
        assert_ne!(
            r,
            redis_key("b:rl:x:", &KeyValue::Text("b".repeat(500).into()))
        );
    }
}
