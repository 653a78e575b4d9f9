//! Canary rollouts shared by a fleet: each route's rollout state lives in the store as a
//! field of the hash `NAMESPACE:canary` (JSON: phase, step, reason, and the hash of the
//! `[route.canary]` it belongs to, so instances with another config ignore it). A change is
//! written and announced on `NAMESPACE:control`; every instance reads the hash on an
//! announcement and at each heartbeat, and adopts what it finds (`runtime::canary::sync`).
//! Instances step on their own clocks and adopt each other's steps: the last writer wins.

use super::Cluster;
use crate::canary::State;
use crate::config::canary::CanaryConfig;
use std::collections::HashMap;

#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    #[serde(flatten)]
    state: State,
    config: String,
}

fn config_hash(c: &CanaryConfig) -> String {
    crate::config::fnv1a_hex(format!("{c:?}").as_bytes())
}

/// Writes route `route`'s rollout state and announces it (best effort: a store that cannot
/// be reached leaves the fleet to its own analysis).
pub async fn share(cluster: &Cluster, route: &str, config: &CanaryConfig, state: &State) {
    let body = serde_json::to_string(&Shared {
        state: state.clone(),
        config: config_hash(config),
    })
    .unwrap_or_default();
    let (key, field) = (cluster.key("canary"), route.to_owned());
    let written = cluster
        .run("canary", cluster.config.connect_timeout, move |mut c| {
            Box::pin(async move {
                redis::cmd("HSET")
                    .arg(key)
                    .arg(field)
                    .arg(body)
                    .query_async::<i64>(&mut c)
                    .await
            })
        })
        .await;
    if written.is_some() {
        cluster
            .publish(cluster.key("control"), "canary".to_owned())
            .await;
    }
}

/// Every route's shared rollout state, as stored. `None`: the store could not be reached.
pub async fn read(cluster: &Cluster) -> Option<HashMap<String, String>> {
    let key = cluster.key("canary");
    cluster
        .run("canary", cluster.config.connect_timeout, move |mut c| {
            Box::pin(async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
        })
        .await
}

/// Route `route`'s shared state, when it belongs to this `config`.
pub fn for_config(
    shared: &HashMap<String, String>,
    route: &str,
    config: &CanaryConfig,
) -> Option<State> {
    let s: Shared = serde_json::from_str(shared.get(route)?).ok()?;
    (s.config == config_hash(config)).then_some(s.state)
}
