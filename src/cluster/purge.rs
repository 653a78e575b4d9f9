//! Cluster-wide purge: a purge or clear through the admin API, and the invalidation an
//! unsafe request causes (RFC 9111 §4.4), reach every instance over Redis pub/sub.
//!
//! Every instance subscribes to `NAMESPACE:purge`. The instance that purges applies the purge
//! to its own cache, publishes it, and (for admin purges) waits a moment for each subscriber's
//! acknowledgement on `NAMESPACE:ack:ID`, so the API answers with what every instance
//! removed. Pub/sub does not keep messages for a subscriber that is away, so an instance whose
//! subscription was lost clears its whole cache when it subscribes again: a purge it may have
//! missed cannot leave a stale page behind (a cold cache costs backend load for a while; a
//! stale page served after a purge is the failure purges exist to prevent).

use super::Cluster;
use crate::cache::Store;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What to remove; URLs are cache keys' `scheme://host/path`, scheme and host lower-cased.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Url { url: String },
    Prefix { prefix: String },
    Clear,
    Invalidate { urls: Vec<String> },
}

impl Op {
    /// Removes what `self` names from `store`; how many entries went.
    pub fn apply(&self, store: &Store) -> u64 {
        match self {
            Op::Url { url } => store.storage.purge_urls([url.as_str()]),
            Op::Prefix { prefix } => store
                .storage
                .purge_where(|e| e.starts_with(prefix.as_str())),
            Op::Clear => store.storage.clear(),
            Op::Invalidate { urls } => store.storage.purge_urls(urls.iter().map(String::as_str)),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Msg {
    /// 0: no acknowledgement wanted.
    id: u64,
    from: String,
    #[serde(flatten)]
    op: Op,
}

#[derive(Serialize, Deserialize)]
struct Ack {
    id: u64,
    instance: String,
    removed: u64,
}

/// Purges waiting for acknowledgements, by id.
pub type Acks = Mutex<HashMap<u64, mpsc::UnboundedSender<(String, u64)>>>;

/// What a cluster-wide purge reached.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Entries removed, by instance (this one included).
    pub instances: BTreeMap<String, u64>,
    /// Subscribers that got the purge but did not acknowledge it in time.
    pub unanswered: u32,
}

fn acks(
    c: &Cluster,
) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<(String, u64)>>> {
    c.acks.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes `op`, already applied here (`removed_here` entries), and waits up to `wait`
/// for every subscriber's acknowledgement. `None`: the store could not be reached.
pub async fn broadcast(
    cluster: &Cluster,
    op: Op,
    removed_here: u64,
    wait: Duration,
) -> Option<Report> {
    let id = fastrand::u64(1..);
    let (tx, mut rx) = mpsc::unbounded_channel();
    acks(cluster).insert(id, tx);
    let msg = Msg {
        id,
        from: cluster.id().to_owned(),
        op,
    };
    let body = serde_json::to_string(&msg).unwrap_or_default();
    let reached = cluster.publish(cluster.key("purge"), body).await;
    cluster
        .metrics
        .cluster_purges_total
        .with_label_values(&["published"])
        .inc();
    let mut instances = BTreeMap::from([(cluster.id().to_owned(), removed_here)]);
    let mut answered = 0;
    if let Some(n) = reached {
        let deadline = tokio::time::Instant::now() + wait;
        while answered < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((instance, removed))) => {
                    answered += 1;
                    if instance != cluster.id() {
                        instances.insert(instance, removed);
                    }
                }
                _ => break,
            }
        }
    }
    acks(cluster).remove(&id);
    reached.map(|n| Report {
        instances,
        unanswered: n - answered,
    })
}

/// Publishes an invalidation without waiting for anyone (the request path calls this).
pub fn notify(cluster: &Arc<Cluster>, op: Op) {
    let cluster = cluster.clone();
    tokio::spawn(async move {
        let msg = Msg {
            id: 0,
            from: cluster.id().to_owned(),
            op,
        };
        let body = serde_json::to_string(&msg).unwrap_or_default();
        if cluster.available(crate::clock::now_us()) {
            cluster.publish(cluster.key("purge"), body).await;
            cluster
                .metrics
                .cluster_purges_total
                .with_label_values(&["published"])
                .inc();
        }
    });
}

/// The cache store in force now (`None` without `[cache]`), asked at each purge received.
pub type CurrentCache = dyn Fn() -> Option<Arc<Store>> + Send + Sync;

/// Called on every message on `NAMESPACE:control` (shared state changed: read it again), and
/// after each (re)subscription, since a change may have been missed meanwhile.
pub type OnControl = dyn Fn() + Send + Sync;

/// Keeps this instance subscribed until the task is aborted; after a lost subscription the
/// cache is cleared (see the module doc).
pub async fn subscribe(cluster: Arc<Cluster>, cache: Arc<CurrentCache>, control: Arc<OnControl>) {
    let purge = cluster.key("purge");
    let ctl = cluster.key("control");
    let ack = cluster.key(&format!("ack:{}", cluster.id()));
    let mut lost = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = tokio::time::timeout(cluster.config.connect_timeout, async {
            let mut p = cluster.client.get_async_pubsub().await?;
            p.subscribe(&purge).await?;
            p.subscribe(&ack).await?;
            p.subscribe(&ctl).await?;
            Ok::<_, redis::RedisError>(p)
        })
        .await;
        match connected {
            Ok(Ok(p)) => {
                backoff = Duration::from_millis(100);
                if lost {
                    resync(&cluster, cache());
                }
                control();
                tracing::info!("cluster: subscribed to {purge} and {ctl}");
                let mut stream = p.into_on_message();
                while let Some(m) = stream.next().await {
                    let Ok(body) = m.get_payload::<String>() else {
                        continue;
                    };
                    if m.get_channel_name() == ctl {
                        control();
                    } else if m.get_channel_name() == ack {
                        if let Ok(a) = serde_json::from_str::<Ack>(&body) {
                            if let Some(tx) = acks(&cluster).get(&a.id) {
                                let _ = tx.send((a.instance, a.removed));
                            }
                        }
                    } else if let Ok(msg) = serde_json::from_str::<Msg>(&body) {
                        received(&cluster, cache(), msg).await;
                    }
                }
                tracing::warn!("cluster: purge subscription lost; reconnecting (the cache will be cleared, a purge may have been missed)");
            }
            Ok(Err(e)) => tracing::debug!("cluster: cannot subscribe: {e}"),
            Err(_) => tracing::debug!("cluster: cannot subscribe: no answer in time"),
        }
        lost = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn received(cluster: &Cluster, cache: Option<Arc<Store>>, msg: Msg) {
    let removed = if msg.from == cluster.id() {
        0 // applied when it was sent
    } else {
        cluster
            .metrics
            .cluster_purges_total
            .with_label_values(&["received"])
            .inc();
        let removed = cache.as_ref().map_or(0, |c| msg.op.apply(c));
        cluster.metrics.cache_purged_total.inc_by(removed);
        tracing::debug!(
            from = msg.from,
            removed,
            "cluster purge applied: {:?}",
            msg.op
        );
        removed
    };
    if msg.id != 0 {
        let ack = Ack {
            id: msg.id,
            instance: cluster.id().to_owned(),
            removed,
        };
        let body = serde_json::to_string(&ack).unwrap_or_default();
        cluster
            .publish(cluster.key(&format!("ack:{}", msg.from)), body)
            .await;
    }
}

/// After a lost subscription: forget everything cached (a purge may have been missed).
fn resync(cluster: &Cluster, cache: Option<Arc<Store>>) {
    let removed = cache.as_ref().map_or(0, |c| c.storage.clear());
    cluster.metrics.cluster_cache_resyncs_total.inc();
    cluster.metrics.cache_purged_total.inc_by(removed);
    tracing::warn!(
        removed,
        "cluster: subscribed again after a loss; cache cleared in case a purge was missed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form other instances (and other versions) read: the op's name beside its
    /// fields, one flat JSON object.
    #[test]
    fn a_purge_message_is_one_flat_json_object_that_reads_back() {
        let m = Msg {
            id: 7,
            from: "a".into(),
            op: Op::Prefix {
                prefix: "http://shop.test/img/".into(),
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"id":7,"from":"a","op":"prefix","prefix":"http://shop.test/img/"}"#
        );
        let back: Msg = serde_json::from_str(&text).unwrap();
        assert_eq!((back.id, back.from.as_str()), (7, "a"));
        assert_eq!(back.op, m.op);
        let clear: Msg = serde_json::from_str(r#"{"id":0,"from":"b","op":"clear"}"#).unwrap();
        assert_eq!(clear.op, Op::Clear);
    }

    #[test]
    fn an_unknown_op_is_not_read_as_another() {
        assert!(serde_json::from_str::<Msg>(r#"{"id":0,"from":"b","op":"nuke"}"#).is_err());
        let ack: Ack = serde_json::from_str(r#"{"id":3,"instance":"c","removed":12}"#).unwrap();
        assert_eq!((ack.id, ack.instance.as_str(), ack.removed), (3, "c", 12));
    }
}
