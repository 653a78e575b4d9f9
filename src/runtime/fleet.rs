//! The fleet's background service: connect to the `[cluster]` store, keep the purge
//! subscription (purges apply to the cache in force), apply the fleet's drains
//! (`runtime::drain`) and canary rollouts (`runtime::canary`) and beat this instance's heartbeat
//! (built from the running snapshot and the process's state) until shutdown. It acts on the
//! whole state, so it lives here and calls down into `cluster`.

use super::{Snapshot, State};
use crate::cluster::fleet::{self, config_hash, unix_ms, Beat};
use crate::cluster::{purge, Cluster};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub struct Service {
    pub state: Arc<State>,
    pub cluster: Arc<Cluster>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Service {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        if let Err(e) = self.cluster.connect() {
            tracing::error!("cluster store: {e}; global limits use their fallback");
            return;
        }
        let state = self.state.clone();
        let cache: Arc<purge::CurrentCache> = Arc::new(move || state.snapshot().cache.clone());
        let changed = Arc::new(tokio::sync::Notify::new());
        let control: Arc<purge::OnControl> = Arc::new({
            let changed = changed.clone();
            move || changed.notify_one()
        });
        let subscriber = tokio::spawn(purge::subscribe(self.cluster.clone(), cache, control));
        let mut tick = tokio::time::interval(self.cluster.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut drained, mut maintenance) = Default::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let snap = self.state.snapshot();
                    let me = this(&self.state, &snap, &self.cluster);
                    fleet::beat(&self.cluster, me, &snap.source).await;
                    super::drain::sync(&self.state, &self.cluster, &mut drained).await;
                    super::canary::sync(&self.state, &self.cluster).await;
                    super::maintenance::sync(&self.state, &self.cluster, &mut maintenance).await;
                }
                _ = changed.notified() => {
                    super::drain::sync(&self.state, &self.cluster, &mut drained).await;
                    super::canary::sync(&self.state, &self.cluster).await;
                    super::maintenance::sync(&self.state, &self.cluster, &mut maintenance).await;
                }
                _ = shutdown.changed() => break,
            }
        }
        fleet::leave(&self.cluster).await;
        subscriber.abort();
    }
}

/// This instance's heartbeat.
fn this(state: &State, snap: &Snapshot, cluster: &Cluster) -> Beat {
    let cfg = &snap.config;
    let mut listen: Vec<String> = cfg.server.listen.iter().map(|a| a.to_string()).collect();
    listen.extend(cfg.server.tls.iter().map(|t| format!("{} (tls)", t.listen)));
    let last_reload = state
        .last_reload
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|r| format!("{} at {} ms", r.result, r.at_unix_ms));
    Beat {
        id: cluster.id().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config_hash: config_hash(cfg),
        started_unix: state
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        listen,
        admin: cfg.admin.listen.to_string(),
        last_reload,
        seen_unix_ms: unix_ms(),
    }
}
