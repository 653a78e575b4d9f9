//! Per-request context: the pinned snapshot and what the phases learn along the way.

use crate::cache::{CacheCtx, Store};
use crate::config::RouteCacheConfig;
use crate::route::Route;
use crate::runtime::Snapshot;
use crate::upstream::backend::Backend;
use crate::upstream::outcome::Outcome;
use crate::upstream::pool::Pool;
use prometheus::IntGauge;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Ctx {
    /// Pinned once in `new_ctx`; every phase of this request reads this snapshot.
    pub snapshot: Arc<Snapshot>,
    pub start: Instant,
    pub route: Option<Arc<Route>>,
    pub client_ip: Option<IpAddr>,
    /// The request's normalised host, derived once (`proxy::host`) before routing.
    pub host: crate::host::Host,
    /// The normalised path when the upstream's copy of the target keeps the client's bytes
    /// (`path_normalization = "forward_as_is"`) and they differ; policies read this one.
    pub norm_path: Option<Box<str>>,
    /// True when the peer is a trusted proxy (its X-Forwarded-* headers are kept).
    pub peer_trusted: bool,
    /// Kept as a header value: sent upstream, returned, and logged without further copies.
    pub request_id: http::HeaderValue,
    /// Where the request went upstream: its attempts and what came back.
    pub upstream: Upstream,
    /// `RateLimit` header for the response (`rate_limit_headers = true`): the tightest limit.
    pub rate_limit_header: Option<(u32, http::HeaderValue)>,
    /// What the cache phases learn (on a caching route).
    pub cache: CacheCtx,
    /// brace refused the request before routing (it is counted under `route="-"`).
    pub refused: bool,
    pub body_bytes: u64,
    /// What is known of the client connection, carried from request to request on it.
    pub connection: Option<Arc<Conn>>,
    /// This request's spans, when `[tracing]` is set (boxed: most configs have none).
    pub trace: Option<Box<crate::otel::RequestTrace>>,
    pub _in_flight: GaugeGuard,
}

impl Ctx {
    pub fn new(snapshot: Arc<Snapshot>, in_flight: &IntGauge) -> Ctx {
        Ctx {
            snapshot,
            start: Instant::now(),
            route: None,
            client_ip: None,
            host: crate::host::Host::default(),
            norm_path: None,
            peer_trusted: false,
            request_id: http::HeaderValue::from_static(""),
            upstream: Upstream::default(),
            rate_limit_header: None,
            cache: CacheCtx::default(),
            refused: false,
            body_bytes: 0,
            connection: None,
            trace: None,
            _in_flight: GaugeGuard::new(in_flight),
        }
    }

    /// The route's cache policy and the store, when this request's route caches.
    pub fn cache_policy(&self) -> Option<(&RouteCacheConfig, &Store)> {
        let policy = self.route.as_ref()?.cache.as_ref()?;
        let store = self.snapshot.cache.as_deref()?;
        Some((policy, store))
    }

    /// The pool this request is sent to: its canary's or its route's (`Upstream::target`).
    pub fn target(&self) -> Option<&Arc<Pool>> {
        self.upstream
            .target
            .as_ref()
            .or_else(|| self.route.as_ref().map(|r| &r.pool))
    }

    pub fn outcome(&self, error: Option<&pingora::Error>) -> Outcome {
        let o = Outcome::classify(self.upstream.status, error);
        if self.upstream.upgraded {
            return o.after_upgrade();
        }
        if self.upstream.backpressure && matches!(o, Outcome::Http5xx | Outcome::Success) {
            return Outcome::Backpressure;
        }
        match (o, self.upstream.grpc_status, &self.upstream.pool) {
            (Outcome::Success, Some(code), Some(pool))
                if pool.config.grpc_failure.contains(&code) =>
            {
                Outcome::GrpcError
            }
            _ => o,
        }
    }
}

/// What a request's trip upstream learns: the pool and attempt in progress (and a hedge
/// racing it), the backends tried, why it was shed or when to come back, and what the
/// backend answered.
#[derive(Default)]
pub struct Upstream {
    /// The pool of the current attempt: the route's, or its backup.
    pub pool: Option<Arc<Pool>>,
    /// The attempt in progress; dropping it ends the backend's in-flight count.
    pub attempt: AttemptState,
    /// A hedge racing `attempt` (`proxy::hedge`), until one of them answers.
    pub hedge: Option<Box<Attempt>>,
    /// Backends already tried by this request (a retry goes elsewhere when it can). Inline:
    /// most requests try one backend and never allocate for this.
    pub tried: smallvec::SmallVec<[SocketAddr; 2]>,
    /// Attempts started (1 = the first).
    pub tries: u32,
    /// Shed because every backend was at its adaptive limit (`upstream::admission`): the 503
    /// keeps the connection, and the request is logged at DEBUG (the pool's event says it).
    pub shed: Option<crate::upstream::queue::ShedReason>,
    /// The pool this request goes to: the route's, or its canary's (`canary`); set at the
    /// first attempt. Retries stay in it (or its backup).
    pub target: Option<Arc<Pool>>,
    /// The copy of this request for the route's mirror (`mirror`), when it is copied.
    pub mirror: Option<Box<crate::mirror::Copy>>,
    /// The canary's side this request took, on a route with a canary.
    pub side: Option<crate::canary::window::Side>,
    /// The backend answered with a `Retry-After` brace honoured (`upstream::pause`).
    pub backpressure: bool,
    /// For a 503 because no backend is available: when to come back.
    pub retry_after: Option<Duration>,
    /// The request's place under the pool's `max_in_flight`, held until the request ends.
    pub pool_slot: Option<crate::upstream::select::PoolSlot>,
    /// The backend's status (the final one; a 5xx being retried is cleared).
    pub status: Option<u16>,
    /// The `grpc-status` the backend ended a gRPC call with (in its trailers, or in the
    /// header of a trailers-only answer).
    pub grpc_status: Option<u8>,
    /// The backend answered 101: the connection is now a tunnel (WebSocket).
    pub upgraded: bool,
}

/// Where the current attempt stands.
#[derive(Default)]
pub enum AttemptState {
    /// None started yet, or the last one's outcome is recorded.
    #[default]
    Idle,
    /// Under way on a backend.
    Running(Attempt),
    /// The backend's status is being retried: its outcome was recorded and the retry decided
    /// in `upstream_response_filter`, so `error_while_proxy` passes the error on untouched.
    StatusRetry,
}

impl AttemptState {
    /// The attempt under way, if any.
    pub fn running(&self) -> Option<&Attempt> {
        match self {
            AttemptState::Running(a) => Some(a),
            _ => None,
        }
    }

    /// Ends the attempt under way (if any), leaving `Idle`.
    pub fn take(&mut self) -> Option<Attempt> {
        match std::mem::replace(self, AttemptState::Idle) {
            AttemptState::Running(a) => Some(a),
            _ => None,
        }
    }
}

/// One try on one backend. Counts as in flight on that backend until dropped; then room
/// has appeared, and the pool's first waiter (if any) is woken.
pub struct Attempt {
    pub idx: usize,
    pub backend: Arc<Backend>,
    pub start: Instant,
    /// It became a tunnel (101): no longer under the limit, and not a latency sample.
    pub tunnel: bool,
    /// When the request header went to the backend, and how long its answer's header took
    /// from then: the backend's latency for the adaptive limit, without brace's connect and
    /// its own work on the response.
    pub sent: Option<Instant>,
    pub answered: Option<std::time::Duration>,
    queue: Arc<crate::upstream::queue::Queue>,
}

impl Attempt {
    /// An attempt on backend `idx` of `pool` starting at `start`, `now` on brace's clock
    /// (`clock::ms_at(start)`).
    pub fn new(pool: &Pool, idx: usize, start: Instant, now: u64) -> Attempt {
        let backend = pool.backends[idx].clone();
        backend.started(now);
        Attempt {
            idx,
            backend,
            start,
            tunnel: false,
            sent: None,
            answered: None,
            queue: pool.queue().clone(),
        }
    }

    /// The exchange became a tunnel (101): it leaves the limit, making room.
    pub fn tunnelled(&mut self) {
        if !self.tunnel {
            self.tunnel = true;
            self.backend.tunnelled();
            self.queue.release();
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.backend.ended(!self.tunnel);
        if !self.tunnel {
            self.queue.release();
        }
    }
}

/// A client connection: counted in `brace_connections_active` while open, and its peer
/// address rendered once as a header value rather than on every request.
pub struct Conn {
    /// The peer's IP address (none for a Unix socket).
    pub peer: Option<IpAddr>,
    /// `peer` as an `X-Forwarded-For` value.
    pub peer_value: Option<http::HeaderValue>,
    /// The local port the client connected to, as an `X-Forwarded-Port` value.
    pub local_port: Option<http::HeaderValue>,
    /// The listener's scheme and port, for host normalisation.
    pub listener: crate::host::Listener,
}

impl Conn {
    pub fn new(peer: Option<IpAddr>, local_port: Option<u16>, tls: bool) -> Conn {
        let peer_value = peer.map(|ip| {
            http::HeaderValue::from_str(&ip.to_string()).expect("an IP address is a header value")
        });
        Conn {
            peer,
            peer_value,
            local_port: local_port.map(http::HeaderValue::from),
            listener: crate::host::Listener {
                tls,
                port: local_port,
            },
        }
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

impl Ctx {
    /// The request id as text, for bodies and the access log.
    pub fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or("")
    }
}
