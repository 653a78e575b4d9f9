//! OpenTelemetry traces (`[tracing]`): one server span per request, a client span per upstream
//! attempt, W3C Trace Context in and out, exported over OTLP/HTTP (protobuf).
//!
//! ```text
//! request_filter  ─► Tracing::request: extract traceparent/tracestate, server span
//! upstream_peer   ─► RequestTrace::attempt: a child span per backend tried
//! upstream_request ─► RequestTrace::inject: the attempt's traceparent goes upstream
//! finish_attempt  ─► RequestTrace::attempt_ended: outcome; a retry adds its reason
//! logging         ─► RequestTrace::finish: status, route, cache status; spans end
//! span end        ─► Queue::on_end: try_send into a bounded queue (full: dropped, counted)
//! export thread   ─► batches of up to 512 or every second ─► opentelemetry-otlp exporter
//! ```
//!
//! The SDK's `BatchSpanProcessor` does the same batching but keeps its count of dropped spans
//! to itself (it logs it once, at shutdown); brace needs that count as a metric, so `Queue`
//! is a small processor of its own in front of the SDK's OTLP exporter. Ending a span never
//! waits: the queue is a `sync_channel` fed with `try_send`, and only the export thread talks
//! to the collector. A collector that is down or slow costs dropped spans, nothing else.
//!
//! Without `[tracing]` none of this exists: a request's `Ctx` holds `None`.

use crate::config::TracingConfig;
use crate::metrics::Metrics;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter as _, SpanProcessor,
};
use pingora::http::RequestHeader;
use prometheus::IntCounter;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The longest value of an attribute a client chooses (path, `User-Agent`), in bytes: with
/// it a queued span has a bounded size, so the queue (bounded in spans) is bounded in bytes
/// too, whatever clients send while the collector is away. Longer values are cut, marked
/// with a trailing `…`.
const MAX_CLIENT_ATTRIBUTE: usize = 256;

/// `v`, cut to [`MAX_CLIENT_ATTRIBUTE`] bytes on a character boundary.
fn clip(v: &str) -> String {
    if v.len() <= MAX_CLIENT_ATTRIBUTE {
        return v.to_owned();
    }
    let mut end = MAX_CLIENT_ATTRIBUTE;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &v[..end])
}

/// Spans per export request, at most (and at most the queue's size).
const BATCH: usize = 512;
/// The longest a span waits in the queue before it is sent.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The process's tracer: built at start from `[tracing]` (restart-only).
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    propagator: TraceContextPropagator,
}

impl Tracing {
    /// Starts the export thread. Fails only when the exporter cannot be built.
    pub fn new(cfg: &TracingConfig, metrics: &Metrics) -> Result<Arc<Tracing>, String> {
        use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(cfg.endpoint.clone())
            .with_timeout(cfg.timeout)
            .with_headers(cfg.headers.clone().into_iter().collect())
            .build()
            .map_err(|e| format!("tracing: cannot build the OTLP exporter: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // The provider hands its resource to processors; this one hands it to the exporter.
        let mut exporter = exporter;
        exporter.set_resource(&resource);
        let queue = Queue::start(exporter, cfg.queue_size, metrics);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        Ok(Arc::new(Tracing {
            tracer: provider.tracer("brace"),
            provider,
            propagator: TraceContextPropagator::new(),
        }))
    }

    /// Sends what is queued, waiting at most `timeout` (at exit).
    pub fn shutdown(&self, timeout: Duration) {
        let _ = self.provider.shutdown_with_timeout(timeout);
    }

    /// The server span of a request that arrived at `started`, continuing the client's trace
    /// when it sent a valid `traceparent` (an invalid one starts a new trace).
    pub fn request(self: &Arc<Self>, req: &RequestHeader, started: SystemTime) -> RequestTrace {
        let parent = self.propagator.extract(&Headers(req));
        let mut span = self.tracer.build_with_context(
            self.tracer
                .span_builder(method_name(&req.method))
                .with_kind(SpanKind::Server)
                .with_start_time(started),
            &parent,
        );
        // Attributes only for a span that is exported: an unsampled request allocates none.
        if span.is_recording() {
            span.set_attribute(KeyValue::new(
                "http.request.method",
                method_name(&req.method),
            ));
            span.set_attribute(KeyValue::new("url.path", clip(req.uri.path())));
            span.set_attribute(KeyValue::new("url.scheme", "http"));
            if let Some(ua) = req
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
            {
                span.set_attribute(KeyValue::new("user_agent.original", clip(ua)));
            }
        }
        RequestTrace {
            tracing: self.clone(),
            method: req.method.clone(),
            server: parent.with_span(span),
            attempt: None,
            ended: None,
        }
    }
}

/// A method's name without an allocation for the standard ones.
fn method_name(m: &http::Method) -> std::borrow::Cow<'static, str> {
    use http::Method;
    let known = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];
    const NAMES: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
    match known.iter().position(|k| k == m) {
        Some(i) => NAMES[i].into(),
        None => m.as_str().to_owned().into(),
    }
}

/// The spans of one request.
pub struct RequestTrace {
    tracing: Arc<Tracing>,
    method: http::Method,
    /// The server span, in a context so attempts can be its children.
    server: Context,
    attempt: Option<Span>,
    /// The last attempt, ended but not yet sent: a retry decided after its end adds its
    /// reason. Sent when the next attempt starts or the request ends.
    ended: Option<(Span, SystemTime)>,
}

impl RequestTrace {
    /// The trace id, for the access log (32 hex digits).
    pub fn trace_id(&self) -> String {
        self.server.span().span_context().trace_id().to_string()
    }

    /// Whether this request's spans are exported.
    pub fn sampled(&self) -> bool {
        self.server.span().span_context().is_sampled()
    }

    /// An attempt on `backend` of `upstream` starts (`n` = 1 for the first).
    pub fn attempt(&mut self, upstream: &str, backend: SocketAddr, n: u32) {
        self.send_ended();
        if !self.sampled() {
            // Nothing would be exported; the backend gets the server span's context.
            return;
        }
        let method = method_name(&self.method);
        let t = &self.tracing.tracer;
        let span = t.build_with_context(
            t.span_builder(format!("{} {upstream}", self.method))
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("server.address", backend.ip().to_string()),
                    KeyValue::new("server.port", i64::from(backend.port())),
                    KeyValue::new("brace.upstream", upstream.to_owned()),
                    KeyValue::new("brace.backend", backend.to_string()),
                    KeyValue::new("brace.attempt", i64::from(n)),
                    KeyValue::new("http.request.resend_count", i64::from(n - 1)),
                ]),
            &self.server,
        );
        self.attempt = Some(span);
    }

    /// Replaces the request's `traceparent`/`tracestate` with this hop's: the attempt's span
    /// (or the server span) is the app's parent.
    pub fn inject(&self, req: &mut RequestHeader) {
        static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
        static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
        req.remove_header(&TRACEPARENT);
        req.remove_header(&TRACESTATE);
        let cx = match &self.attempt {
            Some(a) => Context::new().with_remote_span_context(a.span_context().clone()),
            None => self.server.clone(),
        };
        self.tracing
            .propagator
            .inject_context(&cx, &mut HeadersMut(req));
    }

    /// The attempt under way ended with `outcome` (and the backend's status, if any).
    pub fn attempt_ended(&mut self, outcome: &'static str, status: Option<u16>, failed: bool) {
        let Some(mut span) = self.attempt.take() else {
            return;
        };
        span.set_attribute(KeyValue::new("brace.outcome", outcome));
        if let Some(s) = status {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(s)));
        }
        if failed {
            span.set_attribute(KeyValue::new("error.type", outcome));
            span.set_status(Status::error(outcome));
        }
        self.send_ended();
        self.ended = Some((span, SystemTime::now()));
    }

    /// The current attempt (or, once it has ended, the last one) is retried because of
    /// `reason`.
    pub fn retried(&mut self, reason: &'static str) {
        let span = match (&mut self.attempt, &mut self.ended) {
            (Some(a), _) => a,
            (None, Some((e, _))) => e,
            (None, None) => return,
        };
        span.set_attribute(KeyValue::new("brace.retry_reason", reason));
    }

    /// An event on the server span (cache status, rate-limit decision, breaker rejection);
    /// `attrs` is called only when the span is exported.
    pub fn event(&self, name: &'static str, attrs: impl FnOnce() -> Vec<KeyValue>) {
        let span = self.server.span();
        if span.is_recording() {
            span.add_event(name, attrs());
        }
    }

    /// The request is answered: the server span gets its route and status, and ends.
    /// `host` is the request's host name as routing saw it (`proxy::host`), empty when none.
    pub fn finish(mut self, route: Option<&str>, host: &str, status: u16, client: Option<IpAddr>) {
        if let Some(mut a) = self.attempt.take() {
            a.end();
        }
        self.send_ended();
        let span = self.server.span();
        if !span.is_recording() {
            return; // ends it on drop
        }
        if let Some(ip) = client {
            // After trusted_proxies: the client as brace believes it to be.
            span.set_attribute(KeyValue::new("client.address", ip.to_string()));
        }
        if !host.is_empty() {
            // `server.address` without the port, as the semantic conventions have it.
            span.set_attribute(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(r) = route {
            span.set_attribute(KeyValue::new("brace.route", r.to_owned()));
            span.update_name(format!("{} {r}", self.method));
        }
        if status > 0 {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        // A server span is an error for 5xx only; 4xx is the client's (semantic conventions).
        if status >= 500 || status == 0 {
            let what = if status == 0 {
                "no response".to_string()
            } else {
                status.to_string()
            };
            span.set_attribute(KeyValue::new("error.type", what.clone()));
            span.set_status(Status::error(what));
        }
        span.end();
    }

    fn send_ended(&mut self) {
        if let Some((mut span, at)) = self.ended.take() {
            span.end_with_timestamp(at);
        }
    }
}

impl Drop for RequestTrace {
    /// A request that ends without `finish` (its connection dropped mid-way) still sends its
    /// spans.
    fn drop(&mut self) {
        if let Some(mut a) = self.attempt.take() {
            a.end();
        }
        self.send_ended();
        self.server.span().end();
    }
}

struct Headers<'a>(&'a RequestHeader);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.headers.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.headers.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut RequestHeader);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) {
            let _ = self.0.insert_header(name, value);
        }
    }
}

enum Msg {
    Span(Box<SpanData>),
    /// Send what is queued, then answer.
    Flush(SyncSender<()>),
}

/// A bounded queue in front of the exporter; see the module comment for why it is brace's.
struct Queue {
    tx: SyncSender<Msg>,
    dropped_full: IntCounter,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("brace::otel::Queue")
    }
}

impl Queue {
    fn start(exporter: opentelemetry_otlp::SpanExporter, size: usize, metrics: &Metrics) -> Queue {
        let (tx, rx) = sync_channel(size);
        let exported = metrics.tracing_spans_exported_total.clone();
        let failed = metrics
            .tracing_spans_dropped_total
            .with_label_values(&["export_failed"]);
        // A batch is at most the queue's size, so at most twice that many spans wait.
        let batch = size.min(BATCH);
        // If the thread cannot start, the queue's receiver is gone and every span is
        // counted as dropped.
        let _ = std::thread::Builder::new()
            .name("brace-otlp".into())
            .spawn(move || export_loop(rx, batch, exporter, exported, failed));
        Queue {
            tx,
            dropped_full: metrics
                .tracing_spans_dropped_total
                .with_label_values(&["queue_full"]),
        }
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _: &mut Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Span(Box::new(span)))
        {
            self.dropped_full.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let end = Instant::now() + timeout;
        let (ack_tx, ack_rx) = sync_channel(1);
        let mut msg = Msg::Flush(ack_tx);
        // The queue may be full: retry until the deadline.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < end => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return Ok(()),
            }
        }
        let _ = ack_rx.recv_timeout(end.saturating_duration_since(Instant::now()));
        Ok(())
    }
}

/// Batches spans and exports them until the queue's sender is gone.
fn export_loop(
    rx: Receiver<Msg>,
    max_batch: usize,
    exporter: opentelemetry_otlp::SpanExporter,
    exported: IntCounter,
    failed: IntCounter,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(max_batch);
    let mut last_warning: Option<Instant> = None;
    let mut send = |batch: &mut Vec<SpanData>| {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        match futures::executor::block_on(exporter.export(std::mem::take(batch))) {
            Ok(()) => exported.inc_by(n),
            Err(e) => {
                failed.inc_by(n);
                // Once a minute at most: a collector that is down would otherwise log a line
                // a second.
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!("tracing: export to the collector failed, {n} spans dropped (counted in brace_tracing_spans_dropped_total): {e}");
                }
            }
        }
    };
    let mut deadline = Instant::now() + FLUSH_EVERY;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Msg::Span(s)) => {
                batch.push(*s);
                if batch.len() >= max_batch {
                    send(&mut batch);
                }
            }
            Ok(Msg::Flush(ack)) => {
                send(&mut batch);
                let _ = ack.try_send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                send(&mut batch);
                deadline = Instant::now() + FLUSH_EVERY;
            }
            Err(RecvTimeoutError::Disconnected) => {
                send(&mut batch);
                return;
            }
        }
    }
}
