//! Upstream pools: choosing a backend (`pool`) and naming what happened (`outcome`).

pub mod outcome;
pub mod pool;
