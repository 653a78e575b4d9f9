//! Process logs (stderr, at `log.level`) and the access log (one JSON object per request, to
//! stdout or a file), both through `tracing`. pingora's own `log` records join the process log.

use crate::config::{AccessLog, Log};
use crate::proxy::ctx::Ctx;
use pingora::proxy::Session;
use std::io::LineWriter;
use std::sync::Mutex;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::prelude::*;

/// The `tracing` target of access records.
pub const ACCESS_TARGET: &str = "brace::access";

/// Installs the subscribers. Fails when the access log file cannot be opened.
pub fn init(log: &Log) -> Result<(), String> {
    let filter = EnvFilter::try_new(&log.level)
        .map_err(|e| format!("log.level: {e}"))?
        .add_directive(
            format!("{ACCESS_TARGET}=off")
                .parse()
                .expect("static directive"),
        );
    let process = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let access_filter = Targets::new().with_target(ACCESS_TARGET, tracing::Level::INFO);
    let access = match &log.access_log {
        AccessLog::Off => None,
        AccessLog::Stdout => Some(
            json_layer()
                .with_writer(std::io::stdout)
                .with_filter(access_filter)
                .boxed(),
        ),
        AccessLog::File(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("log.access_log: cannot open {}: {e}", path.display()))?;
            Some(
                json_layer()
                    .with_writer(Mutex::new(LineWriter::new(f)))
                    .with_filter(access_filter)
                    .boxed(),
            )
        }
    };
    // A second init (tests calling into the library twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(process)
        .with(access)
        .try_init();
    Ok(())
}

fn json_layer<S>() -> tracing_subscriber::fmt::Layer<
    S,
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_level(false)
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
        request_id = %ctx.request_id,
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
