//! Per-request context: the pinned snapshot and what the phases learn along the way.

use crate::route::Route;
use crate::runtime::Snapshot;
use crate::upstream::outcome::Outcome;
use prometheus::IntGauge;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct Ctx {
    /// Pinned once in `new_ctx`; every phase of this request reads this snapshot.
    pub snapshot: Arc<Snapshot>,
    pub start: Instant,
    pub route: Option<Arc<Route>>,
    pub client_ip: Option<IpAddr>,
    /// True when the peer is a trusted proxy (its X-Forwarded-* headers are kept).
    pub peer_trusted: bool,
    pub request_id: String,
    /// Index of the chosen backend in `route.pool.backends`.
    pub backend: Option<usize>,
    pub upstream_start: Option<Instant>,
    pub upstream_status: Option<u16>,
    pub body_bytes: u64,
    pub connection: Option<Arc<GaugeGuard>>,
    pub _in_flight: GaugeGuard,
}

impl Ctx {
    pub fn new(snapshot: Arc<Snapshot>, in_flight: &IntGauge) -> Ctx {
        Ctx {
            snapshot,
            start: Instant::now(),
            route: None,
            client_ip: None,
            peer_trusted: false,
            request_id: String::new(),
            backend: None,
            upstream_start: None,
            upstream_status: None,
            body_bytes: 0,
            connection: None,
            _in_flight: GaugeGuard::new(in_flight),
        }
    }

    pub fn outcome(&self, error: Option<&pingora::Error>) -> Outcome {
        Outcome::classify(self.upstream_status, error)
    }
}

/// Increments a gauge now and decrements it when dropped: in-flight requests, and open client
/// connections (carried from request to request on a keep-alive connection).
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn new(g: &IntGauge) -> GaugeGuard {
        g.inc();
        GaugeGuard(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
