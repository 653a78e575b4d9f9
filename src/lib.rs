//! brace: a reverse proxy on pingora that keeps a backend standing when parts of it fail.
//!
//! ```text
//! brace.toml ─► config::file (serde) ─► config::Config (typed) ─► runtime::Snapshot
//!                                                                   │ one ArcSwap::store
//! request ─► new_ctx:          pin the snapshot (ctx.snapshot)
//!         ─► request_filter:   check request → route (404) → body limit (413)
//!         ─► upstream_peer:    pool.pick → backend
//!         ─► upstream filters: forwarding headers, strip_prefix, hop-by-hop
//!         ─► fail_to_proxy:    error → 400/413/502/503/504
//!         ─► logging:          outcome → metrics, access log
//! ```
//!
//! Modules: [`config`] (file → typed config), [`runtime`] (snapshot, build, store), [`route`]
//! (host/path matching), [`upstream`] (pools, outcomes), [`proxy`] (the pingora phases),
//! [`admin`] (metrics and health endpoints), [`metrics`], [`logging`], [`server`] (assembling
//! pingora), [`cli`], [`demo`].

pub mod admin;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod server;
pub mod upstream;
