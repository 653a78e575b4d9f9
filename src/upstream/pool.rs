//! A named pool of backends and the choice of one for a request.
//!
//! Selection is pingora-load-balancing's weighted round robin (`select_with`, the seam where
//! health, ejection and breakers will meet). Each backend carries its index into `backends`
//! in its `ext`, so the chosen backend's metric handles are found without a lookup.

use crate::config::Upstream as UpstreamConfig;
use crate::metrics::{BackendStats, Metrics};
use pingora::lb::discovery::Static;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::net::SocketAddr;

#[derive(Clone, Copy)]
struct BackendIdx(usize);

pub struct BackendState {
    pub addr: SocketAddr,
    /// `ip:port`, the `backend` label value.
    pub label: String,
    pub stats: BackendStats,
}

pub struct Pool {
    pub name: String,
    pub config: UpstreamConfig,
    pub backends: Vec<BackendState>,
    lb: LoadBalancer<RoundRobin>,
}

impl Pool {
    pub fn new(name: &str, config: &UpstreamConfig, metrics: &Metrics) -> Pool {
        let mut set = BTreeSet::new();
        let mut backends = Vec::with_capacity(config.backends.len());
        for (i, b) in config.backends.iter().enumerate() {
            let mut be = Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(b.addr),
                weight: b.weight.get() as usize,
                ext: Default::default(),
            };
            be.ext.insert(BackendIdx(i));
            set.insert(be);
            let label = b.addr.to_string();
            backends.push(BackendState {
                addr: b.addr,
                stats: metrics.backend_stats(name, &label),
                label,
            });
        }
        let lb = LoadBalancer::from_backends(Backends::new(Static::new(set)));
        // Static discovery never waits; `now_or_never` runs it to completion here, off the
        // request path, as pingora's own `try_from_iter` does.
        use futures::FutureExt;
        let _ = lb.update().now_or_never();
        Pool {
            name: name.to_owned(),
            config: config.clone(),
            backends,
            lb,
        }
    }

    /// Chooses a backend for one request; `None` when none is available.
    pub fn pick(&self) -> Option<usize> {
        self.lb
            .select_with(b"", self.backends.len() * 2 + 1, |_, healthy| healthy)
            .and_then(|b| b.ext.get::<BackendIdx>().map(|i| i.0))
    }
}
