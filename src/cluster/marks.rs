//! Marks shared by a fleet: sets of names an operator turned on (drained backends,
//! `drained`; routes in maintenance, `maintenance`). Each set lives in the store as one hash,
//! `NAMESPACE:SET` (the field is the name, the value the instance that set it), so an
//! instance that starts or reconnects learns it; a change is announced on
//! `NAMESPACE:control`, which every instance's subscription (`purge::subscribe`) hears, so all
//! apply it at once; and every heartbeat reads the sets again, so a lost announcement costs at
//! most one heartbeat.

use super::Cluster;
use std::collections::BTreeSet;

/// Adds `field` to set `set` (`on`) or removes it, and announces it. `None`: the store could
/// not be reached.
pub async fn mark(cluster: &Cluster, set: &str, field: String, on: bool) -> Option<()> {
    let key = cluster.key(set);
    let by = cluster.id().to_owned();
    cluster
        .run("mark", cluster.config.connect_timeout, move |mut c| {
            Box::pin(async move {
                let cmd = if on {
                    let mut cmd = redis::cmd("HSET");
                    cmd.arg(key).arg(field).arg(by);
                    cmd
                } else {
                    let mut cmd = redis::cmd("HDEL");
                    cmd.arg(key).arg(field);
                    cmd
                };
                cmd.query_async::<i64>(&mut c).await
            })
        })
        .await?;
    cluster
        .publish(cluster.key("control"), set.to_owned())
        .await?;
    Some(())
}

/// The names in set `set`. `None`: the store could not be reached.
pub async fn read(cluster: &Cluster, set: &str) -> Option<BTreeSet<String>> {
    let key = cluster.key(set);
    let fields: Vec<String> = cluster
        .run("mark", cluster.config.connect_timeout, move |mut c| {
            Box::pin(async move { redis::cmd("HKEYS").arg(key).query_async(&mut c).await })
        })
        .await?;
    Some(fields.into_iter().collect())
}
