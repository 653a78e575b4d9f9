//! Upstream pools: the backends' earned state (`backend`), choosing one (`pool`), active
//! health checks (`health`), the retry budget (`retry`) and naming what happened (`outcome`).

pub mod backend;
pub mod health;
pub mod outcome;
pub mod pool;
pub mod retry;

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds on brace's monotonic clock (since the first call). State machines take this
/// as an argument so tests can step it.
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}
