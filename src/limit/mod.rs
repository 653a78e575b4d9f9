//! Rate limits: a typed key per request, a bucket per key, a [`Decision`].
//!
//! Each bucket is GCRA (the generic cell rate algorithm, a token bucket kept as one number, the
//! "theoretical arrival time"): a bucket holds `burst` requests and refills one every
//! `per / rate`. A request costs one compare-and-swap on an `AtomicU64`; there is no lock.
//!
//! Keys live in a moka cache bounded by `max_keys`. Why moka rather than pingora-limits:
//! pingora-limits' `Rate` estimates counts in fixed hashed slots (collisions make unrelated
//! keys share a count) and cannot say when a client may come back; moka gives exact per-key
//! state with a hard memory bound, and its eviction forgets the least recently seen keys
//! first (TinyLFU admission may also refuse to cache a never-seen-again key, which only makes
//! that key start a fresh bucket). A key idle for `burst × per / rate` is expired: its bucket
//! would be full again by then, so forgetting it changes no decision.
//!
//! A limit with `scope = "global"` shares its budget across the fleet ([`global`]); its local
//! buckets then serve the `on_store_error = "local"` fallback.

pub mod global;

use crate::config::{LimitKey, RateLimitConfig, StoreFallback};
use crate::events::{Event, Kind, Level};
use crate::metrics::Metrics;
use prometheus::{IntCounter, IntGauge};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

/// A request's value for a limit's key.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum KeyValue {
    Ip(IpAddr),
    Text(Arc<str>),
    IpText(IpAddr, Arc<str>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        remaining: u32,
        reset_secs: u64,
    },
    Limited {
        retry_after_secs: u64,
        reset_secs: u64,
    },
    /// Shadow mode: would have been limited, let through.
    ShadowLimited {
        reset_secs: u64,
    },
}

crate::label_set! {
    /// The `decision` label of `brace_rate_limit_decisions_total`.
    pub enum DecisionKind {
        Allowed => "allowed",
        Limited => "limited",
        ShadowLimited => "shadow_limited",
    }
}

impl Decision {
    pub fn kind(&self) -> DecisionKind {
        match self {
            Decision::Allowed { .. } => DecisionKind::Allowed,
            Decision::Limited { .. } => DecisionKind::Limited,
            Decision::ShadowLimited { .. } => DecisionKind::ShadowLimited,
        }
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers), parsed once.
pub const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

pub struct Limiter {
    pub name: String,
    pub config: RateLimitConfig,
    buckets: moka::sync::Cache<KeyValue, Arc<AtomicU64>>,
    /// Time for one request to refill, µs.
    interval_us: u64,
    /// `burst × interval`, µs.
    capacity_us: u64,
    /// `RateLimit-Policy` value, rendered once.
    pub policy_value: http::HeaderValue,
    pub keys_gauge: IntGauge,
    /// The shared budget, for `scope = "global"`.
    global: Option<global::Global>,
}

/// Reports a full key table: every key forgotten to make room is counted, and one event a
/// minute at most says so (a flood of new keys would otherwise log a line per request).
struct Overflow {
    name: String,
    max_keys: u64,
    metrics: Arc<Metrics>,
    evicted_total: IntCounter,
    started: std::time::Instant,
    /// ms since `started` of the last event; `u64::MAX` before the first.
    last_event_ms: AtomicU64,
    since_event: AtomicU64,
}

impl Overflow {
    fn new(name: &str, max_keys: u64, metrics: &Arc<Metrics>) -> Overflow {
        Overflow {
            name: name.to_owned(),
            max_keys,
            metrics: metrics.clone(),
            evicted_total: metrics
                .rate_limit_keys_evicted_total
                .with_label_values(&[name]),
            started: std::time::Instant::now(),
            last_event_ms: AtomicU64::new(u64::MAX),
            since_event: AtomicU64::new(0),
        }
    }

    fn evicted(&self) {
        self.evicted_total.inc();
        let n = self.since_event.fetch_add(1, Relaxed) + 1;
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_event_ms.load(Relaxed);
        if last != u64::MAX && now.saturating_sub(last) < 60_000 {
            return;
        }
        if self
            .last_event_ms
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
        {
            return; // another eviction reports it
        }
        self.since_event.fetch_sub(n, Relaxed);
        self.metrics.events.record(
            Event::new(Kind::RateLimit, Level::Warn, "key_table_full", format!(
                "more than max_keys = {} keys; {n} least recently seen forgotten",
                self.max_keys
            ))
            .limit(&self.name)
            .message(
                "rate limit key table full: forgotten clients start a fresh bucket; raise max_keys if this is not a flood of new keys",
            ),
        );
    }
}

fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

impl Limiter {
    /// A limiter; `old` is the limiter of the same name in the running config, whose buckets
    /// are kept when they mean the same here (same key, bucket size and key limit): switching
    /// `shadow` to enforcing or changing `status` refills nobody's bucket.
    pub fn new(
        name: &str,
        config: &RateLimitConfig,
        metrics: &Arc<Metrics>,
        old: Option<&Limiter>,
        cluster: Option<&Arc<crate::cluster::Cluster>>,
    ) -> Limiter {
        let keys_gauge = metrics.rate_limit_keys.with_label_values(&[name]);
        let interval_us = (config.per.as_micros() as u64 / u64::from(config.rate)).max(1);
        let capacity_us = interval_us * u64::from(config.burst);
        let buckets = match old {
            Some(o)
                if o.config.key == config.key
                    && o.config.max_keys == config.max_keys
                    && o.interval_us == interval_us
                    && o.capacity_us == capacity_us =>
            {
                o.buckets.clone()
            }
            _ => moka::sync::Cache::builder()
                .max_capacity(config.max_keys)
                .eviction_listener({
                    let overflow = Overflow::new(name, config.max_keys, metrics);
                    move |_, _, cause| {
                        if cause == moka::notification::RemovalCause::Size {
                            overflow.evicted();
                        }
                    }
                })
                .time_to_idle(Duration::from_micros(capacity_us.max(1_000)))
                .build(),
        };
        // draft-ietf-httpapi-ratelimit-headers-08: quota q per window w seconds.
        let policy = format!(
            "\"{name}\";q={};w={}",
            config.rate,
            ceil_secs(config.per.as_micros() as u64).max(1)
        );
        Limiter {
            name: name.to_owned(),
            policy_value: http::HeaderValue::from_str(&policy)
                .unwrap_or_else(|_| http::HeaderValue::from_static("")),
            config: config.clone(),
            buckets,
            interval_us,
            capacity_us,
            keys_gauge,
            global: match (config.scope, cluster) {
                (crate::config::Scope::Global, Some(c)) => Some(global::Global::new(
                    name,
                    c,
                    config,
                    interval_us,
                    capacity_us,
                    metrics,
                    old.and_then(|o| o.global.as_ref()),
                )),
                _ => None,
            },
        }
    }

    /// Decides one request for `key` at `now_us` (brace's clock, µs): from the shared budget
    /// for a global limit (its fallback when Redis cannot be asked), else locally.
    pub async fn decide(&self, key: KeyValue, now_us: u64) -> Decision {
        let Some(g) = &self.global else {
            return self.check(key, now_us);
        };
        let d = match g.check(&key, now_us).await {
            Some(d) => {
                // The local fallback's bucket is charged for what the shared budget let
                // through here, so an outage starts from this instance's real spending and
                // not from a bucket that filled up while the store answered.
                if matches!(d, Decision::Allowed { .. }) && g.fallback == StoreFallback::Local {
                    let _ = self.check_scaled(key, now_us, g.instances());
                }
                d
            }
            None => {
                g.count_fallback();
                match g.fallback {
                    StoreFallback::Local => {
                        let d = self.check_scaled(key.clone(), now_us, g.instances());
                        if matches!(d, Decision::Allowed { .. }) {
                            g.owe(&key);
                        }
                        d
                    }
                    StoreFallback::Allow => Decision::Allowed {
                        remaining: self.config.burst,
                        reset_secs: 0,
                    },
                    StoreFallback::Deny => Decision::Limited {
                        retry_after_secs: 1,
                        reset_secs: 1,
                    },
                }
            }
        };
        match d {
            Decision::Limited { reset_secs, .. } if self.config.shadow => {
                Decision::ShadowLimited { reset_secs }
            }
            d => d,
        }
    }

    /// Decides one request for `key` at `now_us` (brace's clock, µs) on this instance's own.
    pub fn check(&self, key: KeyValue, now_us: u64) -> Decision {
        self.check_scaled(key, now_us, 1)
    }

    /// [`Self::check`] with a `1/share` of the rate (and of the burst): the local fallback of
    /// a global limit over a fleet of `share` instances.
    fn check_scaled(&self, key: KeyValue, now_us: u64, share: u32) -> Decision {
        let interval_us = self.interval_us * u64::from(share.max(1));
        // At least one request per interval, however small the share of the burst.
        let capacity_us = self.capacity_us.max(interval_us);
        let bucket = self.buckets.get_with(key, || Arc::new(AtomicU64::new(0)));
        let mut tat = bucket.load(Acquire);
        loop {
            let start = tat.max(now_us);
            let new_tat = start + interval_us;
            if new_tat - now_us > capacity_us {
                let wait = new_tat - now_us - capacity_us;
                let reset_secs = ceil_secs(start - now_us);
                return if self.config.shadow {
                    Decision::ShadowLimited { reset_secs }
                } else {
                    Decision::Limited {
                        retry_after_secs: ceil_secs(wait).max(1),
                        reset_secs,
                    }
                };
            }
            match bucket.compare_exchange_weak(tat, new_tat, AcqRel, Acquire) {
                Ok(_) => {
                    let remaining = (capacity_us - (new_tat - now_us)) / interval_us;
                    return Decision::Allowed {
                        remaining: remaining as u32,
                        reset_secs: ceil_secs(new_tat - now_us),
                    };
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// The `RateLimit` header value for a decision.
    pub fn header(&self, d: &Decision) -> http::HeaderValue {
        let (r, t) = match *d {
            Decision::Allowed {
                remaining,
                reset_secs,
            } => (remaining, reset_secs),
            Decision::Limited { reset_secs, .. } | Decision::ShadowLimited { reset_secs } => {
                (0, reset_secs)
            }
        };
        http::HeaderValue::from_str(&format!("\"{}\";r={r};t={t}", self.name))
            .unwrap_or_else(|_| http::HeaderValue::from_static(""))
    }

    /// Updates the key-count gauge (moka counts lazily; this runs its pending upkeep first).
    pub fn refresh_gauge(&self) {
        self.buckets.run_pending_tasks();
        self.keys_gauge.set(self.buckets.entry_count() as i64);
    }
}

/// The key value of a request for `key`; `None` when the request has none (a missing header),
/// in which case the limit does not apply, as with an empty key in nginx's `limit_req`.
pub fn key_value(key: &LimitKey, r: &Facts<'_>) -> Option<KeyValue> {
    let header = |n: &str| {
        if n == "host" {
            // The host as brace derived it: over HTTP/2 it is `:authority`, not a field.
            return (!r.host.is_empty()).then(|| Arc::<str>::from(r.host));
        }
        r.req
            .headers
            .get(n)
            .map(|v| Arc::<str>::from(String::from_utf8_lossy(v.as_bytes()).as_ref()))
    };
    match key {
        LimitKey::ClientIp => r.client_ip.map(KeyValue::Ip),
        LimitKey::Route => Some(KeyValue::Text(Arc::from(r.route))),
        LimitKey::Path => Some(KeyValue::Text(Arc::from(r.path))),
        LimitKey::Header(n) => header(n).map(KeyValue::Text),
        LimitKey::ClientIpAndHeader(n) => Some(KeyValue::IpText(r.client_ip?, header(n)?)),
    }
}

/// What a request's limit keys are made of, each derived once before routing.
pub struct Facts<'a> {
    pub client_ip: Option<IpAddr>,
    pub route: &'a str,
    /// The normalised host (`proxy::host`).
    pub host: &'a str,
    /// The normalised path, whatever `path_normalization` forwards.
    pub path: &'a str,
    pub req: &'a pingora::http::RequestHeader,
}

/// A rate limit as applied on one route, with its decision counters resolved.
pub struct RouteLimit {
    pub limiter: Arc<Limiter>,
    pub decisions: crate::metrics::ByLabel<DecisionKind>,
}

/// What a route's rate limits say about one request.
pub enum Verdict {
    /// Allowed; with `headers`, the tightest limit's `RateLimit` header value.
    Allow(Option<(u32, http::HeaderValue)>),
    /// The first limit to refuse answers: its status, body and headers.
    Refuse {
        status: u16,
        body: String,
        headers: Box<[(http::HeaderName, http::HeaderValue); 3]>,
        /// The limit that refused.
        limit: String,
    },
}

/// Checks a route's limits in order; the first to refuse answers. A limit whose key the
/// request lacks (no such header) does not apply.
pub async fn check(
    limits: &[RouteLimit],
    facts: &Facts<'_>,
    headers: bool,
    now_us: u64,
) -> Verdict {
    let mut tightest: Option<(u32, http::HeaderValue)> = None;
    for l in limits {
        let Some(key) = key_value(&l.limiter.config.key, facts) else {
            continue;
        };
        let d = l.limiter.decide(key, now_us).await;
        l.decisions.get(d.kind()).inc();
        match d {
            Decision::Limited {
                retry_after_secs, ..
            } => {
                let name = &l.limiter.name;
                // Built without `format!`: a refusal is the cheap answer a flood gets.
                let secs = retry_after_secs.to_string();
                let mut body = String::with_capacity(name.len() + 48);
                for part in [
                    "brace: rate limit \"",
                    name,
                    "\" exceeded; retry in ",
                    &secs,
                    " s\n",
                ] {
                    body.push_str(part);
                }
                return Verdict::Refuse {
                    status: l.limiter.config.status,
                    body,
                    headers: Box::new([
                        (
                            http::header::RETRY_AFTER,
                            http::HeaderValue::from(retry_after_secs),
                        ),
                        (RATELIMIT_POLICY, l.limiter.policy_value.clone()),
                        (RATELIMIT, l.limiter.header(&d)),
                    ]),
                    limit: name.clone(),
                };
            }
            Decision::Allowed { remaining, .. }
                if headers && tightest.as_ref().is_none_or(|(r, _)| remaining < *r) =>
            {
                tightest = Some((remaining, l.limiter.header(&d)));
            }
            _ => {}
        }
    }
    Verdict::Allow(tightest)
}

#[cfg(test)]
mod tests;
