//! Process logs (stderr, at `log.level`) and the access log (one JSON object per request, to
//! stdout or a file), both through `tracing`. pingora's own `log` records join the process log.

use crate::config::{AccessLog, Log};
use crate::proxy::ctx::Ctx;
use arc_swap::ArcSwap;
use pingora::proxy::Session;
use std::io::LineWriter;
use std::sync::{Arc, Mutex};
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

/// Handles to change logging while running: the process log's level and the access log's
/// target. A reload applies both or neither.
pub struct LogControl {
    level: tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    access: Arc<ArcSwap<AccessTarget>>,
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
    pub fn apply(&self, log: &Log) -> Result<(), String> {
        let new_target = target(&log.access_log)?;
        let new_filter = filter(&log.level)?;
        self.level
            .reload(new_filter)
            .map_err(|e| format!("log.level: {e}"))?;
        self.access.store(Arc::new(new_target));
        Ok(())
    }
}

/// `MakeWriter` over the current access target.
#[derive(Clone)]
struct AccessWriter(Arc<ArcSwap<AccessTarget>>);

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

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AccessWriter {
    type Writer = AccessLine;
    fn make_writer(&'a self) -> AccessLine {
        AccessLine(self.0.load_full())
    }
}

/// Installs the subscribers. Fails when the access log file cannot be opened.
pub fn init(log: &Log) -> Result<LogControl, String> {
    let (level, handle) = tracing_subscriber::reload::Layer::new(filter(&log.level)?);
    let process = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(level);
    let access = Arc::new(ArcSwap::from_pointee(target(&log.access_log)?));
    let access_layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_level(false)
        .with_writer(AccessWriter(access.clone()))
        .with_filter(Targets::new().with_target(ACCESS_TARGET, tracing::Level::INFO));
    // A second init (tests calling into the library twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(process)
        .with(access_layer)
        .try_init();
    Ok(LogControl {
        level: handle,
        access,
    })
}

/// The access record of a request refused before routing (its header was malformed, too
/// large or too slow, or its method CONNECT); `status` 0 when nothing could be sent.
pub fn refused(session: &pingora::protocols::http::ServerSession, status: u16, reason: &str) {
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or_else(|| "-".to_string(), |a| a.ip().to_canonical().to_string());
    // Only a CONNECT refusal has a parsed request to name.
    let (method, path) = if status == 405 {
        let req = session.req_header();
        (req.method.as_str(), req.uri.to_string())
    } else {
        ("-", "-".to_string())
    };
    tracing::info!(
        target: ACCESS_TARGET,
        client = %client,
        method = method,
        path = %path,
        status = status,
        route = crate::runtime::snapshot::REFUSED,
        refused = reason,
    );
}

/// Emits one access record.
pub fn access(session: &Session, ctx: &Ctx, status: u16) {
    let req = session.req_header();
    let host = req
        .uri
        .host()
        .or_else(|| req.headers.get("host").and_then(|h| h.to_str().ok()))
        .unwrap_or("-");
    let path = req.uri.path_and_query().map_or("-", |p| p.as_str());
    let client = ctx
        .client_ip
        .map_or_else(|| "-".to_string(), |ip| ip.to_string());
    tracing::info!(
        target: ACCESS_TARGET,
        request_id = ctx.request_id_str(),
        client = %client,
        method = %req.method,
        host = %host,
        path = %path,
        status = status,
        route = ctx.route.as_ref().map_or("-", |r| r.name.as_str()),
        upstream = ctx.pool.as_ref().map_or("-", |p| p.name.as_str()),
        backend = %ctx.tried.last().map_or_else(|| "-".to_string(), |a| a.to_string()),
        attempts = ctx.tries,
        duration_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
        bytes_sent = session.body_bytes_sent(),
        bytes_received = ctx.body_bytes,
    );
}
