//! A real DNS server: Debian's `dnsmasq` on a free loopback port, answering from a hosts
//! directory it re-reads by itself when a file there changes (`--hostsdir`), and for SRV names
//! from `--srv-host` lines. Stopped on drop.

use super::*;

pub struct Dnsmasq {
    pub port: u16,
    child: Mutex<Option<Child>>,
    dir: tempfile::TempDir,
    srv: Vec<String>,
}

impl Dnsmasq {
    /// Starts dnsmasq answering `hosts` (lines of `IP name`), with `srv` as `--srv-host`
    /// values (`_http._tcp.app.test,target,port,priority,weight`).
    pub fn start(hosts: &str, srv: &[&str]) -> Dnsmasq {
        let d = Dnsmasq {
            port: free_port(),
            child: Mutex::new(None),
            dir: tempfile::tempdir().unwrap(),
            srv: srv.iter().map(|s| s.to_string()).collect(),
        };
        std::fs::create_dir(d.dir.path().join("hosts")).unwrap();
        d.set_hosts(hosts);
        d.restart();
        d
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the hosts file, as a config manager would (write, then rename).
    pub fn set_hosts(&self, hosts: &str) {
        let tmp = self.dir.path().join("hosts.new");
        std::fs::write(&tmp, hosts).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("hosts").join("app")).unwrap();
    }

    pub fn restart(&self) {
        let mut cmd = Command::new("/usr/sbin/dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
        ])
        .args([
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
        ])
        // Authoritative for .test: a name it does not hold is NXDOMAIN, not REFUSED.
        .args(["--local-ttl=1", "--log-facility=-", "--local=/test/"])
        .arg(format!("--port={}", self.port))
        .arg(format!(
            "--hostsdir={}",
            self.dir.path().join("hosts").display()
        ));
        for s in &self.srv {
            cmd.arg(format!("--srv-host={s}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base package; scripts/setup.sh installs it)");
        *self.child.lock().unwrap() = Some(child);
        wait_for("dnsmasq to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two upstreams on one port at 127.0.0.2 and 127.0.0.3 (a DNS name gives addresses, the
/// port is the backend's), named after their addresses.
pub fn pair(mode: impl Fn() -> Mode) -> (Upstream, Upstream, u16) {
    for _ in 0..20 {
        let a = Upstream::at("127.0.0.2:0".parse().unwrap(), "two", mode());
        let port = a.addr.port();
        if TcpListener::bind(("127.0.0.3", port)).is_ok() {
            let b = Upstream::at(
                format!("127.0.0.3:{port}").parse().unwrap(),
                "three",
                mode(),
            );
            return (a, b, port);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3 in 20 tries");
}
