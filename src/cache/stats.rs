//! Per-route cache counters, resolved when a snapshot is built: a request does atomic adds,
//! not label lookups.

use super::CacheStatus;
use crate::label_set;
use crate::metrics::{ByLabel, LabelSet, Metrics};
use prometheus::{IntCounter, IntCounterVec};
use std::sync::OnceLock;

label_set! {
    /// Why a response was not stored (`brace_cache_not_stored_total`, `X-Cache-Reason`):
    /// brace's reasons. pingora's rarer ones keep their own names and are counted by label.
    pub enum NotStored {
        NoStore => "no-store",
        Private => "private",
        SetCookie => "set-cookie",
        Authorization => "authorization",
        TooLarge => "too-large",
        NoFreshness => "no-freshness",
        Vary => "vary",
        Status => "status",
        Method => "method",
        UpstreamError => "upstream-error",
        LockTimeout => "lock-timeout",
    }
}

label_set! {
    /// What a request that waited on another request's fill got.
    pub enum LockWait {
        ServedFromCache => "served_from_cache",
        WentUpstream => "went_upstream",
    }
}

pub struct RouteCacheStats {
    statuses: ByLabel<CacheStatus>,
    /// Per [`NotStored`] value, created on first use (most routes see few reasons).
    not_stored: Box<[OnceLock<IntCounter>]>,
    lock_waits: ByLabel<LockWait>,
    not_stored_vec: IntCounterVec,
    route: String,
}

impl RouteCacheStats {
    pub fn new(m: &Metrics, route: &str) -> RouteCacheStats {
        RouteCacheStats {
            statuses: ByLabel::new(&m.cache_requests_total, &[route]),
            not_stored: NotStored::ALL.iter().map(|_| OnceLock::new()).collect(),
            lock_waits: ByLabel::new(&m.cache_lock_waits_total, &[route]),
            not_stored_vec: m.cache_not_stored_total.clone(),
            route: route.to_owned(),
        }
    }

    pub fn record(&self, status: CacheStatus, reason: Option<&str>, lock_wait: Option<LockWait>) {
        self.statuses.get(status).inc();
        if let Some(r) = reason {
            match NotStored::ALL.iter().find(|n| n.as_str() == r) {
                Some(n) => self.not_stored[n.index()]
                    .get_or_init(|| self.not_stored_vec.with_label_values(&[&self.route, r]))
                    .inc(),
                None => self
                    .not_stored_vec
                    .with_label_values(&[&self.route, r])
                    .inc(),
            }
        }
        if let Some(w) = lock_wait {
            self.lock_waits.get(w).inc();
        }
    }
}
