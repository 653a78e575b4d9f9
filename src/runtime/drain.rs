//! Draining a backend for a deploy: the operator's drain (`POST
//! /api/upstreams/NAME/backends/ADDR/drain`, `brace drain`) sets the backend's own flag in the
//! running snapshot, so it gets no new requests while those in flight finish; the flag lives
//! on the backend, which a reload carries over by address, so a drain survives reloads. With
//! `[cluster]` the drain is also written to the store and every instance applies it
//! ([`sync`]).

use super::State;
use crate::cluster::{drain as shared, Cluster};
use crate::events::{Event, Kind, Level};
use serde::Serialize;
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

/// Applies the fleet's drains: a backend the store names is drained; one it named at the
/// last read (`last`) and no longer does is undrained. A backend drained on this instance
/// alone (while the store was down) is left as it is. Keeps what it read in `last`.
pub async fn sync(state: &State, cluster: &Cluster, last: &mut shared::Drained) {
    let Some(now) = shared::read(cluster).await else {
        return;
    };
    for (upstream, addr) in now.iter() {
        let _ = set(state, upstream, *addr, true, "drained by the fleet");
    }
    for (upstream, addr) in last.difference(&now) {
        let _ = set(state, upstream, *addr, false, "undrained by the fleet");
    }
    *last = now;
}
