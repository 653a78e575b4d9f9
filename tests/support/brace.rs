//! A real `brace` process on free loopback ports: start, reload, signal, metrics.

use super::*;

pub struct Brace {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// The `[server]`, `[admin]` and `[log]` part `start_with` wrote, for `rewrite`.
    pub head: String,
}

impl Brace {
    /// Starts brace on `body` (the routes and upstreams), with `[server]` and `[admin]` on free
    /// ports prepended. `server_extra` adds lines to `[server]`. Waits until /readyz says 200.
    pub fn start(body: &str) -> Brace {
        Brace::start_with(body, "")
    }

    pub fn start_with(body: &str, server_extra: &str) -> Brace {
        // A port from `free_port` is released before brace binds it, so something else may
        // take it first; brace then refuses to start ("cannot listen on"), and we try again
        // with new ports. Bounded: three tries.
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let admin_port = free_port();
            let head = format!(
                "[server]\nlisten = [\"127.0.0.1:{port}\"]\ngrace_period = \"5s\"\n{server_extra}\n\
                 [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n\n"
            );
            match Brace::try_start_raw(&format!("{head}{body}"), port, admin_port) {
                Ok(mut b) => {
                    b.head = head;
                    return b;
                }
                Err(e) if e.contains("cannot listen on") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("brace could not get free ports three times: {last}");
    }

    /// Starts brace on a complete config text whose ports the caller chose.
    pub fn start_raw(text: &str, port: u16, admin_port: u16) -> Brace {
        Brace::try_start_raw(text, port, admin_port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Brace::start`] with extra environment variables for the brace process.
    pub fn start_env(body: &str, env: &[(&str, &str)]) -> Brace {
        let port = free_port();
        let admin_port = free_port();
        let head = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ngrace_period = \"5s\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n\n"
        );
        let mut b = Brace::try_start_env(&format!("{head}{body}"), port, admin_port, env)
            .unwrap_or_else(|e| panic!("{e}"));
        b.head = head;
        b
    }

    fn try_start_raw(text: &str, port: u16, admin_port: u16) -> Result<Brace, String> {
        Brace::try_start_env(text, port, admin_port, &[])
    }

    fn try_start_env(
        text: &str,
        port: u16,
        admin_port: u16,
        env: &[(&str, &str)],
    ) -> Result<Brace, String> {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("brace.toml");
        std::fs::write(&config_path, text).unwrap();
        let child = Command::new(BRACE)
            .args(["run", "-c"])
            .arg(&config_path)
            .arg("--upgrade-sock")
            .arg(dir.path().join("upgrade.sock"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut b = Brace {
            child,
            port,
            admin_port,
            dir,
            config_path,
            head: String::new(),
        };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = try_get(b.admin(), "/readyz") {
                if r.status == 200 {
                    // The port was free when chosen, but another thread's server may have
                    // bound it before brace did: then requests would reach that server.
                    if !listens(b.child.id(), port) {
                        return Err(format!(
                            "cannot listen on 127.0.0.1:{port}: another process holds it"
                        ));
                    }
                    return Ok(b);
                }
            }
            if let Ok(Some(status)) = b.child.try_wait() {
                let mut err = String::new();
                b.child.stderr.take().unwrap().read_to_string(&mut err).ok();
                return Err(format!("brace exited ({status}) before ready:\n{err}"));
            }
            assert!(Instant::now() < end, "brace not ready within 20s");
            std::thread::sleep(Duration::from_millis(10)); // allowed: poll interval inside a deadline loop
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    pub fn admin(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.addr(), path)
    }

    pub fn metrics(&self) -> String {
        get(self.admin(), "/metrics").text()
    }

    /// The value of one sample, e.g. `metric("brace_requests_total{code=\"200\",route=\"a\"}")`.
    /// Label order must match the exposition (alphabetical). Missing = 0.
    pub fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics(), sample)
    }

    /// Waits (10 s at most) until a sample reaches `want`. Metrics are recorded in the logging
    /// phase, just after the response is sent, so a test reads them with a deadline.
    pub fn wait_metric(&self, sample: &str, want: f64) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.metric(sample);
            if got == want {
                return;
            }
            assert!(Instant::now() < end, "{sample} is {got}, want {want}");
            std::thread::sleep(Duration::from_millis(10)); // allowed: poll interval inside a deadline loop
        }
    }

    /// Replaces the config file: the same head as at start, a new body.
    pub fn rewrite(&self, body: &str) {
        // Write then rename, as editors and config managers do.
        let tmp = self.dir.path().join("brace.toml.new");
        std::fs::write(&tmp, format!("{}{body}", self.head)).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// `POST /api/reload`.
    pub fn reload(&self) -> Response {
        post(self.admin(), "/api/reload", "")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < end,
                "brace did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(10)); // allowed: poll interval inside a deadline loop
        }
    }

    /// The brace process's id.
    pub fn child_id(&self) -> u32 {
        self.child.id()
    }

    /// Stops brace and returns what it wrote to stderr (the process log). SIGTERM first, so
    /// that lines still queued in the log writer are flushed (a SIGKILL lost them on a busy
    /// machine); SIGKILL if it has not exited within 30 s.
    pub fn stderr(&mut self) -> String {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(30);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10)); // allowed: poll interval inside a deadline loop
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut s).ok();
        }
        s
    }

    /// Takes brace's stdout pipe, to read it while brace runs.
    pub fn child_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout not taken yet")
    }

    pub fn stdout(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut s = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .ok();
        s
    }
}

impl Drop for Brace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// Runs `brace check -c FILE` on `text`; returns (exit code, stdout, stderr, file path).
pub fn check(text: &str) -> (i32, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brace.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BRACE)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

/// True when process `pid` owns a socket listening on `port` (any local address, IPv4 or
/// IPv6; from /proc: the listening socket's inode among the process's descriptors).
fn listens(pid: u32, port: u16) -> bool {
    let Ok(v4) = std::fs::read_to_string("/proc/net/tcp") else {
        return true; // not Linux: cannot tell, assume so
    };
    let v6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let suffix = format!(":{port:04X}");
    let inodes: Vec<String> = v4
        .lines()
        .chain(v6.lines())
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[1].ends_with(&suffix) && f[3] == "0A")
        .map(|f| format!("socket:[{}]", f[9]))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|l| inodes.iter().any(|i| *i == *l.to_string_lossy()))
    })
}
