//! A real OTLP/HTTP traces endpoint on 127.0.0.1 that decodes what brace exports with the
//! `opentelemetry-proto` types, and brace started with `[tracing]` pointing at it.

use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// What the collector received: spans with their resource's `service.name`, and the
/// headers of each export request.
#[derive(Default)]
pub struct Received {
    pub spans: Vec<(String, Span)>,
    pub headers: Vec<String>,
}

/// An OTLP/HTTP traces endpoint: answers 200 to each `POST`, after decoding its body as an
/// `ExportTraceServiceRequest`.
pub struct Collector {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Received>>,
}

impl Collector {
    pub fn start() -> Collector {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Received::default()));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || serve(conn, &g));
            }
        });
        Collector { addr, got }
    }

    pub fn spans(&self) -> Vec<Span> {
        let g = self.got.lock().unwrap();
        g.spans.iter().map(|(_, s)| s.clone()).collect()
    }

    /// Waits until the collector holds `n` spans of trace `trace_id` (hex).
    pub fn trace(&self, trace_id: &str, n: usize) -> Vec<Span> {
        let mut found = Vec::new();
        wait_for(
            &format!("{n} spans of trace {trace_id}"),
            Duration::from_secs(15),
            || {
                found = self
                    .spans()
                    .into_iter()
                    .filter(|s| hex(&s.trace_id) == trace_id)
                    .collect();
                found.len() >= n
            },
        );
        assert_eq!(found.len(), n, "{found:#?}");
        found
    }
}

fn serve(conn: TcpStream, got: &Mutex<Received>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let req = ExportTraceServiceRequest::decode(body.as_slice())
            .expect("the body is an OTLP ExportTraceServiceRequest");
        {
            let mut g = got.lock().unwrap();
            g.headers.push(head.clone());
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| attr(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for s in ss.spans {
                        g.spans.push((service.clone(), s));
                    }
                }
            }
        }
        let _ = w.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A string or integer attribute, as text.
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

/// Asserts that `span` has each attribute with the value given.
pub fn assert_attrs(span: &Span, want: &[(&str, &str)]) {
    for (k, v) in want {
        assert_eq!(
            attr(&span.attributes, k).as_deref(),
            Some(*v),
            "{k} of {span:#?}"
        );
    }
}

pub fn tracing_config(collector: &str, extra: &str, body: &str, port: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [log]\nlevel = \"warn\"\naccess_log = \"off\"\n\
         [tracing]\notlp_endpoint = \"{collector}\"\nservice_name = \"edge\"\n{extra}\n\n{body}"
    )
}

pub fn start(collector: &str, extra: &str, body: &str) -> Brace {
    let (port, admin) = (free_port(), free_port());
    Brace::start_raw(
        &tracing_config(collector, extra, body, port, admin),
        port,
        admin,
    )
}
