//! The DNS refresh loop: one follower task per DNS source (`upstream::dns`) follows its name;
//! this service starts and stops them as the config changes, and when an answer changed
//! publishes a snapshot of the running config with the new backends (`publish`, the one way a
//! snapshot goes live).

use super::build::Input;
use super::State;
use crate::upstream::dns::{resolver, sources, Follower, Key};
use hickory_resolver::TokioResolver;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Rebuilds the snapshot from the running config with the current DNS answers.
fn rebuild(state: &State) {
    let serial = state.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
    let old = state.snapshot();
    super::publish::publish(state, &serial, Input::running(&old), &old);
}

/// The background service: one task per DNS source follows its name (each with its own
/// timeout, so a resolver that never answers delays no other upstream); the service starts
/// and stops them as the config changes and rebuilds the snapshot when an answer changed.
pub struct Service {
    pub state: Arc<State>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Service {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let changed = Arc::new(tokio::sync::Notify::new());
        let mut resolvers: HashMap<(Option<SocketAddr>, Duration), TokioResolver> = HashMap::new();
        let mut followers: HashMap<Key, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let snap = self.state.snapshot();
            let mut live = Vec::new();
            let mut wanted: Vec<Key> = Vec::new();
            for (name, pool) in &snap.pools {
                let Some(cfg) = &pool.config.dns else {
                    continue;
                };
                for s in sources(cfg) {
                    live.push((name.clone(), s.clone()));
                    wanted.push((name.clone(), s, cfg.resolver, cfg.every));
                }
            }
            followers.retain(|k, task| {
                let keep = wanted.contains(k);
                if !keep {
                    task.abort();
                }
                keep
            });
            for key in wanted {
                if followers.contains_key(&key) {
                    continue;
                }
                let (name, source, server, every) = key.clone();
                let r = match resolvers.entry((server, every)) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => match resolver(server, every) {
                        Ok(r) => e.insert(r),
                        Err(err) => {
                            tracing::error!(upstream = %name, "cannot set up DNS resolution: {err}");
                            continue;
                        }
                    },
                };
                let follower = Follower {
                    resolver: r.clone(),
                    name,
                    source,
                    every,
                    dns: self.state.env.dns.clone(),
                    metrics: self.state.metrics.clone(),
                    changed: changed.clone(),
                };
                followers.insert(key, tokio::spawn(follower.run()));
            }
            self.state.env.dns.retain(&live);
            tokio::select! {
                _ = changed.notified() => rebuild(&self.state),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {
                    followers.values().for_each(|t| t.abort());
                    return;
                }
            }
        }
    }
}
