//! A named pool of backends and the choice of one for a request.
//!
//! Every algorithm meets the same predicate: a backend is a candidate when it is *available*
//! (not unhealthy by active checks, not ejected) and not already tried by this request. Below
//! `panic_threshold` available, availability is ignored (Envoy's panic mode). Consistent
//! hashing is pingora-load-balancing's Ketama selector, driven through its `select_with` seam.
//! Round robin and random are a few lines each here: pingora's `select_with` builds a hash set
//! and clones a backend per call, which cost ~2,000 instructions a request (callgrind). Round
//! robin walks nginx's smooth weighted order, computed once per pool. least_requests and p2c
//! (which pingora lacks) read the in-flight gauges.
//! Slow start rejects a ramping backend with a probability that falls as its ramp proceeds.

use super::backend::Backend;
use super::stats::{BackendGauges, BackendStats, PoolStats};
use crate::config::{Balance, UpstreamConfig};
use crate::metrics::Metrics;
use pingora::lb::discovery::Static;
use pingora::lb::selection::Consistent;
use pingora::lb::{Backend as LbBackend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy)]
struct BackendIdx(usize);

enum Selector {
    /// Backend indexes in smooth weighted order, and the shared position in it.
    RoundRobin {
        order: Vec<usize>,
        next: AtomicUsize,
    },
    /// Running totals of the weights, for a weighted random draw.
    Random {
        cumulative: Vec<u64>,
    },
    Consistent(LoadBalancer<Consistent>),
    LeastRequests,
    P2c,
    Ewma,
}

pub struct Pool {
    pub name: String,
    pub config: UpstreamConfig,
    /// The configured backends, then those DNS found (`resolved`).
    pub backends: Vec<Arc<Backend>>,
    /// The backends DNS found when this pool was built (`upstream::dns`).
    pub resolved: Vec<crate::config::BackendAddr>,
    /// Shared with the pool this one replaced (same name): a reload that changes any setting
    /// keeps the retries already counted.
    pub(super) budget: Arc<super::retry::RetryBudget>,
    /// Hedged requests' budget and the pool's time to answer (`upstream::hedge`); shared
    /// with the pool this one replaced.
    pub hedging: Arc<super::hedge::Hedging>,
    pub(super) stats: PoolStats,
    /// Requests in flight to the pool, for `max_in_flight`. Shared with the pool this one
    /// replaced, so requests still running on the old one keep counting (and leave it right).
    pub(super) in_flight: Arc<std::sync::atomic::AtomicU32>,
    /// Requests waiting for room under the backends' adaptive limits (`upstream::queue`).
    /// Shared with the pool this one replaced, so a reload drops no waiter.
    pub(super) queue: Arc<super::queue::Queue>,
    /// When `upstream::slow` last compared the backends, and how many it found slow.
    pub(super) slow_swept_ms: std::sync::atomic::AtomicU64,
    pub(super) slow_marked: AtomicUsize,
    pub(super) metrics: Arc<Metrics>,
    selector: Selector,
    /// Each backend's sticky-cookie value (`upstream::sticky`); empty when not sticky.
    pub(super) sticky_ids: Vec<String>,
    /// TLS to the backends, when the upstream has `tls`.
    tls: Option<super::peer::PeerTls>,
}

fn weights(backends: &[crate::config::BackendAddr]) -> Vec<u64> {
    backends.iter().map(|b| u64::from(b.weight.get())).collect()
}

/// nginx's smooth weighted round robin, run once over a whole cycle: weights 5, 1, 1 give
/// a a b a c a a rather than a a a a a b c. The cycle is the sum of the weights divided by
/// their greatest common divisor (at most backends × 1,000).
fn smooth_weighted_order(weights: &[u64]) -> Vec<usize> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let w: Vec<i64> = weights.iter().map(|&x| (x / g) as i64).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, wi) in current.iter_mut().zip(&w) {
            *c += wi;
        }
        let best = (0..w.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .expect("a pool has backends");
        current[best] -= total;
        order.push(best);
    }
    order
}

fn lb<S>(set: &BTreeSet<LbBackend>) -> LoadBalancer<S>
where
    S: pingora::lb::selection::BackendSelection + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    use futures::FutureExt;
    let lb = LoadBalancer::<S>::from_backends(Backends::new(Static::new(set.clone())));
    // Static discovery never waits: run it to completion here, off the request path, as
    // pingora's own `try_from_iter` does.
    let _ = lb.update().now_or_never();
    lb
}

impl Pool {
    /// Builds a pool of the configured backends and `resolved` (found by DNS). A backend of
    /// `old` with the same address is reused as the same `Arc`, keeping its health, ejection,
    /// breaker, drain and in-flight state (its weight is a setting, updated in place); a
    /// backend DNS found since `old` starts its slow start, and a backend added while the pool
    /// serves with health checks waits for its first passing check.
    pub fn new(
        name: &str,
        config: &UpstreamConfig,
        metrics: &Arc<Metrics>,
        old: Option<&Pool>,
        resolved: Vec<crate::config::BackendAddr>,
    ) -> Pool {
        let mut set = BTreeSet::new();
        let all: Vec<crate::config::BackendAddr> =
            config.backends.iter().chain(&resolved).cloned().collect();
        let mut backends = Vec::with_capacity(all.len());
        for (i, b) in all.iter().enumerate() {
            let mut be = LbBackend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(b.addr),
                weight: b.weight.get() as usize,
                ext: Default::default(),
            };
            be.ext.insert(BackendIdx(i));
            set.insert(be);
            let reused = old.and_then(|o| {
                o.backends
                    .iter()
                    .find(|ob| ob.addr == b.addr)
                    .inspect(|ob| ob.set_weight(b.weight.get()))
                    .cloned()
            });
            let found_now = old.is_some() && i >= config.backends.len();
            if let Some(r) = &reused {
                if config.health_check.is_none() {
                    r.health.await_first_check(false);
                }
            }
            backends.push(reused.unwrap_or_else(|| {
                let label = b.addr.to_string();
                let backend = Backend::new(
                    b.addr,
                    b.weight.get(),
                    BackendStats::new(metrics, name, &label),
                    BackendGauges::new(metrics, name, &label),
                    config.adaptive.initial_limit,
                );
                if found_now {
                    backend
                        .available_since_ms
                        .store(crate::clock::now_ms(), std::sync::atomic::Ordering::Relaxed);
                }
                // Added while the pool serves: no traffic before a check has passed.
                if old.is_some() && config.health_check.is_some() {
                    backend.health.await_first_check(true);
                    backend.gauges.healthy.set(0);
                }
                Arc::new(backend)
            }));
        }
        let selector = match &config.balance {
            Balance::RoundRobin => Selector::RoundRobin {
                order: smooth_weighted_order(&weights(&all)),
                // Pools start at different places, so a reload does not send the first
                // request of every pool to its first backend.
                next: AtomicUsize::new(fastrand::usize(..)),
            },
            Balance::Random => Selector::Random {
                cumulative: weights(&all)
                    .iter()
                    .scan(0u64, |sum, &w| {
                        *sum += w;
                        Some(*sum)
                    })
                    .collect(),
            },
            Balance::ConsistentHash(_) => Selector::Consistent(lb(&set)),
            Balance::LeastRequests => Selector::LeastRequests,
            Balance::P2c => Selector::P2c,
            Balance::Ewma => Selector::Ewma,
        };
        Pool {
            name: name.to_owned(),
            config: config.clone(),
            backends,
            resolved,
            budget: old.map(|o| o.budget.clone()).unwrap_or_default(),
            hedging: old.map(|o| o.hedging.clone()).unwrap_or_default(),
            stats: PoolStats::new(metrics, name),
            in_flight: old.map(|o| o.in_flight.clone()).unwrap_or_default(),
            queue: old.map(|o| o.queue.clone()).unwrap_or_default(),
            slow_swept_ms: Default::default(),
            slow_marked: Default::default(),
            metrics: metrics.clone(),
            selector,
            sticky_ids: match config.sticky {
                Some(_) => all
                    .iter()
                    .map(|b| super::backend::backend_id(name, b.addr))
                    .collect(),
                None => Vec::new(),
            },
            tls: config
                .tls
                .as_ref()
                .map(|t| super::peer::PeerTls::new(t, &all)),
        }
    }

    /// The peer for backend `i`, plaintext or TLS as the upstream says (no timeouts set).
    pub fn peer(&self, i: usize) -> pingora::prelude::HttpPeer {
        super::peer::peer(
            self.tls.as_ref(),
            self.config.protocol,
            i,
            self.backends[i].addr,
        )
    }

    /// Chooses a backend: `key` feeds consistent hashing, `tried` are addresses this request
    /// already used. `None` when no candidate is left.
    pub fn pick(&self, key: &[u8], tried: &[SocketAddr], now: u64) -> Option<usize> {
        let n = self.backends.len();
        if n == 0 {
            return None; // DNS has found none yet (or none any more)
        }
        // A drained backend is out even in panic mode, and does not count towards it: the
        // operator took it out on purpose.
        let serving = n - self.backends.iter().filter(|b| b.draining()).count();
        let available = self.backends.iter().filter(|b| b.available(now)).count();
        let panic = (available as f64) < self.config.panic_threshold * serving as f64;
        let limited = self.config.adaptive.enforced();
        let ok = |i: usize| {
            let b = &self.backends[i];
            !tried.contains(&b.addr)
                && (b.available(now) || (panic && !b.draining()))
                && (!limited || b.has_room())
        };
        // A first pass keeps to the ramp of slow start and sends a slow backend
        // (`upstream::slow`) only its small share; a second, when those left nobody, does not.
        let ramping = !self.config.slow_start.is_zero();
        let slow = self.slow_marked.load(Ordering::Relaxed) > 0;
        for first in [true, false] {
            let accept = |i: usize| {
                ok(i)
                    && (!first
                        || (self.ramp_accepts(i, now)
                            && (!slow
                                || !self.backends[i].outlier.slow()
                                || fastrand::f64() < super::backend::SLOW_SHARE)))
            };
            if let Some(i) = self.select(key, &accept, now) {
                return Some(i);
            }
            if !ramping && !slow {
                break;
            }
        }
        None
    }

    fn select(&self, key: &[u8], accept: &dyn Fn(usize) -> bool, now: u64) -> Option<usize> {
        let n = self.backends.len();
        let idx = |b: &LbBackend| b.ext.get::<BackendIdx>().map(|i| i.0);
        let via_lb = |found: Option<LbBackend>| {
            // pingora's iterators may stop before visiting every backend; fall back to a scan
            // from a random start so an acceptable backend is never missed.
            found.and_then(|b| idx(&b)).or_else(|| self.scan(accept))
        };
        let max = n * 2 + 2;
        match &self.selector {
            Selector::RoundRobin { order, next } => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                (0..order.len().min(max))
                    .map(|k| order[start.wrapping_add(k) % order.len()])
                    .find(|&i| accept(i))
                    .or_else(|| self.scan(accept))
            }
            Selector::Random { cumulative } => {
                let total = *cumulative.last()?;
                (0..max)
                    .map(|_| {
                        let r = fastrand::u64(..total);
                        cumulative.partition_point(|&c| c <= r)
                    })
                    .find(|&i| accept(i))
                    .or_else(|| self.scan(accept))
            }
            Selector::Consistent(lb) => {
                via_lb(lb.select_with(key, max, |b, _| idx(b).is_some_and(accept)))
            }
            Selector::LeastRequests => self.least_loaded((0..n).filter(|&i| accept(i)), n),
            Selector::P2c => self.two_choices(accept, |i| self.load(i)),
            Selector::Ewma => self.two_choices(accept, |i| {
                let b = &self.backends[i];
                b.latency.cost(b.in_flight(), b.weight(), now)
            }),
        }
    }

    /// Power of two choices: two distinct acceptable backends at random, the cheaper wins.
    fn two_choices(
        &self,
        accept: &dyn Fn(usize) -> bool,
        cost: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        let a = self.scan(accept)?;
        let b = self.scan(&|i| i != a && accept(i));
        Some(match b {
            Some(b) if cost(b) < cost(a) => b,
            _ => a,
        })
    }

    /// In-flight requests per unit of weight, for least_requests and p2c.
    fn load(&self, i: usize) -> f64 {
        let b = &self.backends[i];
        b.in_flight() as f64 / f64::from(b.weight())
    }

    fn least_loaded(&self, candidates: impl Iterator<Item = usize>, n: usize) -> Option<usize> {
        // Ties go to a random one, so equal backends share the load.
        let start = fastrand::usize(..n.max(1));
        candidates.min_by(|&a, &b| {
            self.load(a)
                .total_cmp(&self.load(b))
                .then(((a + n - start) % n).cmp(&((b + n - start) % n)))
        })
    }

    /// The first acceptable backend from a random start.
    fn scan(&self, accept: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.backends.len();
        let start = fastrand::usize(..n.max(1));
        (0..n).map(|k| (start + k) % n).find(|&i| accept(i))
    }

    fn ramp_accepts(&self, i: usize, now: u64) -> bool {
        let ss = self.config.slow_start.as_millis() as u64;
        let since = self.backends[i]
            .available_since_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if ss == 0 || since == 0 || now >= since + ss {
            return true;
        }
        let share = ((now - since) as f64 / ss as f64).max(0.1);
        fastrand::f64() < share
    }

    /// How long until a backend may be available again, for `Retry-After` (at least 1 s).
    pub(super) fn retry_after(&self, now: u64) -> Duration {
        let ejection_end = self
            .backends
            .iter()
            .filter_map(|b| {
                let ejected = b.outlier.ejected(now).then(|| b.outlier.ejected_until());
                let open = (!b.breaker.admits(now)).then(|| b.breaker.open_until());
                let paused = b.paused(now).then(|| b.paused_until());
                [ejected, open, paused].into_iter().flatten().max()
            })
            .map(|until| until.saturating_sub(now))
            .min();
        let check = self
            .config
            .health_check
            .as_ref()
            .map(|h| h.interval.as_millis() as u64);
        let ms = match (ejection_end, check) {
            (Some(e), Some(c)) => e.min(c),
            (Some(e), None) => e,
            (None, Some(c)) => c,
            (None, None) => 1000,
        };
        Duration::from_millis(ms.max(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn pool(extra: &str) -> Pool {
        let text = format!(
            "[[route]]\nname = \"r\"\nupstream = \"p\"\n[upstream.p]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n{extra}"
        );
        let loaded = crate::config::parse(&text, "test", std::path::Path::new(".")).unwrap();
        Pool::new(
            "p",
            &loaded.config.upstreams["p"],
            &Arc::new(Metrics::new()),
            None,
            Vec::new(),
        )
    }

    fn share_of_second(p: &Pool, now: u64) -> f64 {
        let n = 4000;
        let hits = (0..n).filter(|_| p.pick(b"", &[], now) == Some(1)).count();
        hits as f64 / n as f64
    }

    #[test]
    fn slow_start_ramps_a_returning_backend_up() {
        let p = pool("slow_start = \"10s\"");
        p.backends[1].available_since_ms.store(1_000, Relaxed);
        let early = share_of_second(&p, 2_000); // 10% into the ramp
        let mid = share_of_second(&p, 6_000); // 50%
        let done = share_of_second(&p, 11_000);
        assert!(early < 0.12, "early share {early}");
        assert!((0.2..0.4).contains(&mid), "mid share {mid}");
        assert!((0.45..0.55).contains(&done), "after the ramp {done}");
    }

    #[test]
    fn tried_backends_are_skipped_and_none_left_is_none() {
        let p = pool("");
        let a = p.backends[0].addr;
        let b = p.backends[1].addr;
        for _ in 0..10 {
            assert_eq!(p.pick(b"", &[a], 5), Some(1));
        }
        assert_eq!(p.pick(b"", &[a, b], 5), None);
    }

    #[test]
    fn smooth_weighted_round_robin_order() {
        assert_eq!(smooth_weighted_order(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_weighted_order(&[2, 2]), vec![0, 1]);
        assert_eq!(smooth_weighted_order(&[1, 3]), vec![1, 0, 1, 1]);
        assert!(smooth_weighted_order(&[]).is_empty());
    }
}
