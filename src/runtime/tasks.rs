//! The background loop that drives active health checks and ejection housekeeping over the
//! pools of whatever snapshot is current (so a reload's pools are picked up at the next tick).

use super::State;
use crate::upstream::health::{round, TICK};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;

pub struct HealthService {
    pub state: Arc<State>,
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => round(self.state.snapshot().pools.values()),
            }
        }
    }
}
