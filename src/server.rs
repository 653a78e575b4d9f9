//! Assembles the pingora `Server`: the proxy service on the configured listeners, the admin
//! service, the lifecycle service (readiness, drain on shutdown) and, for the demo, the demo
//! app servers. Then runs it until a signal ends it.
//!
//! Signals: SIGTERM and SIGINT drain (stop accepting, finish in-flight requests within
//! `grace_period`, exit 0); a second SIGINT exits at once; SIGQUIT hands the listening sockets
//! to a new process started with `--upgrade` (pingora's graceful upgrade).

use crate::config::Loaded;
use crate::demo;
use crate::metrics::Metrics;
use crate::proxy::BraceProxy;
use crate::runtime::{build::build, State};
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

pub struct RunOptions {
    /// Take the listening sockets over from a running brace (pingora's `--upgrade`).
    pub upgrade: bool,
    /// Also start the demo app servers.
    pub demo: bool,
    /// Where the upgrade socket lives.
    pub upgrade_sock: String,
    /// The config file, for reloads (`None` for the embedded demo config).
    pub config_path: Option<std::path::PathBuf>,
}

/// Starts brace and never returns on success (the process exits when it is told to stop).
pub fn run(loaded: Loaded, opts: RunOptions) -> Result<(), String> {
    let config = &loaded.config;
    let log = crate::logging::init(&config.log)?;
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    file_limit(config.server.max_connections);

    let mut addrs: Vec<SocketAddr> = config.server.listen.clone();
    addrs.extend(config.server.tls.iter().map(|t| t.listen));
    if !opts.upgrade {
        let mut all = addrs.clone();
        if opts.demo {
            all.extend(
                demo::BACKENDS
                    .iter()
                    .filter_map(|b| b.addr.parse::<SocketAddr>().ok()),
            );
        }
        for a in all {
            // pingora panics in a service thread when a bind fails; check first and say so.
            std::net::TcpListener::bind(a).map_err(|e| format!("cannot listen on {a}: {e}"))?;
        }
    }

    let metrics = Arc::new(Metrics::new());
    let tracing = config
        .tracing
        .as_ref()
        .map(|t| crate::otel::Tracing::new(t, &metrics))
        .transpose()?;
    let tls_listeners = config
        .server
        .tls
        .iter()
        .map(|t| {
            let loaded = crate::tls::load(t)?;
            Ok(crate::tls::Listener::new(t.listen, loaded, &metrics))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let cluster = config
        .cluster
        .as_ref()
        .map(|c| crate::cluster::Cluster::new(c, &metrics))
        .transpose()?;
    let env = crate::runtime::Env {
        cluster: cluster.clone(),
        dns: Default::default(),
    };
    crate::upstream::dns::resolve_at_start(config, &env.dns, Duration::from_secs(5));
    let mut state = State::new(
        build((&loaded).into(), &metrics, &env, None),
        metrics,
        opts.config_path.clone(),
        Some(log),
    );
    state.tracing = tracing;
    state.tls = tls_listeners;
    state.env = env;
    let state = Arc::new(state);
    state.note_inputs();

    let mut conf = ServerConf {
        threads: config.server.threads,
        // One single-threaded runtime per worker thread, each connection staying on the thread
        // that accepted it (nginx's worker model). Measured against tokio's work-stealing
        // runtime on a bare pingora proxy: ~15% less CPU per request (benches/README.md).
        work_stealing: false,
        // brace's own drain (the lifecycle service below) waits for in-flight requests up to
        // the `grace_period` in force, logs what it cut and exits; pingora's grace is only an
        // outer bound behind it (an hour more, since a reload may lengthen brace's). With both
        // equal, pingora's shutdown won the race and the cut requests went unreported.
        grace_period_seconds: Some(config.server.grace_period.as_secs().max(1) + 3600),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: config
            .upstreams
            .values()
            .map(|u| u.keepalive)
            .sum::<usize>()
            .max(1),
        // Idle upstream connections kept by each worker thread, no lock or task per connection
        // (pingora patch 11); `upstream_keepalive_pool_size` is then per thread.
        upstream_keepalive_per_thread: true,
        upgrade_sock: opts.upgrade_sock.clone(),
        ..ServerConf::default()
    };
    conf.pid_file = format!("{}.pid", opts.upgrade_sock);
    let opt = Opt {
        upgrade: opts.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        BraceProxy {
            state: state.clone(),
        },
        "brace proxy",
    );
    if let Some(app) = proxy.app_logic_mut() {
        let mut o = pingora::apps::HttpServerOptions::default();
        o.header_timeout = Some(config.server.client_header_timeout);
        // An HTTP/2 connection with no open stream is idle: closed after the keep-alive
        // timeout (the header timeout when keep-alive is off, since h2 has no per-request
        // close), so one that never opens a stream cannot hold a connection slot.
        let keepalive = config.server.client_keepalive_timeout;
        o.h2_idle_timeout = Some(if keepalive.is_zero() {
            config.server.client_header_timeout
        } else {
            keepalive
        });
        o.max_request_header_size = Some(config.server.max_request_header_size as usize);
        o.h2c = config.server.h2c;
        o.no_header_case = !config.server.preserve_header_case;
        app.server_options = Some(o);
    }
    for a in &config.server.listen {
        proxy.add_tcp(&a.to_string());
    }
    for l in &state.tls {
        let settings = l
            .settings()
            .map_err(|e| format!("server.tls {}: {e}", l.listen))?;
        proxy.add_tls_with_settings(&l.listen.to_string(), None, settings);
    }
    server.add_service(proxy);

    // The admin listener is brace's own, not a pingora listening service: pingora closes
    // those at SIGTERM, and `/readyz` must go on answering `503 draining` while requests
    // drain. SO_REUSEPORT lets the next process bind it during a graceful upgrade.
    let admin_listener = crate::admin::bind(config.admin.listen)?;
    server.add_service(background_service(
        "brace admin",
        crate::admin::AdminService {
            state: state.clone(),
            listener: std::sync::Mutex::new(Some(admin_listener)),
        },
    ));

    if opts.demo {
        for b in &demo::BACKENDS {
            let mut svc = Service::new(format!("demo {}", b.name), demo::DemoApp(b));
            svc.add_tcp(b.addr);
            server.add_service(svc);
        }
    }

    server.add_service(background_service(
        "health checks",
        crate::runtime::tasks::HealthService {
            state: state.clone(),
        },
    ));
    // Always: a reload may add a canary.
    server.add_service(background_service(
        "canary",
        crate::runtime::canary::Service {
            state: state.clone(),
        },
    ));
    if let Some(cluster) = cluster {
        server.add_service(background_service(
            "cluster",
            crate::runtime::fleet::Service {
                state: state.clone(),
                cluster,
            },
        ));
    }
    if config.upstreams.values().any(|u| u.dns.is_some()) {
        server.add_service(background_service(
            "dns",
            crate::runtime::dns::Service {
                state: state.clone(),
            },
        ));
    }
    server.add_service(background_service(
        "config reloader",
        crate::runtime::reload::Reloader {
            state: state.clone(),
        },
    ));
    server.add_service(background_service(
        "lifecycle",
        Lifecycle {
            state,
            listeners: addrs,
        },
    ));

    tracing::info!(
        config = %loaded.origin,
        hash = %loaded.hash,
        listen = ?config.server.listen,
        admin = %config.admin.listen,
        "brace starting"
    );
    exit_when_a_listener_fails();
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals),
    });
    std::process::exit(0)
}

/// Raises the open-file limit to its hard limit (as Go's runtime does), and warns when even
/// that leaves too little room for `max_connections` client connections plus upstream
/// connections and files: past the limit, accept fails for every listener.
fn file_limit(max_connections: u64) {
    // Raises the soft limit to the hard one (rlimit's safe wrapper of getrlimit/setrlimit).
    let Ok(current) = rlimit::increase_nofile_limit(u64::MAX) else {
        return;
    };
    // Each proxied request may hold an upstream connection too; keep some for files.
    let needed = max_connections.saturating_mul(2).saturating_add(256);
    if current < needed {
        tracing::warn!(
            "open-file limit {current} is below what max_connections = {max_connections} may need ({needed}); lower max_connections or raise the limit (ulimit -n, LimitNOFILE=)"
        );
    }
}

/// pingora binds its listeners in service threads and, when a bind fails, panics there while
/// the rest of the process runs on without that listener (and `/readyz` could say ready).
/// The address was free when brace checked it at start, so another process took it since;
/// brace stops with an error instead, as nginx does when a listen fails.
fn exit_when_a_listener_fails() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("Failed to build listeners") {
            eprintln!("error: cannot listen on a configured address (taken since brace checked it): {msg}");
            std::process::exit(1);
        }
        previous(info);
    }));
}

/// SIGTERM and SIGINT both drain; SIGQUIT is pingora's graceful upgrade.
struct Signals;

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        let sig = tokio::select! {
            _ = quit.recv() => return ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("{sig}: draining; send SIGINT again to stop at once");
        tokio::spawn(async move {
            int.recv().await;
            tracing::warn!("second SIGINT: stopping without waiting for requests");
            std::process::exit(130);
        });
        ShutdownSignal::GracefulTerminate
    }
}

/// Marks the process ready once its listeners accept connections, and on shutdown waits for
/// in-flight requests (at most `grace`) before exiting.
///
/// pingora's own graceful shutdown always sleeps the whole grace period; brace exits as soon
/// as the last request has finished, as nginx does.
struct Lifecycle {
    state: Arc<State>,
    listeners: Vec<SocketAddr>,
}

/// How often the drain loop looks at the in-flight count.
const DRAIN_POLL: Duration = Duration::from_millis(20);

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for a in &self.listeners {
            while tokio::net::TcpStream::connect(a).await.is_err() {
                if Instant::now() > deadline {
                    tracing::error!("listener {a} did not come up within 10s");
                    break;
                }
                tokio::time::sleep(DRAIN_POLL).await;
            }
        }
        // A pool's first round of health checks finishes before brace says it is ready.
        let first_round = self
            .state
            .snapshot()
            .pools
            .values()
            .filter_map(|p| p.config.health_check.as_ref().map(|h| h.timeout))
            .max()
            .unwrap_or_default();
        let deadline = Instant::now() + first_round * 2 + Duration::from_millis(500);
        while !crate::upstream::health::first_round_done(self.state.snapshot().pools.values())
            && Instant::now() < deadline
        {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        // Logged first, so whoever sees /readyz answer 200 finds the line already written.
        tracing::info!("brace ready");
        self.state.set_ready();

        let _ = shutdown.changed().await;
        self.state.set_draining();
        // The grace period in force now: a reload may have changed it.
        let deadline = Instant::now() + self.state.snapshot().config.server.grace_period;
        let in_flight = &self.state.metrics.requests_in_flight;
        while in_flight.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        match in_flight.get() {
            0 => tracing::info!("drained; exiting"),
            n => tracing::warn!("grace period over with {n} requests in flight; exiting"),
        }
        if let Some(t) = &self.state.tracing {
            t.shutdown(Duration::from_secs(1));
        }
        if let Some(log) = &self.state.log {
            log.flush();
        }
        std::process::exit(0);
    }
}
