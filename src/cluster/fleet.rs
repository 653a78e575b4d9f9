//! The fleet view: each instance writes a heartbeat to Redis (`NAMESPACE:instance:ID`, kept
//! for three beats, and its id in the sorted set `NAMESPACE:instances` scored by when it
//! lapses), and stores the text of its config (secrets redacted, as `GET /api/config` shows
//! it) under `NAMESPACE:config:HASH` for `brace check --against fleet`. After each beat it reads every live instance's record and
//! sets `brace_fleet_instances{config_hash}` and `brace_fleet_drift`: an instance whose config
//! hash or version differs from the majority's has drifted, the most common cause of "it works
//! on the other machines".
//!
//! The fleet's config hash is of the validated config with the keys that are each instance's
//! own by nature left out: `server.listen`, the TLS listeners' addresses, `admin.listen` and
//! `cluster.instance_id` (two instances on one host must differ there). Everything else,
//! down to a rate or a timeout, is compared; comments and key order are not.

use super::Cluster;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One instance's heartbeat.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Beat {
    pub id: String,
    pub version: String,
    pub config_hash: String,
    pub started_unix: u64,
    pub listen: Vec<String>,
    pub admin: String,
    /// `applied` / `failed` and when, of the last reload tried; `None` before any.
    pub last_reload: Option<String>,
    pub seen_unix_ms: u64,
}

/// An instance as `GET /api/fleet` lists it.
#[derive(Serialize, Debug, Clone)]
pub struct Member {
    #[serde(flatten)]
    pub beat: Beat,
    /// Its config hash or version differs from the majority's.
    pub drift: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct Fleet {
    pub instances: Vec<Member>,
    /// The config hash and version most instances run (ties: the smaller).
    pub config_hash: String,
    pub version: String,
    pub drift: bool,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn majority<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    // Most common; among equals the smallest, so every instance names the same one.
    let best = counts.values().copied().max().unwrap_or(0);
    counts
        .into_iter()
        .find(|(_, n)| *n == best)
        .map(|(v, _)| v.to_owned())
        .unwrap_or_default()
}

impl Fleet {
    pub fn from_beats(mut beats: Vec<Beat>) -> Fleet {
        beats.sort_by(|a, b| a.id.cmp(&b.id));
        let config_hash = majority(beats.iter().map(|b| b.config_hash.as_str()));
        let version = majority(beats.iter().map(|b| b.version.as_str()));
        let instances: Vec<Member> = beats
            .into_iter()
            .map(|beat| Member {
                drift: beat.config_hash != config_hash || beat.version != version,
                beat,
            })
            .collect();
        Fleet {
            drift: instances.iter().any(|m| m.drift),
            instances,
            config_hash,
            version,
        }
    }
}

/// The fleet's hash of `cfg` (see the module doc).
pub fn config_hash(cfg: &crate::config::Config) -> String {
    let mut c = cfg.clone();
    normalize(&mut c);
    crate::config::fnv1a_hex(format!("{c:?}").as_bytes())
}

/// Clears the keys that are each instance's own (the module doc lists them).
pub fn normalize(c: &mut crate::config::Config) {
    c.server.listen.clear();
    for t in &mut c.server.tls {
        t.listen = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    }
    c.admin.listen = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    if let Some(cl) = &mut c.cluster {
        cl.instance_id.clear();
    }
}

/// Writes this instance's heartbeat `me` and its config's text (`source`), then updates the
/// fleet metrics from what the fleet wrote.
pub async fn beat(cluster: &Cluster, me: Beat, source: &str) {
    let ttl = cluster.config.heartbeat * 3;
    let lapse = me.seen_unix_ms + ttl.as_millis() as u64;
    let mut pipe = redis::pipe();
    pipe.set_options(
        cluster.key(&format!("instance:{}", me.id)),
        serde_json::to_string(&me).unwrap_or_default(),
        redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64)),
    )
    .ignore()
    .set_options(
        cluster.key(&format!("config:{}", me.config_hash)),
        // What `GET /api/config` shows: secrets (the admin token) redacted.
        crate::config::redacted(source),
        redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64)),
    )
    .ignore()
    .zadd(cluster.key("instances"), &me.id, lapse)
    .ignore()
    .zrembyscore(cluster.key("instances"), "-inf", me.seen_unix_ms)
    .ignore();
    let timeout = cluster.config.connect_timeout;
    let wrote: Option<()> = cluster
        .run("heartbeat", timeout, move |mut c| {
            Box::pin(async move { pipe.query_async(&mut c).await })
        })
        .await;
    if wrote.is_none() {
        return;
    }
    if let Some(fleet) = read(cluster).await {
        let m = &cluster.metrics;
        m.fleet_instances.reset();
        for i in &fleet.instances {
            m.fleet_instances
                .with_label_values(&[&i.beat.config_hash])
                .inc();
        }
        m.fleet_drift.set(i64::from(fleet.drift));
        let live = fleet.instances.len().max(1) as u32;
        cluster
            .live
            .store(live, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Every live instance's heartbeat.
pub async fn read(cluster: &Cluster) -> Option<Fleet> {
    let set = cluster.key("instances");
    let now = unix_ms();
    let timeout = cluster.config.connect_timeout;
    let ids: Vec<String> = cluster
        .run("fleet", timeout, move |mut c| {
            Box::pin(async move {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(set)
                    .arg(now)
                    .arg("+inf")
                    .query_async(&mut c)
                    .await
            })
        })
        .await?;
    if ids.is_empty() {
        return Some(Fleet::from_beats(Vec::new()));
    }
    let keys: Vec<String> = ids
        .iter()
        .map(|id| cluster.key(&format!("instance:{id}")))
        .collect();
    let records: Vec<Option<String>> = cluster
        .run("fleet", timeout, move |mut c| {
            Box::pin(async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
        })
        .await?;
    let beats = records
        .into_iter()
        .flatten()
        .filter_map(|r| serde_json::from_str::<Beat>(&r).ok())
        .collect();
    Some(Fleet::from_beats(beats))
}

/// The config text an instance with `hash` runs, while one does.
pub async fn config_text(cluster: &Cluster, hash: &str) -> Option<String> {
    let key = cluster.key(&format!("config:{hash}"));
    cluster
        .run("fleet", cluster.config.connect_timeout, move |mut c| {
            Box::pin(async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
        })
        .await
        .flatten()
}

/// On shutdown: leave the fleet at once rather than after three missed beats.
pub async fn leave(cluster: &Cluster) {
    let (id, set) = (cluster.id().to_owned(), cluster.key("instances"));
    let key = cluster.key(&format!("instance:{id}"));
    let _: Option<()> = cluster
        .run("heartbeat", Duration::from_millis(200), move |mut c| {
            Box::pin(async move {
                redis::pipe()
                    .del(key)
                    .ignore()
                    .zrem(set, id)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, hash: &str, version: &str) -> Beat {
        Beat {
            id: id.into(),
            version: version.into(),
            config_hash: hash.into(),
            started_unix: 0,
            listen: vec![],
            admin: String::new(),
            last_reload: None,
            seen_unix_ms: 0,
        }
    }

    #[test]
    fn the_odd_one_out_drifts_and_ties_go_to_the_smaller_hash() {
        let f = Fleet::from_beats(vec![
            beat("c", "h2", "1"),
            beat("a", "h1", "1"),
            beat("b", "h1", "1"),
        ]);
        assert_eq!(f.config_hash, "h1");
        assert!(f.drift);
        let drifted: Vec<&str> = f
            .instances
            .iter()
            .filter(|m| m.drift)
            .map(|m| m.beat.id.as_str())
            .collect();
        assert_eq!(drifted, ["c"]);
        // Two against two: every instance names the same majority.
        let f = Fleet::from_beats(vec![beat("a", "hb", "1"), beat("b", "ha", "1")]);
        assert_eq!(f.config_hash, "ha");
        // Same config, another version: drift too.
        let f = Fleet::from_beats(vec![
            beat("a", "h", "1"),
            beat("b", "h", "1"),
            beat("c", "h", "2"),
        ]);
        assert!(f.instances[2].drift && !f.instances[0].drift);
        // One instance, or none: no drift.
        assert!(!Fleet::from_beats(vec![beat("a", "h", "1")]).drift);
        assert!(!Fleet::from_beats(vec![]).drift);
    }

    #[test]
    fn the_fleet_hash_ignores_each_instances_own_addresses_and_id_only() {
        let text = |listen: &str, admin: &str, id: &str, rate: u32| {
            format!(
                "[server]\nlisten = [\"{listen}\"]\n[admin]\nlisten = \"{admin}\"\n[cluster]\nredis = \"redis://127.0.0.1:6379/0\"\ninstance_id = \"{id}\"\n[rate_limit.l]\nkey = \"client_ip\"\nrate = {rate}\nburst = 10\n[[route]]\nname = \"r\"\nupstream = \"u\"\nrate_limits = [\"l\"]\n[upstream.u]\nbackends = [\"127.0.0.1:80\"]\n"
            )
        };
        let hash = |t: String| {
            config_hash(
                &crate::config::parse(&t, "t", std::path::Path::new("."))
                    .unwrap()
                    .config,
            )
        };
        let a = hash(text("127.0.0.1:8080", "127.0.0.1:9901", "a", 10));
        assert_eq!(a, hash(text("127.0.0.1:8081", "127.0.0.1:9902", "b", 10)));
        assert_ne!(a, hash(text("127.0.0.1:8080", "127.0.0.1:9901", "a", 11)));
    }
}
