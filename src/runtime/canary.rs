//! The canary rollouts' loop: once a second every route's rollout is judged on its window
//! (`canary::Rollout::tick`); a transition is an event, a metric and, with `[cluster]`, the
//! fleet's (`cluster::canary`). Operators' commands (`POST /api/routes/NAME/canary`) go
//! through [`act`]. It acts on the whole state, so it lives here and calls down.

use super::State;
use crate::canary::{Action, Phase, Rollout, Transition};
use crate::events::{Event, Kind, Level};
use std::sync::Arc;
use std::time::Duration;

pub struct Service {
    pub state: Arc<State>,
}

/// How often rollouts are judged.
pub const TICK: Duration = Duration::from_secs(1);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Service {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => judge(&self.state).await,
            }
        }
    }
}

/// One round: every rollout of the snapshot in force.
pub async fn judge(state: &State) {
    let snap = state.snapshot();
    let now = crate::clock::now_ms();
    for (route, rollout) in &snap.rollouts {
        if let Some(t) = rollout.tick(now) {
            report(state, route, rollout, &t, "the analysis").await;
        }
        snap.metrics
            .deploy
            .percent
            .with_label_values(&[route])
            .set(i64::from(rollout.percent()));
    }
}

/// An operator's command on route `route`'s canary; the state it leaves, or why not.
pub async fn act(
    state: &State,
    route: &str,
    action: Action,
) -> Result<crate::canary::State, String> {
    let snap = state.snapshot();
    let Some(rollout) = snap.rollouts.get(route) else {
        let known: Vec<&str> = snap.rollouts.keys().map(String::as_str).collect();
        return Err(format!(
            "route \"{route}\" has no canary; routes with one: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    };
    if let Some(t) = rollout.act(action, crate::clock::now_ms()) {
        report(state, route, rollout, &t, "an operator").await;
    }
    Ok(rollout.state())
}

/// A transition's event, metrics and, with `[cluster]`, its share with the fleet.
pub async fn report(state: &State, route: &str, rollout: &Rollout, t: &Transition, by: &str) {
    let m = &state.metrics;
    m.deploy
        .percent
        .with_label_values(&[route])
        .set(i64::from(t.percent));
    let (to, level) = match t.to.phase {
        Phase::Aborted => ("aborted", Level::Warn),
        Phase::Promoted => ("promoted", Level::Info),
        Phase::Stepping if t.to.step == 0 && by != "the analysis" => ("resumed", Level::Info),
        Phase::Stepping => ("step", Level::Info),
    };
    m.deploy
        .transitions_total
        .with_label_values(&[route, to])
        .inc();
    let reason = if t.to.reason.is_empty() {
        format!(
            "healthy for {}",
            humantime::format_duration(rollout.config.interval)
        )
    } else {
        t.to.reason.clone()
    };
    m.events.record(
        Event::new(Kind::Canary, level, to, format!("{reason} ({by})"))
            .upstream(&rollout.config.upstream)
            .message(format!(
                "canary of route {route}: {to}, now {}% of its requests",
                t.percent
            )),
    );
    if let Some(cluster) = &state.env.cluster {
        crate::cluster::canary::share(cluster, route, &rollout.config, &t.to).await;
    }
}

/// Adopts the fleet's rollouts (with `[cluster]`): a step, an abort or an operator's command
/// on any instance applies on this one.
pub async fn sync(state: &State, cluster: &crate::cluster::Cluster) {
    let snap = state.snapshot();
    if snap.rollouts.is_empty() {
        return;
    }
    let Some(shared) = crate::cluster::canary::read(cluster).await else {
        return;
    };
    let now = crate::clock::now_ms();
    for (route, rollout) in &snap.rollouts {
        let Some(s) = crate::cluster::canary::for_config(&shared, route, &rollout.config) else {
            continue;
        };
        if let Some(t) = rollout.adopt(s, now) {
            state
                .metrics
                .deploy
                .percent
                .with_label_values(&[route])
                .set(i64::from(t.percent));
            tracing::info!(
                route,
                phase = t.to.phase.as_str(),
                percent = t.percent,
                "canary state adopted from the fleet"
            );
        }
    }
}
