//! The process's shared state: the one `ArcSwap` holding the current snapshot, the metrics,
//! and the lifecycle flags the admin endpoints report.

use super::Snapshot;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct State {
    /// The only `ArcSwap` in brace: a reload stores a whole new snapshot here in one step.
    pub store: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    ready: AtomicBool,
    draining: AtomicBool,
}

impl State {
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>) -> State {
        metrics.set_config_hash(&snapshot.hash);
        State {
            store: ArcSwap::from_pointee(snapshot),
            metrics,
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.store.load_full()
    }

    /// Ready = listeners accept connections and the process is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
