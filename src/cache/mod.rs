//! The response cache: RFC 9111 semantics from pingora-cache, storage in moka, per-route policy.
//!
//! ```text
//! request_cache_filter  policy::enable        route has [route.cache], GET/HEAD, no `no-store`
//! cache_key_callback    key::key              scheme + host + path + kept query + key headers
//! cache_hit_filter      policy::hit           request no-cache / max-age → revalidate
//! proxy_upstream_filter policy::only_if_cached  miss + only-if-cached → 504
//! response_cache_filter policy::cacheable     targeted fields, reasons, ttl caps, stale defaults
//! cache_vary_filter     key::variance         Vary (normalised) → variance key
//! should_serve_stale    policy::serve_stale   stale-if-error on upstream failure
//! response_filter       X-Cache-Status / X-Cache-Reason
//! logging               metrics; unsafe methods invalidate (RFC 9111 §4.4)
//! ```
//!
//! One store per process. pingora-cache wants `&'static` storage and lock: both are the
//! process's own ([`MokaStorage::global`], one lock); a reload that changes `[cache]` installs
//! a new, empty moka cache in the storage, and the replaced one is freed.

pub mod date;
pub mod key;
pub mod policy;
pub mod stats;
pub mod storage;

use crate::config::{CacheConfig, RouteCacheConfig};
use crate::metrics::Metrics;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::{CacheOptionOverrides, HttpCache};
use pingora::http::RequestHeader;
use std::time::Duration;
use storage::MokaStorage;

/// What one request on a caching route learns along the cache phases.
#[derive(Default)]
pub struct CacheCtx {
    /// Why the cache was bypassed for this request (unsafe method, request `no-store`).
    pub bypass: Option<&'static str>,
    /// The upstream's `Brace-Cache-Control`, taken off the response before it is stored.
    pub brace_cache_control: Option<http::HeaderValue>,
    /// The headers of a 304 that revalidated a stored response, merged into it.
    pub revalidation_headers: Option<http::HeaderMap>,
}

/// `request_cache_filter` on a caching route: the cache is on for this request unless
/// [`policy::bypass`] says why not (returned).
pub fn enable(
    cache: &mut HttpCache,
    req: &RequestHeader,
    policy: &RouteCacheConfig,
    store: &Store,
) -> Option<&'static str> {
    if let Some(why) = policy::bypass(req) {
        return Some(why);
    }
    let mut overrides = CacheOptionOverrides::default();
    overrides.wait_timeout = Some(policy.lock_timeout);
    cache.enable(store.storage, None, None, Some(store.lock), Some(overrides));
    cache.set_max_file_size_bytes(store.config.max_object_size as usize);
    None
}

pub struct Store {
    pub config: CacheConfig,
    pub storage: &'static MokaStorage,
    pub lock: &'static CacheKeyLockImpl,
}

/// How long a cache-lock writer may hold a key before readers stop waiting for it, whatever
/// a route's `lock_timeout` says.
const LOCK_AGE_TIMEOUT: Duration = Duration::from_secs(30);

static LOCK: std::sync::OnceLock<Box<CacheKeyLockImpl>> = std::sync::OnceLock::new();

impl Store {
    /// The store for `config`, with a new, empty cache in the process's storage (the one in
    /// use before is freed once the requests using it end).
    pub fn new(config: &CacheConfig, metrics: &Metrics) -> Store {
        let storage = MokaStorage::global();
        storage.install(config.max_size, metrics.cache_evictions_total.clone());
        let lock: &'static CacheKeyLockImpl =
            &**LOCK.get_or_init(|| CacheLock::new_boxed(LOCK_AGE_TIMEOUT));
        Store {
            config: config.clone(),
            storage,
            lock,
        }
    }
}

crate::label_set! {
    /// What the cache did for a response, as `X-Cache-Status` says it.
    pub enum CacheStatus {
        Hit => "HIT",
        Miss => "MISS",
        Expired => "EXPIRED",
        Stale => "STALE",
        Revalidated => "REVALIDATED",
        Bypass => "BYPASS",
        Uncacheable => "UNCACHEABLE",
    }
}
