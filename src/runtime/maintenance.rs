//! Maintenance mode: a route in maintenance answers every request with 503, `Retry-After` and
//! its (or the server's) 503 page, except clients in its `maintenance_allow` networks, so
//! operators can test while users wait. Set by the config (`maintenance = true`) and by the
//! admin API (`POST /api/routes/NAME/maintenance`), which a reload keeps unless it changes the
//! route's `maintenance`; with `[cluster]` the API's change reaches every instance.

use super::State;
use crate::cluster::{marks, Cluster};
use crate::events::{Event, Kind, Level};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;

/// The store's set of routes in maintenance.
const SET: &str = "maintenance";

/// Turns route `route`'s maintenance on or off here; whether that changed it, or why not.
pub fn set(state: &State, route: &str, on: bool, by: &str) -> Result<bool, String> {
    let snap = state.snapshot();
    let Some(flag) = snap.maintenance.get(route) else {
        let known: Vec<&str> = snap.maintenance.keys().map(String::as_str).collect();
        return Err(format!(
            "no route \"{route}\"; routes: {}",
            known.join(", ")
        ));
    };
    let changed = flag.swap(on, Relaxed) != on;
    if changed {
        let (to, from) = if on {
            ("maintenance", "serving")
        } else {
            ("serving", "maintenance")
        };
        state.metrics.events.record(
            Event::new(Kind::Maintenance, Level::Info, to, by)
                .from_state(from)
                .message(format!("route {route}: {to}")),
        );
    }
    Ok(changed)
}

/// Records the change in the fleet's store; `None`: it could not be reached.
pub async fn share(cluster: &Cluster, route: &str, on: bool) -> Option<()> {
    marks::mark(cluster, SET, route.to_owned(), on).await
}

/// Applies the fleet's maintenance marks, as `runtime::drain::sync` does drains.
pub async fn sync(state: &State, cluster: &Cluster, last: &mut BTreeSet<String>) {
    let Some(now) = marks::read(cluster, SET).await else {
        return;
    };
    for route in &now {
        let _ = set(state, route, true, "set by the fleet");
    }
    for route in last.difference(&now) {
        let _ = set(state, route, false, "ended by the fleet");
    }
    *last = now;
}
