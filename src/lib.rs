//! brace: a reverse proxy on pingora that keeps a backend standing when parts of it fail.
//!
//! ```text
//! brace.toml ─► config::file (serde shapes) ─► config::Config (typed, validated)
//!            ─► runtime::build ─► runtime::Snapshot ─► one ArcSwap::store (runtime::store)
//!
//! accept   ─► proxy::downstream::admit_connection   max_connections
//! request  ─► new_ctx                                pin the snapshot once
//!          ─► proxy::downstream::admit_request       identity, target, Host, framing,
//!                                                    route::Router, limit::check, size
//!          ─► cache::policy                          pingora-cache phases (hit ⇒ done)
//!          ─► proxy::attempt::peer                   upstream::select (pool, backup, hash
//!                                                    key) → upstream::pool::pick
//!          ─► proxy::forward                         forwarding headers, target, Host
//!          ─► proxy::attempt (connect_failed, broke, response_header)
//!                                                    upstream::outcome → upstream::retry
//!          ─► proxy::forward::response               version, framing, brace's headers
//!          ─► proxy::finish                          error response; outcome → pool
//!                                                    (breaker, ejection, ewma), metrics,
//!                                                    access log
//! background: upstream::health (checks, ejection ends), runtime::reload (SIGHUP, file
//!             watch), admin (its own listener, open through the drain)
//! ```
//!
//! Modules:
//! - [`config`]: `file` (the TOML's serde shapes; `file::upstream` for the upstream tables),
//!   `model` (the typed `Config`), `validate` (file → model, by section: `server`,
//!   `upstream`, `route`), `units` (durations, sizes).
//! - [`runtime`]: `snapshot` (what one request needs, immutable), `build` (config + old
//!   snapshot → new, reusing unchanged parts), `store` (the one `ArcSwap`, lifecycle flags),
//!   `reload`, `plan` (what a reload changes), `tasks` (the health-check loop).
//! - [`route`]: host and path → route. [`limit`]: rate limits (buckets, keys, `check`).
//! - [`upstream`]: `pool` (balancers, pick, outcome recording), `select` (backup, hash key),
//!   `backend` (earned state), `latency` (ewma), `breaker`, `health`, `retry` (budget,
//!   `may_retry`, backoff), `outcome` (who is to blame).
//! - [`cache`]: `storage` (pingora-cache storage over moka), `policy` (RFC 9111 decisions),
//!   `key` (cache key, variance, forwarded query), `date`.
//! - [`proxy`]: `impl ProxyHttp` as a table of contents (`mod.rs`), with `downstream`,
//!   `attempt`, `forward`, `finish`, `request` (target and framing checks), `headers`,
//!   `respond` (brace's own responses) and `ctx` (per-request state).
//! - [`admin`] (metrics, health, readiness, API), [`metrics`] (families; `handles` for the
//!   request path's pre-resolved handles), [`logging`] (process log,
//!   non-blocking access log), [`server`] (assembling pingora), [`cli`], [`demo`], [`clock`].

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
