//! The one reload path, whatever the trigger (SIGHUP, `POST /api/reload`, the file watcher):
//! read → parse → validate → plan → build the new snapshot, reusing unchanged parts → swap the
//! one `ArcSwap` → report. Any failure keeps the running snapshot untouched.
//!
//! Keys that only a restart can apply (`restart`: listeners, threads, TLS listeners, the admin
//! listener, the log format, `[tracing]`, `[cluster]`, upstream `keepalive`) are carried over
//! from the running config, so the snapshot always says what is in force, and the plan lists
//! them as not applied.

use super::plan::Plan;
use super::State;
use crate::config::{self, Loaded};
use crate::events::{Event, Kind, Level};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Reloads the config file; returns the plan that was applied, or why nothing was.
pub fn reload(state: &State, trigger: &str) -> Result<Plan, String> {
    let one_at_a_time = state.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
    // A panic while building is a failed reload like any other (the running snapshot is
    // untouched: it is swapped only at the end), never a success on the dashboard.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        apply(state, &one_at_a_time)
    }))
    .unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        Err(format!("internal error while applying the config: {why}"))
    });
    let m = &state.metrics;
    if let Ok(mut last) = state.last_reload.lock() {
        *last = Some(super::store::LastReload {
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            trigger: trigger.to_owned(),
            result: if result.is_ok() { "applied" } else { "failed" },
            error: result.as_ref().err().cloned(),
        });
    }
    match &result {
        Ok(plan) => {
            m.config_reloads_total.with_label_values(&["success"]).inc();
            m.config_last_reload_successful.set(1);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            m.config_last_reload_success.set(now as i64);
            m.config_restart_required
                .set(i64::from(!plan.restart_required.is_empty()));
            let hash = state.snapshot().hash.clone();
            m.events.record(
                Event::new(
                    Kind::Reload,
                    Level::Info,
                    "applied",
                    format!("trigger: {trigger}"),
                )
                .message(format!("config reloaded ({hash}): {}", plan.summary())),
            );
            for c in &plan.restart_required {
                tracing::warn!(
                    trigger,
                    "not applied until restart: {}: {} -> {}",
                    c.key,
                    c.old,
                    c.new
                );
            }
        }
        Err(e) => {
            m.config_reloads_total.with_label_values(&["failure"]).inc();
            m.config_last_reload_successful.set(0);
            m.events.record(
                Event::new(Kind::Reload, Level::Error, "failed", e.clone()).message(format!(
                    "config reload ({trigger}) failed, kept the running config: {e}"
                )),
            );
        }
    }
    result
}

fn apply(state: &State, serial: &std::sync::MutexGuard<'_, ()>) -> Result<Plan, String> {
    let Some(path) = &state.config_path else {
        return Err(
            "this brace runs on the embedded demo config; there is no file to reload".into(),
        );
    };
    let loaded = config::load(path).map_err(|e| e.to_string())?;
    for w in loaded.config.warnings() {
        tracing::warn!("{w}");
    }
    let old = state.snapshot();
    let plan = Plan::between(&old.config, &loaded.config);

    let mut cfg = loaded.config;
    // What only a restart applies keeps its running value (`restart`).
    super::restart::carry_over(&old.config, &mut cfg);
    if cfg.cluster.is_none() {
        if let Some((name, _)) = cfg
            .rate_limits
            .iter()
            .find(|(_, l)| l.scope == crate::config::Scope::Global)
        {
            return Err(format!(
                "rate_limit.{name}.scope: \"global\" needs the [cluster] store, which is set up at start: restart brace to add it"
            ));
        }
    }

    // Certificates are built before anything changes: a pair that cannot be used fails the
    // reload and the listener goes on serving the old one.
    let certs = cfg
        .server
        .tls
        .iter()
        .map(crate::tls::load)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(log) = &state.log {
        log.apply(&cfg.log)?;
    }
    let next = Loaded {
        config: cfg,
        ..loaded
    };
    let snapshot = super::publish::publish(state, serial, (&next).into(), &old);
    for (t, loaded) in snapshot.config.server.tls.iter().zip(certs) {
        if let Some(l) = state.tls.iter().find(|l| l.listen == t.listen) {
            l.apply(loaded, &state.metrics);
        }
    }
    state.note_inputs();
    Ok(plan)
}

/// The background service behind two triggers: SIGHUP, and (with `[server] watch_config`) a
/// poll of the config file.
///
/// The watcher reads the file every [`WATCH_POLL`] and reloads once its content has changed and
/// then stayed the same for `SETTLE_POLLS` more polls (2 s): a file written in pieces is not
/// applied half-written unless its writer pauses longer than that (write to a temporary name
/// and rename, as the README says, to be safe whatever the pauses). An editor's
/// write-then-rename, or a burst of writes, causes one reload. Polling (rather than inotify) needs no extra dependency and
/// follows a file that is replaced, as with Kubernetes ConfigMap updates.
pub struct Reloader {
    pub state: Arc<State>,
}

/// The watcher's decision, one poll at a time: reload when the file's content differs from the
/// config in force, is the same as on the previous poll (the writer is done), and was not
/// tried already (a broken file is reported once, not every poll).
#[derive(Default)]
struct Debounce {
    /// The content hash seen on the last poll.
    seen: Option<String>,
    /// Polls in a row that saw `seen`, after the first.
    stable: u32,
    /// The content hash last reloaded from.
    tried: Option<String>,
}

impl Debounce {
    fn poll(&mut self, hash: String, in_force: &str) -> bool {
        if self.seen.as_deref() == Some(hash.as_str()) {
            self.stable += 1;
        } else {
            self.stable = 0;
        }
        self.seen = Some(hash.clone());
        let settled = self.stable >= SETTLE_POLLS;
        if settled && hash != in_force && self.tried.as_deref() != Some(hash.as_str()) {
            self.tried = Some(hash);
            return true;
        }
        false
    }
}

pub const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// Polls the content must stay the same for before it is applied (2 s at [`WATCH_POLL`]).
const SETTLE_POLLS: u32 = 8;

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Reloader {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP: {e}");
                None
            }
        };
        let mut tick = tokio::time::interval(WATCH_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut watch = Debounce::default();
        loop {
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hup_recv => {
                    let state = self.state.clone();
                    let _ = tokio::task::spawn_blocking(move || reload(&state, "SIGHUP")).await;
                }
                _ = tick.tick() => {
                    let snap = self.state.snapshot();
                    let (Some(path), true) = (&self.state.config_path, snap.config.server.watch_config) else {
                        continue;
                    };
                    let Some(now) = config::inputs_hash(path, &snap.config) else { continue };
                    let in_force = self.state.inputs_in_force();
                    if watch.poll(now, &in_force) {
                        let state = self.state.clone();
                        let _ = tokio::task::spawn_blocking(move || reload(&state, "file watch")).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Debounce;

    use super::SETTLE_POLLS;

    /// Feeds the hashes, each `(hash, polls)` seen for that many polls in a row; returns the
    /// polls (0-based) that reload.
    fn reloads(polls: &[(&str, u32)], in_force: &str) -> Vec<usize> {
        let mut d = Debounce::default();
        let seq: Vec<&str> = polls
            .iter()
            .flat_map(|(h, n)| std::iter::repeat_n(*h, *n as usize))
            .collect();
        (0..seq.len())
            .filter(|&i| d.poll(seq[i].to_owned(), in_force))
            .collect()
    }

    const S: u32 = SETTLE_POLLS;

    #[test]
    fn a_burst_of_writes_reloads_once_when_the_file_settles() {
        // v0 in force; writes v1, v2, v3 on successive polls, then it stays v3.
        let settled = 3 + S as usize;
        assert_eq!(
            reloads(&[("v0", 1), ("v1", 1), ("v2", 1), ("v3", S + 5)], "v0"),
            [settled]
        );
        // A file that never holds still is never read half-written.
        assert!(reloads(&[("a", 1), ("b", 1), ("a", 1), ("b", 1)], "v0").is_empty());
        // Unchanged content never reloads.
        assert!(reloads(&[("v0", 3 * S)], "v0").is_empty());
    }

    /// A file written in two pieces 0.8 s apart (about three polls): its first piece, even
    /// when it is a valid config, is never applied.
    #[test]
    fn a_file_written_in_pieces_is_applied_only_when_whole() {
        assert_eq!(
            reloads(&[("half", 3), ("whole", S + 1)], "v0"),
            [3 + S as usize]
        );
        assert_eq!(
            reloads(&[("half", S), ("whole", S + 1)], "v0"),
            [2 * S as usize]
        );
    }

    #[test]
    fn a_rejected_file_is_tried_once_until_it_changes() {
        // The reload of "bad" fails, so "v0" stays in force: not retried on every poll.
        assert_eq!(reloads(&[("bad", 3 * S)], "v0"), [S as usize]);
        assert_eq!(
            reloads(&[("bad", 2 * S), ("good", S + 1)], "v0"),
            [S as usize, 3 * S as usize]
        );
    }
}
