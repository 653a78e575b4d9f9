//! The process's shared state: the one `ArcSwap` holding the current snapshot, the metrics,
//! and the lifecycle flags the admin endpoints report.

use super::Snapshot;
use crate::logging::LogControl;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How the last reload ended, for `/api/status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LastReload {
    pub at_unix_ms: u64,
    /// `SIGHUP`, `api`, `file watch`.
    pub trigger: String,
    /// `applied` or `failed`.
    pub result: &'static str,
    /// Why it failed; the running config was kept.
    pub error: Option<String>,
}

pub struct State {
    /// The only `ArcSwap` in brace: a reload stores a whole new snapshot here in one step.
    pub store: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    /// The file a reload reads; `None` for the embedded demo config.
    pub config_path: Option<PathBuf>,
    /// Live logging settings; `None` when logging was not set up by brace (benches, tests).
    pub log: Option<LogControl>,
    /// The tracer, when `[tracing]` is set (restart-only, so it lives here, not in a snapshot).
    pub tracing: Option<Arc<crate::otel::Tracing>>,
    /// Serialises reloads (rare; never taken on the request path).
    pub reload_lock: Mutex<()>,
    /// When this process started, for the status page's uptime.
    pub started: SystemTime,
    /// The last reload tried and how it ended; `None` until one is tried.
    pub last_reload: Mutex<Option<LastReload>>,
    /// The TLS listeners, whose certificates a reload replaces (bound at start, so they live
    /// here, not in a snapshot).
    pub tls: Vec<Arc<crate::tls::Listener>>,
    /// The fleet's shared store and the DNS answers, which snapshot builds draw on.
    pub env: super::Env,
    /// The open client connections' idle handles, for `max_connections`.
    pub connections: Arc<crate::connections::Registry>,
    /// [`crate::config::inputs_hash`] of what is in force: the file watcher reloads when the
    /// files differ from it.
    inputs: Mutex<String>,
    ready: AtomicBool,
    draining: AtomicBool,
}

impl State {
    pub fn new(
        snapshot: Snapshot,
        metrics: Arc<Metrics>,
        config_path: Option<PathBuf>,
        log: Option<LogControl>,
    ) -> State {
        metrics.set_config_hash(&snapshot.hash);
        State {
            store: ArcSwap::from_pointee(snapshot),
            metrics,
            config_path,
            log,
            tracing: None,
            reload_lock: Mutex::new(()),
            started: SystemTime::now(),
            last_reload: Mutex::new(None),
            tls: Vec::new(),
            env: Default::default(),
            connections: Default::default(),
            inputs: Mutex::new(String::new()),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.store.load_full()
    }

    /// Ready = listeners accept connections and the process is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }
    /// Notes the config file and the files it names as in force (at start and after each
    /// successful reload).
    pub fn note_inputs(&self) {
        let Some(path) = &self.config_path else {
            return;
        };
        if let Some(h) = crate::config::inputs_hash(path, &self.snapshot().config) {
            *self.inputs.lock().unwrap_or_else(|e| e.into_inner()) = h;
        }
    }

    pub fn inputs_in_force(&self) -> String {
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
