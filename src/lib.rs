//! brace: a reverse proxy on pingora that keeps a backend standing when parts of it fail.
//!
//! ```text
//! brace.toml ─► config::file (serde shapes) ─► config::Config (typed, validated)
//!            ─► runtime::build ─► runtime::Snapshot ─► one ArcSwap::store (runtime::store)
//!
//! accept   ─► proxy::downstream::admit_connection   max_connections
//!          ─► tls (handshake)                        certificate by SNI; client certificate
//! request  ─► new_ctx                                pin the snapshot once
//!          ─► proxy::downstream::admit_request       otel span; identity, host (host),
//!                                                    target (path), framing,
//!                                                    route::Router, access (403),
//!                                                    limit::check, access (401, 429),
//!                                                    size
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
//! Modules (lower ones never import higher ones; `events`, `clock`, `host` and `path` import
//! no other part of brace, `config` only `host` and `path`, `metrics` only `events`):
//! - [`config`]: `file` (the TOML's serde shapes; `file::upstream` for the upstream tables),
//!   `model` (the typed `Config`, names ending in `Config`), `validate` (file → model, by
//!   section: `server`, `upstream`, `route`), `units` (durations, sizes).
//! - [`metrics`]: the families, created and registered in one call; [`label_set!`] declares
//!   a closed set of label values, `ByLabel` resolves a counter per value. The handles the
//!   request path holds live with their owners (`upstream::stats`, `cache::stats`, `limit`).
//! - [`route`]: host and path → route. [`limit`]: rate limits (buckets, keys, `check`).
//! - [`upstream`]: `pool` (balancers, pick, outcome recording), `select` (backup, admission,
//!   hash key), `backend` (earned state: health, ejection, breaker), `latency` (ewma),
//!   `breaker`, `health`, `retry` (budget, `may_retry`, backoff), `outcome` (who is to
//!   blame), `peer` (the `HttpPeer`, plaintext or TLS), `stats` (pool and backend metric
//!   handles; `forget_backend`).
//! - [`cache`]: `storage` (pingora-cache storage over moka; purge), `policy` (RFC 9111
//!   decisions over headers and the route's policy), `key` (cache key, variance, forwarded
//!   query), `stats`, `date`.
//! - [`runtime`]: `snapshot` (what one request needs, immutable), `build` (config + old
//!   snapshot → new, carrying earned state by identity), `store` (the one `ArcSwap`,
//!   lifecycle flags), `reload` (SIGHUP, file watch), `plan` (what a reload changes),
//!   `tasks` (the health-check loop).
//! - [`proxy`]: `impl ProxyHttp` as a table of contents (`mod.rs`), with `downstream`,
//!   `attempt`, `forward`, `finish`, `caching` (the cache phases' glue), `access` (access
//!   records), `request` (target and framing checks), `headers`, `respond` (brace's own
//!   responses) and `ctx` (per-request state).
//! - [`host`]: the request's host, derived once (HTTP/2 `:authority`, HTTP/1 `Host`) and
//!   normalised; [`path`]: a request path's normal form (also checked against route prefixes
//!   at load); [`connections`]: the open client connections' idle handles, so that at
//!   `max_connections` the one idle longest makes room.
//! - [`events`]: transitions an operator acts on, logged as structured events and kept in a
//!   bounded ring for `/api/events`.
//! - [`access`]: per-route `allow`/`deny` networks and `basic_auth` (htpasswd, bcrypt/argon2).
//! - [`tls`]: client-facing TLS listeners: certificates chosen by SNI and replaced by a
//!   reload, client-certificate verdicts attached to the connection.
//! - [`otel`]: OpenTelemetry spans per request and attempt, W3C trace context, OTLP export
//!   behind a bounded queue.
//! - [`admin`] (status page, metrics, health, readiness, API; `status`: rates and
//!   percentiles over the last seconds), [`logging`] (process log, non-blocking
//!   access log), [`server`] (assembling pingora), [`cli`], [`demo`], [`clock`].
//!
//! Where this differs from `STYLE.md`'s sketch: balancers live in `upstream::pool` and
//! outlier ejection in `upstream::backend` (each is a few dozen lines beside the state it
//! reads); purge is part of `cache::storage`; `config::file` is a directory.

// The unsafe code brace has is in `main.rs` (the allocator shim and mimalloc's option, each
// block with its SAFETY comment); the library has none.
#![forbid(unsafe_code)]
// A panic on the request path is a dropped request: `src` says what it expects instead.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod access;
pub mod admin;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod demo;
pub mod events;
pub mod host;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod otel;
pub mod path;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod upstream;
