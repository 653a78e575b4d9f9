//! Drains shared by a fleet. The drained backends live in the store as one hash,
//! `NAMESPACE:drained` (field `UPSTREAM ADDR`), so an instance that starts or reconnects
//! learns them; a change is announced on `NAMESPACE:control`, which every instance's
//! subscription (`purge::subscribe`) hears, so all apply it at once; and every heartbeat reads
//! the hash again, so a lost announcement costs at most one heartbeat.

use super::Cluster;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// A drained backend: its pool's name and its address.
pub type Drained = BTreeSet<(String, SocketAddr)>;

/// Records a drain (`on`) or its end in the store and announces it. `None`: the store could
/// not be reached.
pub async fn mark(cluster: &Cluster, upstream: &str, addr: SocketAddr, on: bool) -> Option<()> {
    let (key, field) = (cluster.key("drained"), format!("{upstream} {addr}"));
    let by = cluster.id().to_owned();
    cluster
        .run("drain", cluster.config.connect_timeout, move |mut c| {
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
        .publish(cluster.key("control"), "drained".to_owned())
        .await?;
    Some(())
}

/// The drained backends the store holds. `None`: it could not be reached.
pub async fn read(cluster: &Cluster) -> Option<Drained> {
    let key = cluster.key("drained");
    let fields: Vec<String> = cluster
        .run("drain", cluster.config.connect_timeout, move |mut c| {
            Box::pin(async move { redis::cmd("HKEYS").arg(key).query_async(&mut c).await })
        })
        .await?;
    Some(fields.iter().filter_map(|f| parse(f)).collect())
}

fn parse(field: &str) -> Option<(String, SocketAddr)> {
    let (upstream, addr) = field.split_once(' ')?;
    Some((upstream.to_owned(), addr.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_field_names_the_pool_and_the_address() {
        let (u, a) = super::parse("api [::1]:8080").unwrap();
        assert_eq!((u.as_str(), a.to_string().as_str()), ("api", "[::1]:8080"));
        assert!(super::parse("api").is_none());
        assert!(super::parse("api not-an-address").is_none());
    }
}
