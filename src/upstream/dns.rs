//! Backends found by DNS: an upstream with `resolve` (or `srv`) has its host-name backends
//! looked up while brace runs, every address becoming a backend.
//!
//! [`Resolved`] holds the last good answer per upstream and name; the snapshot build
//! (`runtime::build`) adds those addresses to the pool's configured ones, and a [`Follower`]
//! per name (started by `runtime::dns`) looks it up again every `resolve` (sooner when the
//! record's TTL ends sooner). When an answer changes, `runtime::dns` publishes a new
//! snapshot of the running config: a backend whose address stays keeps its earned
//! state (health, ejections, breaker, latency) as on any reload, a new address starts with
//! the pool's slow start, and an address that disappeared gets no new requests while the
//! requests already sent to it finish (they hold the snapshot they started with). A failed
//! lookup keeps the last good answer and is counted; a name that never resolved leaves its
//! pool without those backends (requests get 503 while no backend is left).
//!
//! Lookups use hickory-resolver: the system's configuration (`/etc/resolv.conf`,
//! `/etc/hosts`) or the upstream's `resolver`.

use crate::config::{BackendAddr, DnsConfig};
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What is looked up: a host name for an upstream's `host:port` backend, or its SRV name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Host {
        host: String,
        port: u16,
        weight: u32,
    },
    Srv(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Host { host, port, .. } => write!(f, "{host}:{port}"),
            Source::Srv(name) => write!(f, "SRV {name}"),
        }
    }
}

/// The sources of an upstream's DNS config.
pub fn sources(cfg: &DnsConfig) -> Vec<Source> {
    let mut v: Vec<Source> = cfg
        .names
        .iter()
        .map(|n| Source::Host {
            host: n.host.clone(),
            port: n.port,
            weight: n.weight.get(),
        })
        .collect();
    v.extend(cfg.srv.iter().cloned().map(Source::Srv));
    v
}

/// The last good answer for each (upstream, source).
#[derive(Default)]
pub struct Resolved {
    answers: Mutex<BTreeMap<(String, Source), Vec<BackendAddr>>>,
}

impl Resolved {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, Source), Vec<BackendAddr>>> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses `upstream`'s DNS backends have now, in source order, without repeats
    /// and without the addresses in `except` (its configured backends).
    pub fn backends(
        &self,
        upstream: &str,
        cfg: &DnsConfig,
        except: &[BackendAddr],
    ) -> Vec<BackendAddr> {
        let answers = self.lock();
        let mut out: Vec<BackendAddr> = Vec::new();
        for s in sources(cfg) {
            for b in answers.get(&(upstream.to_owned(), s)).into_iter().flatten() {
                if !out.iter().chain(except).any(|o| o.addr == b.addr) {
                    out.push(b.clone());
                }
            }
        }
        out
    }

    /// Records an answer; true when it differs from the last.
    pub fn set(&self, upstream: &str, source: &Source, backends: Vec<BackendAddr>) -> bool {
        let mut answers = self.lock();
        let key = (upstream.to_owned(), source.clone());
        if answers.get(&key) == Some(&backends) {
            return false;
        }
        answers.insert(key, backends);
        true
    }

    /// Forgets answers for upstreams and sources no longer configured.
    pub fn retain(&self, live: &[(String, Source)]) {
        self.lock().retain(|k, _| live.contains(k));
    }
}

pub fn resolver(server: Option<SocketAddr>, every: Duration) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match server {
        None => TokioResolver::builder(provider).map_err(|e| e.to_string())?,
        Some(a) => {
            let mut ns = NameServerConfig::udp_and_tcp(a.ip());
            for c in &mut ns.connections {
                c.port = a.port();
            }
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                provider,
            );
            b.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
            b
        }
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    // Answers are asked for again every `every` at the latest; never cache them for longer.
    opts.positive_max_ttl = Some(every);
    opts.negative_max_ttl = Some(Duration::from_secs(1));
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder.build().map_err(|e| e.to_string())
}

/// A failed lookup in words. hickory reports the last query it made, so a name that does not
/// exist at all reads "no AAAA records" after its A query failed the same way: NXDOMAIN is
/// said as such.
fn why(e: &hickory_resolver::net::NetError) -> String {
    if e.is_nx_domain() {
        "no such name (NXDOMAIN)".into()
    } else if e.is_no_records_found() {
        "the name has no addresses".into()
    } else {
        e.to_string()
    }
}

/// Looks one source up: its backends and until when the answer holds.
async fn lookup(r: &TokioResolver, s: &Source) -> Result<(Vec<BackendAddr>, Instant), String> {
    let fqdn = |h: &str| format!("{}.", h.trim_end_matches('.'));
    let ips = |host: &str, port: u16, weight: u32| {
        let host = host.to_owned();
        async move {
            let found = r
                .lookup_ip(fqdn(&host))
                .await
                .map_err(|e| format!("{host}: {}", why(&e)))?;
            let until = found.valid_until();
            let mut v: Vec<BackendAddr> = found
                .iter()
                .map(|ip| BackendAddr {
                    addr: SocketAddr::new(ip, port),
                    weight: NonZeroU32::new(weight.max(1)).expect("at least 1"),
                    host: Some(host.clone()),
                })
                .collect();
            v.sort_by_key(|b| b.addr);
            v.dedup_by_key(|b| b.addr);
            Ok::<_, String>((v, until))
        }
    };
    match s {
        Source::Host { host, port, weight } => ips(host, *port, *weight).await,
        Source::Srv(name) => {
            let found = r
                .srv_lookup(fqdn(name))
                .await
                .map_err(|e| format!("SRV {name}: {}", why(&e)))?;
            let mut until = found.valid_until();
            let mut out = Vec::new();
            // RFC 2782: the lowest priority is used; weights share its load.
            let records: Vec<_> = found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::SRV(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            let best = records.iter().map(|s| s.priority).min();
            for srv in records.iter().filter(|s| Some(s.priority) == best) {
                let target = srv.target.to_string();
                let (v, u) = ips(
                    target.trim_end_matches('.'),
                    srv.port,
                    u32::from(srv.weight).clamp(1, 1000),
                )
                .await?;
                until = until.min(u);
                out.extend(v);
            }
            out.sort_by_key(|b| b.addr);
            out.dedup_by_key(|b| b.addr);
            Ok((out, until))
        }
    }
}

/// How long one lookup may take (the resolver's own timeout is 2 s and it tries twice);
/// past it the lookup counts as failed and the last answer is kept.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What one follower task follows: an upstream's source, through one resolver.
pub type Key = (String, Source, Option<SocketAddr>, Duration);

/// Follows one source: looks it up when due, records the answer, and says when it changed.
pub struct Follower {
    pub resolver: TokioResolver,
    pub name: String,
    pub source: Source,
    pub every: Duration,
    pub dns: Arc<Resolved>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub changed: Arc<tokio::sync::Notify>,
}

impl Follower {
    pub async fn run(self) {
        let (name, s) = (&self.name, &self.source);
        let mut failing = 0u32;
        loop {
            let now = Instant::now();
            let result = tokio::time::timeout(LOOKUP_TIMEOUT, lookup(&self.resolver, s))
                .await
                .unwrap_or_else(|_| Err(format!("{s}: no answer in {LOOKUP_TIMEOUT:?}")));
            let m = &self.metrics;
            let next = match result {
                Ok((backends, until)) if !backends.is_empty() => {
                    m.dns_lookups_total.with_label_values(&[name, "ok"]).inc();
                    failing = 0;
                    let addrs: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
                    if self.dns.set(name, s, backends) {
                        tracing::info!(upstream = %name, "DNS {s}: {}", addrs.join(", "));
                        self.changed.notify_one();
                    }
                    until
                        .saturating_duration_since(now)
                        .clamp(Duration::from_secs(1), self.every)
                }
                result => {
                    let why = match result {
                        Ok(_) => format!("{s}: no addresses"),
                        Err(e) => e,
                    };
                    m.dns_lookups_total
                        .with_label_values(&[name, "failed"])
                        .inc();
                    failing += 1;
                    if failing == 1 {
                        tracing::warn!(upstream = %name, "DNS lookup failed ({why}); keeping the last answer");
                    }
                    self.every.min(Duration::from_secs(5))
                }
            };
            // Due again `next` after this lookup started, however long it took.
            tokio::time::sleep_until((now + next).into()).await;
        }
    }
}

/// Looks every DNS source of `config` up once, all at once, within `deadline`, before the
/// first snapshot is built (so a pool starts with its backends). Sources that do not answer
/// in time are left to the service.
pub fn resolve_at_start(config: &crate::config::Config, resolved: &Resolved, deadline: Duration) {
    let work: Vec<(String, DnsConfig)> = config
        .upstreams
        .iter()
        .filter_map(|(n, u)| u.dns.clone().map(|d| (n.clone(), d)))
        .collect();
    if work.is_empty() {
        return;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let mut lookups = tokio::task::JoinSet::new();
        for (name, cfg) in &work {
            let Ok(r) = resolver(cfg.resolver, cfg.every) else { continue };
            for s in sources(cfg) {
                let (r, name) = (r.clone(), name.clone());
                lookups.spawn(async move {
                    let found = lookup(&r, &s).await;
                    (name, s, found)
                });
            }
        }
        let _ = tokio::time::timeout(deadline, async {
            while let Some(Ok((name, s, found))) = lookups.join_next().await {
                match found {
                    Ok((b, _)) if !b.is_empty() => {
                        resolved.set(&name, &s, b);
                    }
                    Ok(_) => tracing::warn!(upstream = %name, "DNS {s}: no addresses yet"),
                    Err(e) => tracing::warn!(upstream = %name, "DNS lookup failed at start ({e}); retrying"),
                }
            }
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(addr: &str, host: &str) -> BackendAddr {
        BackendAddr {
            addr: addr.parse().unwrap(),
            weight: NonZeroU32::new(1).unwrap(),
            host: Some(host.into()),
        }
    }

    #[test]
    fn answers_are_kept_per_upstream_and_name_without_repeats() {
        let r = Resolved::default();
        let name = |h: &str| crate::config::DnsName {
            host: h.into(),
            port: 80,
            weight: NonZeroU32::new(1).unwrap(),
        };
        let cfg = DnsConfig {
            names: vec![name("a.test"), name("b.test")],
            srv: None,
            every: Duration::from_secs(1),
            resolver: None,
        };
        let src = sources(&cfg);
        assert!(r.set(
            "u",
            &src[0],
            vec![b("10.0.0.1:80", "a.test"), b("10.0.0.2:80", "a.test")]
        ));
        assert!(!r.set(
            "u",
            &src[0],
            vec![b("10.0.0.1:80", "a.test"), b("10.0.0.2:80", "a.test")]
        ));
        // b.test shares an address with a.test, and one with the configured backends.
        r.set(
            "u",
            &src[1],
            vec![
                b("10.0.0.2:80", "b.test"),
                b("10.0.0.3:80", "b.test"),
                b("10.0.0.9:80", "b.test"),
            ],
        );
        let configured = [b("10.0.0.9:80", "static")];
        let got: Vec<String> = r
            .backends("u", &cfg, &configured)
            .iter()
            .map(|x| x.addr.to_string())
            .collect();
        assert_eq!(got, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        // Another upstream naming the same host has its own answer (none yet).
        assert!(r.backends("v", &cfg, &[]).is_empty());
        // A name dropped from the config is forgotten.
        r.retain(&[("u".to_string(), src[1].clone())]);
        assert_eq!(r.backends("u", &cfg, &[]).len(), 3);
        r.retain(&[]);
        assert!(r.backends("u", &cfg, &[]).is_empty());
    }
}
