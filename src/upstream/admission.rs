//! Admission under the backends' adaptive limits: a first attempt that finds every available
//! backend at its limit raises one that shows no queueing, else waits in the pool's queue
//! (`upstream::queue`) for at most `queue_timeout`, else is shed: 503 at once, counted by
//! route priority and reason, never held against a backend. Retries never queue: they go only
//! to a backend with room, and not at all while the pool sheds (`upstream::retry`).

use super::backend::Backend;
use super::concurrency::Bounds;
use super::pool::Pool;
use super::queue::{Queue, ShedReason, Wake};
use crate::config::Priority;
use crate::events::{Event, Kind, Level};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// A pool sheds while its last shed is this recent (the gauge, events, and retries).
const SHEDDING_FOR_MS: u64 = 5_000;

/// The queue never holds fewer than this many (a burst on a quiet pool waits, it is not shed).
const MIN_QUEUE: usize = 8;

impl Pool {
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    fn bounds(&self) -> Bounds {
        let a = &self.config.adaptive;
        Bounds {
            min: a.min_limit,
            max: a.max_limit,
            window_ms: a.window.as_millis() as u64,
        }
    }

    /// Feeds one finished attempt on `b` to its limiter.
    /// Feeds one finished attempt on `b` to its limiter. It learns with adaptive limits off
    /// too: its median time to answer is what latency-relative detection (`upstream::slow`)
    /// compares.
    pub(super) fn learn(&self, b: &Backend, ok: bool, seconds: f64, now: u64) {
        // brace's own scheduling delay is not the backend's queue (`upstream::lag`).
        let us = ((seconds * 1e6) as u64).saturating_sub(super::lag::lag_us());
        if let Some(u) = b.limiter.observe(&self.bounds(), ok, us, now) {
            if self.config.adaptive.enabled {
                b.gauges.limit.set(i64::from(u.limit));
            }
            if u.grew && self.config.adaptive.enforced() {
                self.queue.release();
            }
        }
    }

    /// True when an available backend is held at its limit: a first attempt may wait for it
    /// (rather than get "no backend available"). Retries never wait, so nothing is tried yet.
    pub fn at_limit(&self, now: u64) -> bool {
        self.config.adaptive.enforced()
            && self.backends.iter().any(|b| {
                let full = b.available(now) && !b.has_room();
                if full {
                    b.limiter.full();
                }
                full
            })
    }

    /// Raises the limit of one full, available backend whose last window showed no queueing;
    /// true when one was raised.
    fn grow(&self, now: u64) -> bool {
        let bounds = self.bounds();
        self.backends
            .iter()
            .any(|b| b.available(now) && !b.has_room() && b.limiter.grow(&bounds))
    }

    /// How many may wait: `max_queue`, or what the pool answered in half of `queue_timeout`
    /// at its last measured rate (at least [`MIN_QUEUE`]).
    fn queue_cap(&self) -> usize {
        let a = &self.config.adaptive;
        if a.max_queue > 0 {
            return a.max_queue as usize;
        }
        let rate: u64 = self
            .backends
            .iter()
            .map(|b| u64::from(b.limiter.rate()))
            .sum();
        let half = a.queue_timeout.as_millis() as u64 / 2;
        ((rate * half / 1000) as usize).max(MIN_QUEUE)
    }

    /// True while the pool sheds (a request shed in the last 5 s).
    pub fn shedding(&self, now: u64) -> bool {
        let last = self.queue.last_shed_ms.load(Relaxed);
        last != 0 && now.saturating_sub(last) < SHEDDING_FOR_MS
    }

    /// Counts a shed request, and says so once when the pool starts shedding.
    pub fn shed(&self, priority: Priority, reason: ShedReason, now: u64) {
        self.stats.shed[priority.rank()].get(reason).inc();
        self.queue.last_shed_ms.store(now, Relaxed);
        if !self.queue.shedding.swap(true, Relaxed) {
            self.stats.shedding.set(1);
            self.metrics.events.record(
                Event::new(Kind::Shedding, Level::Warn, "shedding", reason.as_str())
                    .upstream(&self.name)
                    .message(format!(
                        "every backend is at its adaptive concurrency limit; shedding requests ({}, first: {} priority)",
                        reason.as_str(),
                        priority.as_str()
                    )),
            );
        }
    }

    /// Ends the shedding state once no request was shed for 5 s (the health tick calls it).
    pub(super) fn shedding_over(&self, now: u64) {
        if self.queue.shedding.load(Relaxed) && !self.shedding(now) {
            self.queue.shedding.store(false, Relaxed);
            self.stats.shedding.set(0);
            self.metrics.events.record(
                Event::new(Kind::Shedding, Level::Info, "admitting", "no shed for 5 s")
                    .upstream(&self.name)
                    .message("shedding stopped: every request admitted for 5 s"),
            );
        }
    }
}

/// What waiting for room came to.
pub enum Admitted {
    /// A backend with room (of `primary` or its backup); true when the request waited.
    Backend(Arc<Pool>, usize, bool),
    /// Shed (and counted).
    Shed(ShedReason),
    /// No backend is available at all (none at its limit either).
    None,
}

/// Chooses a backend for a first attempt, waiting in `primary`'s queue when every available
/// backend is at its limit (see the module doc).
pub async fn admit(
    pools: &BTreeMap<String, Arc<Pool>>,
    primary: &Arc<Pool>,
    key: &[u8],
    priority: Priority,
    start: Instant,
) -> Admitted {
    let now = crate::clock::ms_at(start);
    super::lag::ensure_probe();
    if primary.queue.is_empty() {
        if let Some((p, i)) = super::select::choose(pools, primary, key, &[], now) {
            return Admitted::Backend(p, i, false);
        }
        if !primary.at_limit(now) {
            return Admitted::None;
        }
        if primary.grow(now) {
            if let Some((p, i)) = super::select::choose(pools, primary, key, &[], now) {
                return Admitted::Backend(p, i, false);
            }
        }
    }
    // Boxed: the waiting state (a timer, a ticket) is not part of every request's future.
    Box::pin(wait(pools, primary, key, priority, start)).await
}

/// Waits in `primary`'s queue for room, or is shed.
async fn wait(
    pools: &BTreeMap<String, Arc<Pool>>,
    primary: &Arc<Pool>,
    key: &[u8],
    priority: Priority,
    start: Instant,
) -> Admitted {
    let queue = primary.queue();
    let timeout = primary.config.adaptive.queue_timeout;
    let deadline = tokio::time::Instant::from_std(start + timeout);
    let mut front = false;
    let shed = |reason: ShedReason| {
        primary
            .stats
            .queue_wait
            .observe(start.elapsed().as_secs_f64());
        primary.shed(priority, reason, crate::clock::now_ms());
        Admitted::Shed(reason)
    };
    loop {
        let Some(ticket) = queue.join(priority, primary.queue_cap(), front) else {
            return shed(ShedReason::QueueFull);
        };
        primary.stats.queue_length.set(queue.len() as i64);
        let mut ticket = ticket;
        let woke = tokio::time::timeout_at(deadline, &mut ticket.rx).await;
        drop(ticket); // leaves the queue if still in it (timed out)
        primary.stats.queue_length.set(queue.len() as i64);
        match woke {
            Err(_) => return shed(ShedReason::QueueTimeout),
            Ok(Ok(Wake::Evicted)) | Ok(Err(_)) => return shed(ShedReason::Evicted),
            Ok(Ok(Wake::Try)) => {}
        }
        let now = crate::clock::now_ms();
        if let Some((p, i)) = super::select::choose(pools, primary, key, &[], now) {
            // Room for one: if more appeared at once, the next waiter tries too.
            queue.release();
            primary
                .stats
                .queue_wait
                .observe(start.elapsed().as_secs_f64());
            return Admitted::Backend(p, i, true);
        }
        if !primary.at_limit(now) {
            return Admitted::None;
        }
        front = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// A pool of one backend whose limit is pinned at 1, with this `[adaptive]` extra.
    fn pool(extra: &str) -> Arc<Pool> {
        let text = format!(
            "[[route]]\nname = \"r\"\nupstream = \"p\"\n[upstream.p]\nbackends = [\"127.0.0.1:1\"]\n\
             [upstream.p.adaptive]\ninitial_limit = 1\nmin_limit = 1\nmax_limit = 1\n{extra}"
        );
        let loaded = crate::config::parse(&text, "test", std::path::Path::new(".")).unwrap();
        let cfg = &loaded.config.upstreams["p"];
        Arc::new(Pool::new(
            "p",
            cfg,
            &Arc::new(Metrics::new()),
            None,
            Vec::new(),
        ))
    }

    fn pools(p: &Arc<Pool>) -> BTreeMap<String, Arc<Pool>> {
        BTreeMap::from([("p".to_string(), p.clone())])
    }

    fn admit_now(p: &Arc<Pool>, prio: Priority) -> impl std::future::Future<Output = Admitted> {
        let (p, all) = (p.clone(), pools(p));
        async move { admit(&all, &p, b"", prio, Instant::now()).await }
    }

    #[tokio::test(start_paused = true)]
    async fn room_admits_at_once_and_a_full_backend_sheds_after_queue_timeout() {
        let p = pool("queue_timeout = \"200ms\"");
        assert!(matches!(
            admit_now(&p, Priority::Normal).await,
            Admitted::Backend(_, 0, false)
        ));
        p.backends[0].started(crate::clock::now_ms());
        let t = tokio::time::Instant::now();
        assert!(matches!(
            admit_now(&p, Priority::Normal).await,
            Admitted::Shed(ShedReason::QueueTimeout)
        ));
        assert!(t.elapsed() >= std::time::Duration::from_millis(200));
        assert!(p.shedding(crate::clock::now_ms()));
        assert!(p.queue.is_empty(), "the timed-out waiter left the queue");
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_ends_admits_the_first_waiter() {
        let p = pool("queue_timeout = \"10s\"");
        let b = p.backends[0].clone();
        b.started(crate::clock::now_ms());
        let waiter = tokio::spawn(admit_now(&p, Priority::Normal));
        while p.queue.is_empty() {
            tokio::task::yield_now().await;
        }
        b.ended(true);
        p.queue.release();
        assert!(matches!(
            waiter.await.unwrap(),
            Admitted::Backend(_, 0, true)
        ));
        assert!(!p.shedding(crate::clock::now_ms()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_sheds_newcomers_at_once_and_critical_ones_take_a_place() {
        let p = pool("queue_timeout = \"10s\"\nmax_queue = 1");
        p.backends[0].started(crate::clock::now_ms());
        let sheddable = tokio::spawn(admit_now(&p, Priority::Sheddable));
        while p.queue.is_empty() {
            tokio::task::yield_now().await;
        }
        let t = tokio::time::Instant::now();
        assert!(matches!(
            admit_now(&p, Priority::Sheddable).await,
            Admitted::Shed(ShedReason::QueueFull)
        ));
        assert_eq!(
            t.elapsed(),
            std::time::Duration::ZERO,
            "shed without waiting"
        );
        let critical = tokio::spawn(admit_now(&p, Priority::Critical));
        assert!(matches!(
            sheddable.await.unwrap(),
            Admitted::Shed(ShedReason::Evicted)
        ));
        p.backends[0].ended(true);
        p.queue.release();
        assert!(matches!(
            critical.await.unwrap(),
            Admitted::Backend(_, 0, true)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_while_the_pool_sheds() {
        use crate::upstream::retry::RetryReason;
        use crate::upstream::select::may_retry;
        let text = "[[route]]\nname = \"r\"\nupstream = \"p\"\n[upstream.p]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
                    [upstream.p.retry]\nattempts = 2\n[upstream.p.adaptive]\ninitial_limit = 1\nmin_limit = 1\nmax_limit = 1\nqueue_timeout = \"0s\"\n";
        let loaded = crate::config::parse(text, "test", std::path::Path::new(".")).unwrap();
        let m = Arc::new(Metrics::new());
        let p = Arc::new(Pool::new(
            "p",
            &loaded.config.upstreams["p"],
            &m,
            None,
            Vec::new(),
        ));
        let all = pools(&p);
        let now = crate::clock::now_ms();
        let first = [p.backends[0].addr];
        assert!(may_retry(&p, &all, &first, 1, RetryReason::Error, now));
        // The other backend is full: no retry goes there.
        p.backends[1].started(now);
        assert!(!may_retry(&p, &all, &first, 1, RetryReason::Error, now));
        p.backends[1].ended(true);
        // A shed in the pool: retries stop, though a backend has room.
        p.shed(Priority::Normal, ShedReason::QueueFull, now);
        assert!(!may_retry(&p, &all, &first, 1, RetryReason::Error, now));
    }
}
