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
//!                                                    key) → upstream::admission (adaptive
//!                                                    limits: admit, queue, shed) →
//!                                                    upstream::pool::pick
//!          ─► proxy::hedge                           a slow first attempt's hedge (races
//!                                                    in pingora's proxy_hedge)
//!          ─► proxy::forward                         forwarding headers, target, Host
//!          ─► proxy::attempt (connect_failed, broke, response_header)
//!                                                    upstream::outcome → select::may_retry
//!          ─► proxy::forward::response               version, framing, brace's headers
//!          ─► proxy::finish                          error response; outcome → pool
//!                                                    (breaker, ejection, ewma), metrics,
//!                                                    access log
//! background: runtime::tasks (health checks, ejection ends), runtime::reload (SIGHUP, file
//!             watch), runtime::dns (DNS refresh), runtime::fleet (the [cluster] heartbeat
//!             and purge subscription), admin (its own listener, open through the drain);
//!             each acts on the whole state, so it lives in runtime and calls down
//! ```
//!
//! Modules (lower ones never import higher ones; `events`, `clock`, `host` and `path` import
//! no other part of brace, `config` only `host` and `path`, `metrics` only `events`):
//! - [`config`]: `file` (the TOML's serde shapes; `file::upstream` for the upstream tables),
//!   `model` (the typed `Config`, names ending in `Config`; `adaptive`, `hedge` and
//!   `resilience` hold the typed tables of their concern), `validate` (file → model, by
//!   section: `server`, `upstream`, `resilience`, `adaptive`, `route`, `hedge`), `units`
//!   (durations, sizes).
//! - [`metrics`]: the families, created and registered in one call (`reg`); [`label_set!`]
//!   declares a closed set of label values, `ByLabel` resolves a counter per value (`labels`);
//!   `RouteStats` (`route`). The handles the
//!   request path holds live with their owners (`upstream::stats`, `cache::stats`, `limit`).
//! - [`route`]: host and path → route. [`limit`]: rate limits (buckets, keys, `check`).
//! - [`upstream`]: `pool` (balancers, pick), `select` (backup, `max_in_flight`, hash key,
//!   `may_retry`), `backend` (earned state: health, ejection, breaker, in-flight count),
//!   `feedback` (what an attempt teaches the pool), `latency` (ewma), `concurrency` (the
//!   adaptive limit), `queue` / `admission` (waiting for room, shedding), `lag` (event-loop
//!   lag), `slow` (latency-relative outliers), `hedge` (hedge budget, time-to-answer
//!   percentiles), `breaker`, `health`, `retry` (budget, reasons, backoff), `outcome` (who
//!   is to blame), `peer` (the `HttpPeer`, plaintext or TLS), `dns` (resolving backends'
//!   names), `stats` (pool and backend metric handles; `forget_backend`).
//! - [`cache`]: `storage` (pingora-cache storage over moka; purge), `policy` (RFC 9111
//!   decisions over headers and the route's policy), `key` (cache key, variance, forwarded
//!   query), `stats`, `date`.
//! - [`runtime`]: `snapshot` (what one request needs, immutable), `build` (config + old
//!   snapshot → new, carrying earned state by identity), `publish` (the one way a snapshot
//!   goes live), `store` (the one `ArcSwap`, lifecycle flags), `reload` (SIGHUP, file
//!   watch), `plan` (what a reload changes), `restart` (the restart-only keys, declared
//!   once), `change`, `tasks` (the health-check loop), `dns` (the DNS refresh loop), `fleet`
//!   (the `[cluster]` service).
//! - [`cluster`]: the fleet's Redis store (global limits' buckets, purge messages, the
//!   heartbeat); it knows nothing above it.
//! - [`proxy`]: `impl ProxyHttp` as a table of contents (`mod.rs`), with `downstream`,
//!   `attempt`, `hedge`, `forward`, `finish`, `caching` (the cache phases' glue), `access`
//!   (access records), `request` (target and framing checks), `headers`, `respond` (brace's
//!   own responses) and `ctx` (per-request state).
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
//!   percentiles over the last seconds; `upstreams`: `/api/upstreams`' view types), [`logging`] (process log, non-blocking
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
pub mod canary;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod cors;
pub mod demo;
pub mod events;
pub mod host;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod otel;
pub mod path;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod upstream;
