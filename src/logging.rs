//! Process logs (stderr, at `log.level`) and the access log (one JSON object per request, to
//! stdout or a file), both through `tracing`. pingora's own `log` records join the process log.
//!
//! The access log never blocks a worker: records go through tracing-appender's non-blocking
//! writer, a bounded queue (`ACCESS_QUEUE_LINES`) drained by one thread. When the target
//! cannot keep up (a full pipe, a stalled disk), lines are dropped and counted
//! (`brace_access_log_dropped_lines_total`) rather than stalling requests, and a write stuck
//! for `STUCK_AFTER_MS` turns `/healthz` to 503. The process log is queued the same way
//! (`PROCESS_QUEUE_LINES`, its own thread): a stderr nobody reads drops lines, counted in
//! `brace_process_log_dropped_lines_total`, and never stops a worker thread mid-request.

use crate::config::{AccessLog, LogConfig, LogFormat};
use arc_swap::ArcSwap;
use std::io::LineWriter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::prelude::*;

/// The `tracing` target of access records.
pub const ACCESS_TARGET: &str = "brace::access";

/// Where access records go; swapped whole on reload.
enum AccessTarget {
    Off,
    Stdout,
    File(Mutex<LineWriter<std::fs::File>>),
}

/// Access records that may wait for the writer thread (about 3 MB of JSON lines); beyond it
/// they are dropped and counted.
const ACCESS_QUEUE_LINES: usize = 8192;
/// Process log lines queued for stderr.
const PROCESS_QUEUE_LINES: usize = 8192;
/// A single write taking longer than this means the target is stuck.
const STUCK_AFTER_MS: u64 = 5000;

/// Handles to change logging while running: the process log's level and the access log's
/// target. A reload applies both or neither.
pub struct LogControl {
    level: tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    access: Arc<ArcSwap<AccessTarget>>,
    dropped: ErrorCounter,
    /// When the writer thread started its current write (brace's clock); 0 when idle.
    write_started_ms: Arc<AtomicU64>,
    /// Flushes the queued records when taken and dropped (at exit).
    guard: Mutex<Option<WorkerGuard>>,
    /// The process log's queue: lines it dropped, and its flush at exit.
    process_dropped: ErrorCounter,
    process_guard: Mutex<Option<WorkerGuard>>,
}

fn filter(level: &str) -> Result<EnvFilter, String> {
    Ok(EnvFilter::try_new(level)
        .map_err(|e| format!("log.level: {e}"))?
        .add_directive(
            format!("{ACCESS_TARGET}=off")
                .parse()
                .expect("static directive"),
        )
        // pingora-cache warns once at start that no header-compression dictionary is set;
        // brace does not use one, so that warning says nothing to an operator.
        .add_directive(
            "pingora_cache::meta=error"
                .parse()
                .expect("static directive"),
        ))
}

fn target(a: &AccessLog) -> Result<AccessTarget, String> {
    Ok(match a {
        AccessLog::Off => AccessTarget::Off,
        AccessLog::Stdout => AccessTarget::Stdout,
        AccessLog::File(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("log.access_log: cannot open {}: {e}", path.display()))?;
            AccessTarget::File(Mutex::new(LineWriter::new(f)))
        }
    })
}

impl LogControl {
    /// Applies a new `[log]` section. Opens the new access log file first, so a failure
    /// changes nothing.
    pub fn apply(&self, log: &LogConfig) -> Result<(), String> {
        let new_target = target(&log.access_log)?;
        let new_filter = filter(&log.level)?;
        self.level
            .reload(new_filter)
            .map_err(|e| format!("log.level: {e}"))?;
        self.access.store(Arc::new(new_target));
        Ok(())
    }

    /// Access records dropped because the writer could not keep up.
    pub fn access_dropped(&self) -> u64 {
        self.dropped.dropped_lines() as u64
    }

    /// Process log lines dropped because stderr could not keep up.
    pub fn process_dropped(&self) -> u64 {
        self.process_dropped.dropped_lines() as u64
    }

    /// True while one write to the access log target has taken longer than 5 s.
    pub fn access_stuck(&self) -> bool {
        let started = self.write_started_ms.load(Ordering::Relaxed);
        started != 0 && crate::clock::now_ms().saturating_sub(started) > STUCK_AFTER_MS
    }

    /// Writes out the queued access records (bounded by the target's speed); at exit.
    pub fn flush(&self) {
        if let Ok(mut g) = self.guard.lock() {
            drop(g.take());
        }
        if let Ok(mut g) = self.process_guard.lock() {
            drop(g.take());
        }
    }
}

/// The writer thread's end: the current access target, with the start of each write noted.
struct AccessSink {
    target: Arc<ArcSwap<AccessTarget>>,
    write_started_ms: Arc<AtomicU64>,
}

impl std::io::Write for AccessSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_started_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
        let r = AccessLine(self.target.load_full()).write(buf);
        self.write_started_ms.store(0, Ordering::Relaxed);
        r
    }
    fn flush(&mut self) -> std::io::Result<()> {
        AccessLine(self.target.load_full()).flush()
    }
}

struct AccessLine(Arc<AccessTarget>);

impl std::io::Write for AccessLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &*self.0 {
            AccessTarget::Off => Ok(buf.len()),
            AccessTarget::Stdout => std::io::stdout().write(buf),
            AccessTarget::File(f) => f
                .lock()
                .map_err(|_| std::io::Error::other("access log lock poisoned"))?
                .write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &*self.0 {
            AccessTarget::Off => Ok(()),
            AccessTarget::Stdout => std::io::stdout().flush(),
            AccessTarget::File(f) => f
                .lock()
                .map_err(|_| std::io::Error::other("access log lock poisoned"))?
                .flush(),
        }
    }
}

/// Installs the subscribers. Fails when the access log file cannot be opened.
pub fn init(log: &LogConfig) -> Result<LogControl, String> {
    let (level, handle) = tracing_subscriber::reload::Layer::new(filter(&log.level)?);
    // Queued like the access log: a stderr nobody reads (a full pipe, a stuck collector)
    // drops lines, counted, instead of stopping the worker thread that logs.
    let (stderr, process_guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(PROCESS_QUEUE_LINES)
        .thread_name("brace-log")
        .finish(std::io::stderr());
    let process_dropped = stderr.error_counter();
    let lines = tracing_subscriber::fmt::layer().with_writer(stderr);
    let process = match log.format {
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => lines
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(level);
    let access = Arc::new(ArcSwap::from_pointee(target(&log.access_log)?));
    let write_started_ms = Arc::new(AtomicU64::new(0));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(ACCESS_QUEUE_LINES)
        .thread_name("brace-access-log")
        .finish(AccessSink {
            target: access.clone(),
            write_started_ms: write_started_ms.clone(),
        });
    let dropped = writer.error_counter();
    let access_layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_level(false)
        .with_writer(writer)
        .with_filter(Targets::new().with_target(ACCESS_TARGET, tracing::Level::INFO));
    // A second init (tests calling into the library twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(process)
        .with(access_layer)
        .try_init();
    Ok(LogControl {
        level: handle,
        access,
        dropped,
        write_started_ms,
        guard: Mutex::new(Some(guard)),
        process_dropped,
        process_guard: Mutex::new(Some(process_guard)),
    })
}
