//! The typed `[upstream.NAME.adaptive]` (adaptive concurrency, `upstream::concurrency`) and a
//! route's `priority` (who is shed first when a pool is full, `upstream::queue`).

use std::time::Duration;

/// Adaptive concurrency for one upstream's backends, and the pool's wait queue.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// False: no per-backend limit (the queue is unused too).
    pub enabled: bool,
    /// Shadow: limits are computed and exported, never enforced.
    pub shadow: bool,
    /// The limit a backend starts with, before anything is measured.
    pub initial_limit: u32,
    /// The limit never goes below this (a backend always gets probes).
    pub min_limit: u32,
    /// The limit never goes above this.
    pub max_limit: u32,
    /// How often a backend's limit is reconsidered (when it has answered in the meantime).
    pub window: Duration,
    /// How long a request may wait for room before it is shed (503).
    pub queue_timeout: Duration,
    /// Most requests waiting; 0 = as many as the pool's recent throughput serves in half of
    /// `queue_timeout` (at least 8).
    pub max_queue: u32,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            enabled: true,
            shadow: false,
            initial_limit: 10,
            min_limit: 2,
            max_limit: 1000,
            window: Duration::from_millis(100),
            queue_timeout: Duration::from_millis(250),
            max_queue: 0,
        }
    }
}

impl AdaptiveConfig {
    /// True when limits decide who is sent (enabled and not shadow).
    pub fn enforced(&self) -> bool {
        self.enabled && !self.shadow
    }
}

crate::label_set! {
    /// A route's `priority`: under pressure `sheddable` requests are shed first, then
    /// `normal`, and `critical` last. Ordered: a lower rank is served first.
    pub enum Priority {
        Critical => "critical",
        Normal => "normal",
        Sheddable => "sheddable",
    }
}

impl Priority {
    /// 0 for critical, 1 normal, 2 sheddable.
    pub fn rank(self) -> usize {
        self as usize
    }
}
