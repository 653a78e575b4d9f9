//! A real `redis-server` on a free loopback port, no persistence; stopped on drop. It can be
//! killed and started again on the same port (the store going away under brace).

use super::*;

pub struct Redis {
    pub port: u16,
    child: Mutex<Option<Child>>,
    pub dir: tempfile::TempDir,
    /// Extra server arguments; `PORT` stands for the port.
    args: Vec<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// A server with extra arguments (`--requirepass`, `--tls-port PORT` ...); `PORT` in them
    /// is replaced by the port. With extra arguments, ready means the port accepts.
    pub fn start_with(args: &[&str]) -> Redis {
        let r = Redis {
            port: free_port(),
            child: Mutex::new(None),
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// brace instances named `ids` sharing this store (`[cluster]` with a 200 ms heartbeat)
    /// over `body`, each connected to it.
    pub fn fleet(&self, ids: &[&str], body: &str) -> Vec<Brace> {
        let fleet: Vec<Brace> = ids
            .iter()
            .map(|id| {
                Brace::start(&format!(
                    "[cluster]\nredis = \"{}\"\ninstance_id = \"{id}\"\nheartbeat = \"200ms\"\n\n{body}",
                    self.url()
                ))
            })
            .collect();
        wait_for(
            "the fleet to reach the store",
            Duration::from_secs(10),
            || {
                fleet
                    .iter()
                    .all(|f| f.metric("brace_cluster_connected") == 1.0)
            },
        );
        fleet
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn restart(&self) {
        let port = self.port.to_string();
        let tls = self.args.iter().any(|a| a == "--tls-port");
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                if tls { "0" } else { &port },
            ])
            .args(self.args.iter().map(|a| a.replace("PORT", &port)))
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package; scripts/setup.sh installs it)");
        *self.child.lock().unwrap() = Some(child);
        if self.args.is_empty() {
            wait_for(
                "redis-server to answer PING",
                Duration::from_secs(10),
                || self.try_cmd(&["PING"]).is_ok(),
            );
        } else {
            wait_for("redis-server to listen", Duration::from_secs(10), || {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            });
        }
    }

    /// Kills the server; its data is gone.
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn try_cmd(&self, args: &[&str]) -> ::redis::RedisResult<::redis::Value> {
        let client = ::redis::Client::open(self.url())?;
        let mut c = client.get_connection_with_timeout(Duration::from_secs(1))?;
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
    }

    /// Runs one command and returns its answer.
    pub fn cmd<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let v = self
            .try_cmd(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"));
        ::redis::from_redis_value(v).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
