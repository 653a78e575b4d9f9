//! Draining a backend for a deploy: the operator's drain (`POST
//! /api/upstreams/NAME/backends/ADDR/drain`, `brace drain`) sets the backend's own flag in the
//! running snapshot, so it gets no new requests while those in flight finish; the flag lives
//! on the backend, which a reload carries over by address, so a drain survives reloads. With
//! `[cluster]` the drain is also written to the store and every instance applies it
//! ([`sync`]).

use super::State;
use crate::cluster::{marks, Cluster};
use crate::events::{Event, Kind, Level};
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// What a drain or undrain did on this instance.
#[derive(Serialize, Debug)]
pub struct Drain {
    pub upstream: String,
    pub backend: String,
    pub draining: bool,
    /// False when the backend already was in that state.
    pub changed: bool,
    /// Requests still in flight to it; a drain is complete at 0.
    pub in_flight: i64,
}

/// Drains (`on`) or undrains `addr` in pool `upstream` on this instance; `Err` says what was
/// not found, naming what exists.
pub fn set(
    state: &State,
    upstream: &str,
    addr: SocketAddr,
    on: bool,
    by: &str,
) -> Result<Drain, String> {
    let snap = state.snapshot();
    let Some(pool) = snap.pools.get(upstream) else {
        let known: Vec<&str> = snap.pools.keys().map(String::as_str).collect();
        return Err(format!(
            "no upstream \"{upstream}\"; upstreams: {}",
            known.join(", ")
        ));
    };
    let Some(b) = pool.backends.iter().find(|b| b.addr == addr) else {
        let known: Vec<&str> = pool.backends.iter().map(|b| b.label.as_str()).collect();
        return Err(format!(
            "upstream \"{upstream}\" has no backend {addr}; its backends: {}",
            known.join(", ")
        ));
    };
    let changed = b.set_draining(on);
    if changed {
        let (to, from) = if on {
            ("draining", "serving")
        } else {
            ("serving", "draining")
        };
        state.metrics.events.record(
            Event::new(Kind::Drain, Level::Info, to, by)
                .from_state(from)
                .backend(upstream, &b.label)
                .message(if on {
                    "backend drained: no new requests"
                } else {
                    "backend undrained: serving again"
                }),
        );
    }
    Ok(Drain {
        upstream: upstream.to_owned(),
        backend: b.label.clone(),
        draining: on,
        changed,
        in_flight: b.in_flight(),
    })
}

/// A drained backend as the fleet's store names it: its pool and its address.
pub type Drained = BTreeSet<(String, SocketAddr)>;

/// The store's set of drained backends.
const SET: &str = "drained";

/// Records a drain (`on`) or its end in the fleet's store; `None`: it could not be reached.
pub async fn share(cluster: &Cluster, upstream: &str, addr: SocketAddr, on: bool) -> Option<()> {
    marks::mark(cluster, SET, format!("{upstream} {addr}"), on).await
}

/// Applies the fleet's drains: a backend the store names is drained; one it named at the
/// last read (`last`) and no longer does is undrained. A backend drained on this instance
/// alone (while the store was down) is left as it is. Keeps what it read in `last`.
pub async fn sync(state: &State, cluster: &Cluster, last: &mut Drained) {
    let Some(names) = marks::read(cluster, SET).await else {
        return;
    };
    let now: Drained = names.iter().filter_map(|f| parse(f)).collect();
    for (upstream, addr) in now.iter() {
        let _ = set(state, upstream, *addr, true, "drained by the fleet");
    }
    for (upstream, addr) in last.difference(&now) {
        let _ = set(state, upstream, *addr, false, "undrained by the fleet");
    }
    *last = now;
}

/// `UPSTREAM ADDR`, a field of the store's set.
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
