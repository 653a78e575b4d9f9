//! The bare pingora contender for the load harness: a proxy with one fixed peer and nothing
//! else (no routing, balancing, health, breakers or metrics), built with brace's profile.
//! Usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR THREADS [timeouts] [nosteal]
//! With `timeouts`, the peer gets the connect/read/write/idle timeouts brace sets on every
//! request (pingora registers a timer per timed read and write); with `nosteal`, pingora's
//! single-threaded runtimes replace tokio's work-stealing one (`work_stealing = false`).

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

struct Fixed(String, Vec<String>);

#[async_trait]
impl ProxyHttp for Fixed {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.0.as_str(), false, String::new());
        let o = &mut peer.options;
        let has = |f: &str| self.1.iter().any(|a| a == "timeouts" || a == f);
        if has("connect") {
            o.connection_timeout = Some(std::time::Duration::from_secs(2));
        }
        if has("read") {
            o.read_timeout = Some(std::time::Duration::from_secs(30));
        }
        if has("write") {
            o.write_timeout = Some(std::time::Duration::from_secs(30));
        }
        if has("idle") {
            o.idle_timeout = Some(std::time::Duration::from_secs(60));
        }
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream) = (args[1].clone(), args[2].clone());
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let flags = args.get(4..).unwrap_or_default();
    let conf = ServerConf {
        threads,
        work_stealing: !flags.iter().any(|a| a == "nosteal"),
        upstream_keepalive_pool_size: 2048,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut svc = http_proxy_service(&server.configuration, Fixed(upstream, flags.to_vec()));
    svc.add_tcp(&listen);
    server.add_service(svc);
    server.run_forever();
}
