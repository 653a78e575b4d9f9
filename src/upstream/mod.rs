//! Upstream pools: the backends' earned state (`backend`), choosing one (`pool`, `select`),
//! admission under adaptive concurrency limits (`concurrency`, `queue`, `admission`, `lag`),
//! what attempts teach the pool (`feedback`), latency-relative outliers (`slow`), active
//! health checks (`health`), the retry budget (`retry`), hedged requests' budget and measured
//! time to answer (`hedge`) and naming what happened (`outcome`).

pub mod admission;
pub mod backend;
pub mod breaker;
pub mod concurrency;
pub mod dns;
pub mod feedback;
pub mod health;
pub mod hedge;
pub mod lag;
pub mod latency;
pub mod outcome;
pub mod pause;
pub mod peer;
pub mod pool;
pub mod queue;
pub mod retry;
pub mod select;
pub mod slow;
pub mod stats;
pub mod sticky;

pub use crate::clock::now_ms;
