//! The shared store of a fleet: one Redis (or Valkey) that brace instances use for global
//! rate limits (the `limit` module's global scope), cluster-wide purge ([`purge`]) and the
//! fleet view ([`fleet`]). Optional: without `[cluster]` none of this exists and nothing waits
//! on it.
//!
//! The store is never in the way of a request. One multiplexed connection (the `redis`
//! crate's `ConnectionManager`, which reconnects with backoff) carries every command; after a
//! failed command the store counts as down for [`DOWN_FOR`], so requests decide by their
//! fallback at once instead of each waiting out a timeout. A background service
//! (`runtime::fleet`) opens the connection, keeps the purge subscription and beats the
//! heartbeat; this module knows nothing above it.

pub mod canary;
pub mod fleet;
pub mod marks;
pub mod purge;

use crate::config::ClusterConfig;
use crate::metrics::Metrics;
use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

/// How long the store counts as down after a command failed or timed out.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// GCRA over Redis, handing out up to `n` tokens at once: the same rule as a local limit's
/// bucket (the `limit` module's), kept as one number, the theoretical arrival time (µs, on Redis's
/// clock, so instances' clocks do not matter). Returns {granted, still available, µs until
/// one more token}.
const TAKE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local avail = math.floor((capacity - (tat - now)) / interval)
if avail < 0 then avail = 0 end
local granted = math.min(n, avail)
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
local wait = tat + interval - capacity - now
if wait < 0 then wait = 0 end
return {granted, avail - granted, wait}
"#;

/// What Redis answered a lease request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub granted: u32,
    /// Tokens still in the shared bucket after this grant.
    pub available: u32,
    /// µs until the shared bucket holds one more token.
    pub wait_us: u64,
}

pub struct Cluster {
    pub config: ClusterConfig,
    client: redis::Client,
    /// Set by [`Service`] once it runs (the connection's task lives on its runtime).
    conn: ArcSwapOption<ConnectionManager>,
    metrics: Arc<Metrics>,
    /// brace-clock µs until which the store counts as down.
    down_until_us: AtomicU64,
    /// Live instances at the last heartbeat (at least 1: this one).
    live: AtomicU32,
    take: redis::Script,
    pub(crate) acks: purge::Acks,
}

impl Cluster {
    /// The cluster handle; connects later, when `runtime::fleet::Service` starts.
    pub fn new(config: &ClusterConfig, metrics: &Arc<Metrics>) -> Result<Arc<Cluster>, String> {
        let mut info = config
            .redis
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("cluster.redis: {e}"))?;
        if let Some(var) = &config.password_env {
            let pw = std::env::var(var)
                .map_err(|_| format!("cluster.password_env: {var} is not set"))?;
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| format!("cluster.redis: {e}"))?;
        metrics.cluster_connected.set(0);
        Ok(Arc::new(Cluster {
            config: config.clone(),
            client,
            conn: ArcSwapOption::empty(),
            metrics: metrics.clone(),
            down_until_us: AtomicU64::new(0),
            live: AtomicU32::new(1),
            take: redis::Script::new(TAKE),
            acks: Default::default(),
        }))
    }

    pub fn id(&self) -> &str {
        &self.config.instance_id
    }

    /// `NAMESPACE:rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.config.namespace)
    }

    /// False while the store counts as down (or before the first connection).
    pub fn available(&self, now_us: u64) -> bool {
        self.down_until_us.load(Relaxed) <= now_us && self.conn.load().is_some()
    }

    /// The fleet size local fallbacks divide by.
    pub fn instances(&self) -> u32 {
        self.config
            .expected_instances
            .unwrap_or_else(|| self.live.load(Relaxed))
            .max(1)
    }

    fn failed(&self, op: &str, e: &dyn std::fmt::Display) {
        let now = crate::clock::now_us();
        let was = self
            .down_until_us
            .swap(now + DOWN_FOR.as_micros() as u64, Relaxed);
        self.metrics
            .cluster_store_errors_total
            .with_label_values(&[op])
            .inc();
        if was <= now {
            tracing::warn!(
                op,
                "cluster store unreachable ({e}); falling back for {DOWN_FOR:?}"
            );
        }
        self.metrics.cluster_connected.set(0);
    }

    fn succeeded(&self) {
        self.down_until_us.store(0, Relaxed);
        self.metrics.cluster_connected.set(1);
    }

    /// Runs one command on the shared connection within `timeout`, marking the store down
    /// when it fails.
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &str,
        timeout: Duration,
        cmd: impl FnOnce(ConnectionManager) -> redis::RedisFuture<'static, T>,
    ) -> Option<T> {
        let conn = (*self.conn.load_full()?).clone();
        match tokio::time::timeout(timeout, cmd(conn)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Some(v)
            }
            Ok(Err(e)) => {
                self.failed(op, &e);
                None
            }
            Err(_) => {
                self.failed(op, &format!("no answer within {timeout:?}"));
                None
            }
        }
    }

    /// Takes up to `n` tokens from the shared bucket `key`. `None`: the store failed.
    pub async fn take(
        &self,
        key: &str,
        n: u32,
        interval_us: u64,
        capacity_us: u64,
    ) -> Option<Grant> {
        let (script, key) = (self.take.clone(), key.to_owned());
        let (granted, available, wait_us): (u32, u32, u64) = self
            .run("rate_limit", self.config.timeout, move |mut c| {
                Box::pin(async move {
                    let mut inv = script.key(key);
                    inv.arg(interval_us).arg(capacity_us).arg(n);
                    inv.invoke_async(&mut c).await
                })
            })
            .await?;
        Some(Grant {
            granted,
            available,
            wait_us,
        })
    }

    /// Publishes `msg` on `channel`; how many subscribers got it.
    pub async fn publish(&self, channel: String, msg: String) -> Option<u32> {
        self.run("publish", self.config.connect_timeout, move |mut c| {
            Box::pin(async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(msg)
                    .query_async(&mut c)
                    .await
            })
        })
        .await
    }

    /// Sets up the shared connection (it connects on first use); call inside a tokio runtime.
    pub fn connect(&self) -> Result<(), String> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.connect_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(self.client.clone(), cfg)
            .map_err(|e| e.to_string())?;
        self.conn.store(Some(Arc::new(conn)));
        Ok(())
    }
}
