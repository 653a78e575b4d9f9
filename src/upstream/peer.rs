//! The `HttpPeer` for one backend: plaintext, or TLS with its upstream's settings. The CA
//! list and the client certificate are parsed once, when the pool is built; a request only
//! clones `Arc`s into its peer.

use crate::config::{BackendAddr, Protocol, UpstreamTlsConfig};
use pingora::prelude::HttpPeer;
use pingora::protocols::ALPN;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

/// A pool's TLS settings, ready for peers.
pub struct PeerTls {
    /// The name to verify (and send as SNI unless it is an IP address), per backend.
    names: Vec<String>,
    verify: bool,
    ca: Option<Arc<[WrappedX509]>>,
    client: Option<Arc<CertKey>>,
    /// The trust settings pingora's own reuse hash leaves out (the CA list, the whole
    /// client chain, not just its serial numbers), hashed for `HttpPeer::group_key`.
    group: u64,
}

impl PeerTls {
    pub fn new(cfg: &UpstreamTlsConfig, backends: &[BackendAddr]) -> PeerTls {
        let names = backends
            .iter()
            .map(|b| {
                cfg.sni
                    .clone()
                    .or_else(|| b.host.clone())
                    // An IP address: rustls sends no SNI and checks the certificate's IPs.
                    .unwrap_or_else(|| b.addr.ip().to_string())
            })
            .collect();
        // Validation parsed every certificate as X.509, so `parse_x509` cannot fail here.
        let ca = cfg.ca.as_ref().map(|(_, ders)| {
            ders.iter()
                .map(|d| WrappedX509::new(d.clone(), parse_x509))
                .collect::<Vec<_>>()
                .into()
        });
        let client = cfg
            .client
            .as_ref()
            .map(|c| Arc::new(CertKey::new(c.chain.clone(), c.key.clone())));
        let mut h = std::hash::DefaultHasher::new();
        cfg.ca.as_ref().map(|(_, ders)| ders).hash(&mut h);
        cfg.client.as_ref().map(|c| &c.chain).hash(&mut h);
        cfg.verify.hash(&mut h);
        PeerTls {
            names,
            verify: cfg.verify,
            ca,
            client,
            group: h.finish(),
        }
    }
}

/// Concurrent requests brace puts on one HTTP/2 connection to a backend (servers commonly
/// allow 100 or more; pingora opens another connection past it).
const H2_STREAMS: usize = 100;

/// The peer for backend `idx` at `addr`.
///
/// A pooled connection is reused only by a peer with the same reuse hash. pingora's covers
/// the address, scheme, SNI, verification flags and the client certificate's serial
/// numbers; `group_key` adds what it leaves out (the trusted CA list, the client chain, the
/// ALPN offered), so two upstreams naming one address with different trust never share a
/// connection, in either order.
pub fn peer(tls: Option<&PeerTls>, protocol: Protocol, idx: usize, addr: SocketAddr) -> HttpPeer {
    let mut p = match tls {
        None => HttpPeer::new(addr, false, String::new()),
        Some(t) => HttpPeer::new(addr, true, t.names[idx].clone()),
    };
    // In plaintext, a minimum version of 2 is prior-knowledge h2c in pingora's connector.
    p.options.alpn = match protocol {
        Protocol::Http1 => ALPN::H1,
        Protocol::H2 => ALPN::H2,
        Protocol::H2OrHttp1 => ALPN::H2H1,
    };
    if protocol != Protocol::Http1 {
        p.options.max_h2_streams = H2_STREAMS;
    }
    p.group_key = protocol as u64;
    let Some(t) = tls else {
        return p;
    };
    p.group_key ^= t.group;
    p.options.verify_cert = t.verify;
    p.options.verify_hostname = t.verify;
    p.options.ca = t.ca.clone();
    p.client_cert_key = t.client.clone();
    p
}
