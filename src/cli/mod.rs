//! The command line: `run` (default), `check`, `drain`/`undrain`, `demo`, `--version`.

mod admin;
mod drain;

use crate::config::{self, Loaded};
use crate::server::{self, RunOptions};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "brace",
    version,
    about = "A reverse proxy that keeps a backend standing when parts of it fail",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Start the proxy (the default when no subcommand is given).
    Run(RunArgs),
    /// Load and fully validate a config file without starting; exit 1 on any error. With
    /// --against, also print what it would change.
    Check {
        /// The config file.
        #[arg(short = 'c', long = "config", default_value = "/etc/brace/brace.toml")]
        config: PathBuf,
        /// Compare with this config: a file, `running` to ask a running brace's admin API, or
        /// `fleet` to compare with every live instance sharing the config's `[cluster]` store.
        #[arg(long)]
        against: Option<String>,
        /// Admin address of the running brace (default: the new config's admin.listen).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Start brace on the embedded demo config with three demo app servers on loopback.
    Demo,
    /// Take a backend out of rotation on a running brace (and, with [cluster], the whole
    /// fleet): it gets no new requests while those in flight finish.
    Drain(drain::DrainArgs),
    /// Put a drained backend back into rotation.
    Undrain(drain::DrainArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The config file.
    #[arg(short = 'c', long = "config", default_value = "/etc/brace/brace.toml")]
    config: PathBuf,
    /// Take over the listening sockets of a running brace (send it SIGQUIT after starting).
    #[arg(long)]
    upgrade: bool,
    /// Unix socket used to hand listeners over during an upgrade.
    #[arg(long, default_value = "/tmp/brace_upgrade.sock")]
    upgrade_sock: String,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Check {
            config,
            against,
            admin,
        }) => check(&config, against.as_deref(), admin.as_deref()),
        Some(Command::Demo) => demo(),
        Some(Command::Drain(args)) => drain::run(args, true),
        Some(Command::Undrain(args)) => drain::run(args, false),
    }
}

fn run(args: RunArgs) -> i32 {
    let loaded = match config::load(&args.config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    start(
        loaded,
        RunOptions {
            upgrade: args.upgrade,
            demo: false,
            upgrade_sock: args.upgrade_sock,
            config_path: Some(args.config),
        },
    )
}

fn start(loaded: Loaded, opts: RunOptions) -> i32 {
    match server::run(loaded, opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn check(path: &Path, against: Option<&str>, admin: Option<&str>) -> i32 {
    let new = match config::load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    for w in new.config.warnings() {
        eprintln!("warning: {w}");
    }
    println!("{}", summary(&new));
    let Some(against) = against else { return 0 };
    if against == "fleet" {
        return check_fleet(path, &new);
    }
    let old = match against {
        "running" => {
            let addr = admin.map_or_else(|| new.config.admin.listen.to_string(), str::to_owned);
            running_config(&addr)
        }
        file => config::load(Path::new(file)).map_err(|e| e.to_string()),
    };
    match old {
        Ok(old) => {
            let plan = crate::runtime::plan::Plan::between(&old.config, &new.config);
            println!(
                "Changes from {} to {}:\n{}",
                old.origin,
                new.origin,
                plan.render()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `check --against fleet`: for each config the live instances run, which instances run it and
/// what the new config would change for them.
fn check_fleet(path: &Path, new: &Loaded) -> i32 {
    let Some(cc) = &new.config.cluster else {
        eprintln!("error: --against fleet needs a [cluster] section naming the fleet's store");
        return 1;
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let cluster = match crate::cluster::Cluster::new(cc, &metrics) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let found = rt.block_on(async {
        cluster.connect()?;
        let fleet = crate::cluster::fleet::read(&cluster)
            .await
            .ok_or_else(|| format!("cannot reach the fleet's store at {}", cc.redis))?;
        let mut by_hash: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for m in &fleet.instances {
            by_hash
                .entry(m.beat.config_hash.clone())
                .or_default()
                .push(format!("{} ({})", m.beat.id, m.beat.version));
        }
        let mut texts = Vec::new();
        for (hash, ids) in by_hash {
            let text = crate::cluster::fleet::config_text(&cluster, &hash).await;
            texts.push((hash, ids, text));
        }
        Ok::<_, String>(texts)
    });
    let groups = match found {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if groups.is_empty() {
        println!(
            "No live instances in namespace \"{}\" at {}.",
            cc.namespace, cc.redis
        );
        return 0;
    }
    let total: usize = groups.iter().map(|(_, ids, _)| ids.len()).sum();
    println!(
        "Fleet at {} (namespace \"{}\"): {total} live instance(s).",
        cc.redis, cc.namespace
    );
    let new_hash = crate::cluster::fleet::config_hash(&new.config);
    for (hash, ids, text) in groups {
        let who = ids.join(", ");
        if hash == new_hash {
            println!(
                "\n{who}: config {hash}, the same as {}: no change.",
                new.origin
            );
            continue;
        }
        let old = text
            .ok_or_else(|| "its config text is no longer in the store".to_string())
            .and_then(|t| {
                config::parse(&t, &format!("config {hash}"), &base).map_err(|e| e.to_string())
            });
        match old {
            Ok(old) => {
                // Each instance's own addresses and id are not changes.
                let (mut o, mut n) = (old.config, new.config.clone());
                crate::cluster::fleet::normalize(&mut o);
                crate::cluster::fleet::normalize(&mut n);
                // The stored text has its secrets redacted: they cannot be compared.
                if o.admin.token.as_deref() == Some("<redacted>") {
                    o.admin.token.clone_from(&n.admin.token);
                }
                if let (Some(ot), Some(nt)) = (&mut o.tracing, &n.tracing) {
                    if ot.headers.values().all(|v| v == "<redacted>") {
                        ot.headers.clone_from(&nt.headers);
                    }
                }
                let plan = crate::runtime::plan::Plan::between(&o, &n);
                println!("\n{who}: config {hash} would change:\n{}", plan.render());
            }
            Err(e) => println!("\n{who}: config {hash} would be replaced (cannot compare: {e})."),
        }
    }
    0
}

/// Fetches and parses the running config from a brace admin listener (`GET /api/config`).
fn running_config(addr: &str) -> Result<Loaded, String> {
    let admin = admin::Admin::new(addr, None);
    let fail = |e: &dyn std::fmt::Display| format!("asking the running brace at {addr}: {e}");
    let answer = admin.request("GET", "/api/config", None)?;
    let v: serde_json::Value = serde_json::from_str(&answer.body).map_err(|e| fail(&e))?;
    let toml = v["toml"]
        .as_str()
        .ok_or_else(|| fail(&"no config in the answer"))?;
    let base = v["path"]
        .as_str()
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
        .unwrap_or_default();
    config::parse(toml, &format!("running brace at {addr}"), &base).map_err(|e| e.to_string())
}

/// One paragraph: listeners, routes, upstreams.
pub fn summary(l: &Loaded) -> String {
    let c = &l.config;
    let mut listeners: Vec<String> = c
        .server
        .listen
        .iter()
        .map(|a| format!("http://{a}"))
        .collect();
    listeners.extend(c.server.tls.iter().map(|t| format!("https://{}", t.listen)));
    let routes: Vec<String> = c
        .routes
        .iter()
        .map(|r| {
            format!(
                "{} ({}{} -> {})",
                r.name,
                if r.hosts.is_empty() {
                    "*"
                } else {
                    "host-matched "
                },
                r.path_prefix,
                r.upstream
            )
        })
        .collect();
    let upstreams: Vec<String> = c
        .upstreams
        .iter()
        .map(|(n, u)| {
            let plural = |k: usize| if k == 1 { "" } else { "s" };
            let k = u.backends.len();
            match &u.dns {
                None => format!("{n} ({k} backend{})", plural(k)),
                Some(d) => {
                    let mut names: Vec<String> = d
                        .names
                        .iter()
                        .map(|x| format!("{}:{}", x.host, x.port))
                        .collect();
                    names.extend(d.srv.iter().map(|s| format!("SRV {s}")));
                    format!(
                        "{n} ({k} backend{} + DNS {} every {})",
                        plural(k),
                        names.join(", "),
                        humantime::format_duration(d.every)
                    )
                }
            }
        })
        .collect();
    format!(
        "{}: OK (hash {}). Listeners: {}; admin on http://{}. {} route{}: {}. {} upstream{}: {}.",
        l.origin,
        l.hash,
        listeners.join(", "),
        c.admin.listen,
        routes.len(),
        if routes.len() == 1 { "" } else { "s" },
        routes.join(", "),
        upstreams.len(),
        if upstreams.len() == 1 { "" } else { "s" },
        upstreams.join(", "),
    )
}

fn demo() -> i32 {
    let loaded = match config::parse(
        demo::DEMO_CONFIG,
        "config/demo.toml (embedded)",
        Path::new("."),
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: embedded demo config: {e}");
            return 1;
        }
    };
    let listen = loaded.config.server.listen[0];
    let admin = loaded.config.admin.listen;
    println!(
        "brace demo: proxy on http://{listen}, admin on http://{admin}\n\
         status page: open http://{admin}/ in a browser\n\
         backends: healthy 127.0.0.1:9001, flaky 127.0.0.1:9002 (30% 503s), slow 127.0.0.1:9003 (300 ms, 1 in 10 takes 3 s)\n\n\
         try:\n  curl -i http://{listen}/hello            # least_requests over all three; failures are retried\n  \
         for i in $(seq 100); do curl -s -o /dev/null -w '%{{http_code}} ' http://{listen}/; done; echo\n  \
         curl -s http://{admin}/api/upstreams     # health, ejections, breakers (flaky and slow get ejected, then return)\n  \
         for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}} ' http://{listen}/limited/; done; echo   # 5 x 200, then 429\n  \
         curl -si http://{listen}/cached/x | grep -i x-cache-status   # MISS, then HIT for 10 s\n  \
         curl -i http://{listen}/healthy/hello    # a route to the healthy one, prefix stripped\n  \
         curl -i --path-as-is http://{listen}/a/../b   # refused: 400\n  \
         curl -s http://{admin}/metrics | grep ^brace_\n  \
         curl -s http://{admin}/readyz\n\nCtrl-C drains and stops.\n"
    );
    start(
        loaded,
        RunOptions {
            upgrade: false,
            demo: true,
            upgrade_sock: "/tmp/brace_demo_upgrade.sock".into(),
            config_path: None,
        },
    )
}

use crate::demo;
