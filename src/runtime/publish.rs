//! The one way a snapshot goes live, whatever made it (a reload, new DNS answers): built from
//! a config and the running snapshot (what is unchanged is reused, earned state kept by
//! identity), the series of backends that left forgotten, the config hash exported, and
//! stored in the one `ArcSwap`. Callers hold `State::reload_lock`, so two never interleave.

use super::build::{build, Input};
use super::{Snapshot, State};
use std::collections::HashSet;
use std::sync::{Arc, MutexGuard};

/// Builds the snapshot of `input` over `old` (the running one) and makes it the running one.
pub fn publish(
    state: &State,
    _serial: &MutexGuard<'_, ()>,
    input: Input,
    old: &Snapshot,
) -> Arc<Snapshot> {
    let snapshot = Arc::new(build(input, &state.metrics, &state.env, Some(old)));
    forget_removed_backends(state, old, &snapshot);
    state.metrics.set_config_hash(&snapshot.hash);
    state.store.store(snapshot.clone());
    snapshot
}

/// Series of backends that left (the config, or DNS) would otherwise report their last values
/// forever.
fn forget_removed_backends(state: &State, old: &Snapshot, new: &Snapshot) {
    let kept: HashSet<(String, String)> = new
        .pools
        .iter()
        .flat_map(|(n, p)| p.backends.iter().map(move |b| (n.clone(), b.label.clone())))
        .collect();
    for (n, p) in &old.pools {
        for b in &p.backends {
            if !kept.contains(&(n.clone(), b.label.clone())) {
                crate::upstream::stats::forget_backend(&state.metrics, n, &b.label);
            }
        }
    }
}
