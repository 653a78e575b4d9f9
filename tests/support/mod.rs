//! Test harness: a real `brace` process on free loopback ports, real upstream HTTP servers
//! that count requests and can be told to fail, hang or close, a raw HTTP/1.1 client, and
//! `wait_for(condition, deadline)` instead of sleeps.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BRACE: &str = env!("CARGO_BIN_EXE_brace");

/// A port on 127.0.0.1 the OS says is free (bound, read, released).
/// A loopback port the OS just had free, never one this test process handed out before (the
/// OS may offer a released port again at once, and a proxy and admin port must differ).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh loopback port in 1,000 tries");
}

/// Polls `cond` until it holds or `deadline` passes; panics naming `what` on timeout.
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10)); // allowed: poll interval inside a deadline loop
    }
}

// ---------------------------------------------------------------- brace process

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

    fn try_start_raw(text: &str, port: u16, admin_port: u16) -> Result<Brace, String> {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("brace.toml");
        std::fs::write(&config_path, text).unwrap();
        let child = Command::new(BRACE)
            .args(["run", "-c"])
            .arg(&config_path)
            .arg("--upgrade-sock")
            .arg(dir.path().join("upgrade.sock"))
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

    /// Stops brace and returns what it wrote to stderr (the process log).
    pub fn stderr(&mut self) -> String {
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

// ---------------------------------------------------------------- client

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    try_get(addr, path).unwrap()
}

pub fn post(addr: SocketAddr, path: &str, extra_headers: &str) -> Response {
    send(
        addr,
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap()
}

pub fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    send(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Sends raw bytes on a new connection and reads one response.
pub fn send(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.write_all(raw)?;
    read_response(&mut BufReader::new(s))
}

/// Sends a HEAD request and reads the head only.
pub fn head_request(addr: SocketAddr, path: &str, host: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.write_all(
        format!("HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r)?;
    // Whatever follows the head: a correct HEAD response has nothing.
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    Ok(Response {
        status,
        headers,
        body: rest,
    })
}

/// The status line and header fields of a response.
fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    Ok((status, read_headers(r)?))
}

pub fn read_response(r: &mut impl BufRead) -> std::io::Result<Response> {
    let (status, headers) = read_head(r)?;
    let resp = Response {
        status,
        body: Vec::new(),
        headers,
    };
    let body = read_body(
        r,
        &resp.headers,
        status >= 200 && status != 304 && status != 204,
    )?;
    Ok(Response { body, ..resp })
}

fn read_headers(r: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
}

fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    may_have_body: bool,
) -> std::io::Result<Vec<u8>> {
    let h = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if !may_have_body {
        return Ok(body);
    }
    if h("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = h("content-length") {
        body.resize(n.parse().map_err(std::io::Error::other)?, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

// ---------------------------------------------------------------- upstream

/// A scripted answer: from the request head (lower-cased) and the request's number (0-based)
/// to (status, extra header lines each ending in \r\n, body).
pub type ScriptFn = dyn Fn(&str, usize) -> (u16, String, Vec<u8>) + Send + Sync;

#[derive(Clone)]
pub struct Script(pub Arc<ScriptFn>);

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script")
    }
}

/// Shorthand for `Mode::Script`.
pub fn script(f: impl Fn(&str, usize) -> (u16, String, Vec<u8>) + Send + Sync + 'static) -> Mode {
    Mode::Script(Script(Arc::new(f)))
}

/// What a fake upstream does with each request.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Answer `status` with a body naming this upstream.
    Ok,
    Status(u16, &'static str),
    /// Answer with the request head (lower-cased) as the body.
    Echo,
    /// Answer after a delay.
    Delay(Duration),
    /// Read the request, never answer.
    Hang,
    /// Read the request, close the connection.
    Close,
    /// Answer with a body of this many bytes.
    Large(usize),
    /// Every other request (the 1st, 3rd, ...) gets this status; the rest 200.
    Alternate(u16),
    /// Whatever the script says.
    Script(Script),
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub mode: Arc<Mutex<Mode>>,
    pub count: Arc<AtomicUsize>,
    pub last_head: Arc<Mutex<String>>,
    pub body_bytes: Arc<AtomicUsize>,
    /// Open connections, so `stop` can cut them; and the generation that `stop` bumps.
    conns: Arc<Mutex<Vec<TcpStream>>>,
    generation: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        Upstream::with_mode(name, Mode::Ok)
    }

    pub fn with_mode(name: &str, mode: Mode) -> Upstream {
        Upstream::at("127.0.0.1:0".parse().unwrap(), name, mode)
    }

    /// An upstream on a given address (e.g. one that was dead until now).
    pub fn at(addr: SocketAddr, name: &str, mode: Mode) -> Upstream {
        let l = TcpListener::bind(addr).unwrap();
        let u = Upstream {
            addr: l.local_addr().unwrap(),
            name: name.to_owned(),
            mode: Arc::new(Mutex::new(mode)),
            count: Arc::new(AtomicUsize::new(0)),
            last_head: Arc::new(Mutex::new(String::new())),
            body_bytes: Arc::new(AtomicUsize::new(0)),
            conns: Arc::new(Mutex::new(Vec::new())),
            generation: Arc::new(AtomicUsize::new(0)),
        };
        u.accept_loop(l);
        u
    }

    fn accept_loop(&self, l: TcpListener) {
        let my_gen = self.generation.load(Ordering::SeqCst);
        let (name, mode, count, head, bytes, conns, generation) = (
            self.name.clone(),
            self.mode.clone(),
            self.count.clone(),
            self.last_head.clone(),
            self.body_bytes.clone(),
            self.conns.clone(),
            self.generation.clone(),
        );
        // The accept thread ends at `stop` or with the test process; each connection has its
        // own thread.
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if generation.load(Ordering::SeqCst) != my_gen {
                    return; // stopped: dropping `l` closes the listening socket
                }
                let Ok(conn) = conn else { continue };
                if let Ok(c) = conn.try_clone() {
                    conns.lock().unwrap().push(c);
                }
                let (name, mode, count, head, bytes) = (
                    name.clone(),
                    mode.clone(),
                    count.clone(),
                    head.clone(),
                    bytes.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &name, &mode, &count, &head, &bytes);
                });
            }
        });
    }

    /// Kills the server: the port refuses connections and open connections are cut.
    pub fn stop(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Wake the accept loop so it sees the new generation and drops the listener.
        let _ = TcpStream::connect(self.addr);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        wait_for(
            "the port to refuse connections",
            Duration::from_secs(5),
            || TcpStream::connect(self.addr).is_err(),
        );
    }

    /// Brings a stopped server back on the same port.
    pub fn restart(&self) {
        let l = TcpListener::bind(self.addr).unwrap();
        self.accept_loop(l);
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
    /// The last request head, lower-cased.
    pub fn head(&self) -> String {
        self.last_head.lock().unwrap().to_ascii_lowercase()
    }
    /// The last request head as it arrived.
    pub fn raw_head(&self) -> String {
        self.last_head.lock().unwrap().clone()
    }
}

/// Fetches `/api/upstreams` as JSON.
pub fn upstreams(b: &Brace) -> serde_json::Value {
    serde_json::from_slice(&get(b.admin(), "/api/upstreams").body).unwrap()
}

fn serve(
    conn: TcpStream,
    name: &str,
    mode: &Mutex<Mode>,
    count: &AtomicUsize,
    last_head: &Mutex<String>,
    bytes: &AtomicUsize,
) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            head.push_str(&line);
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let body = read_body(&mut r, &headers, true_if_body(&headers))?;
        bytes.fetch_add(body.len(), Ordering::SeqCst);
        *last_head.lock().unwrap() = head.clone();
        let n = count.fetch_add(1, Ordering::SeqCst);
        let mode = mode.lock().unwrap().clone();
        let mut extra = String::new();
        let (status, body): (u16, Vec<u8>) = match mode {
            Mode::Ok => (200, format!("hello from {name}\n").into_bytes()),
            Mode::Status(s, b) => (s, b.as_bytes().to_vec()),
            Mode::Echo => (200, head.to_ascii_lowercase().into_bytes()),
            Mode::Delay(d) => {
                std::thread::sleep(d); // allowed: the upstream is slow on purpose (Mode::Delay)
                (200, format!("hello from {name}\n").into_bytes())
            }
            Mode::Hang => {
                let mut sink = Vec::new();
                let _ = r.read_to_end(&mut sink);
                return Ok(());
            }
            Mode::Close => {
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            Mode::Large(n) => (200, vec![b'x'; n]),
            Mode::Alternate(s) if n.is_multiple_of(2) => (s, b"failed".to_vec()),
            Mode::Alternate(_) => (200, format!("hello from {name}\n").into_bytes()),
            Mode::Script(f) => {
                let (status, headers, body) = (f.0)(&head.to_ascii_lowercase(), n);
                extra = headers;
                (status, body)
            }
        };
        // One write: a head and body in separate small writes would meet Nagle's algorithm
        // and the peer's delayed ACK (a 40 ms stall).
        // 304 and 204 carry no body; a HEAD gets the head only.
        let no_body = status == 304 || status == 204;
        let head_only = head.starts_with("HEAD ");
        let length = if no_body {
            String::new()
        } else {
            format!("Content-Length: {}\r\n", body.len())
        };
        let mut out = format!("HTTP/1.1 {status} X\r\n{length}X-Upstream: {name}\r\n{extra}\r\n")
            .into_bytes();
        if !no_body && !head_only {
            out.extend_from_slice(&body);
        }
        w.write_all(&out)?;
    }
}

fn true_if_body(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, _)| k == "content-length" || k == "transfer-encoding")
}

/// A `[[route]]` + `[upstream.NAME]` pair pointing at these upstreams.
pub fn simple_config(route_extra: &str, backends: &[&Upstream], upstream_extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|u| format!("\"{}\"", u.addr)).collect();
    format!(
        "[[route]]\nname = \"main\"\nupstream = \"pool\"\n{route_extra}\n\n[upstream.pool]\nbackends = [{}]\n{upstream_extra}\n",
        list.join(", ")
    )
}

/// `GET path` for host `shop.example`, with extra header lines, on a new connection.
pub fn shop_get(b: &Brace, path: &str, headers: &str) -> Response {
    send(
        b.addr(),
        format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap()
}

/// The response's `X-Cache-Status`, or `-`.
pub fn cache_status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("-")
}

/// Asserts that no backend was charged for what a client did: every
/// `brace_upstream_requests_total` sample is a success or a client outcome (`client_abort`,
/// `client_error`: these feed neither ejection nor breakers), no backend is ejected or unhealthy, and every breaker is closed.
pub fn assert_no_backend_blamed(b: &Brace) {
    let text = b.metrics();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let value = || l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
        let clients = ["success", "client_abort", "client_error", "client_timeout"]
            .iter()
            .any(|o| l.contains(&format!("outcome=\"{o}\"")));
        if l.starts_with("brace_upstream_requests_total{") && !clients {
            assert_eq!(value(), 0.0, "a backend was blamed: {l}");
        }
        if l.starts_with("brace_upstream_backend_ejected{") {
            assert_eq!(value(), 0.0, "a backend was ejected: {l}");
        }
        if l.starts_with("brace_circuit_breaker_state{") {
            assert_eq!(value(), 0.0, "a breaker is not closed: {l}");
        }
        if l.starts_with("brace_upstream_backend_healthy{") {
            assert_eq!(value(), 1.0, "a backend is marked unhealthy: {l}");
        }
    }
}

/// Upstream tables that make a backend pay at once for any failure charged to it: the attack
/// tests use them, so a client fault wrongly blamed on the backend would eject it and open
/// its breaker.
pub const TOUCHY: &str =
    "[upstream.pool.outlier]\nconsecutive_failures = 1\nmax_ejection_percent = 100\n\
     [upstream.pool.circuit_breaker]\nconsecutive_failures = 1\n";

/// `n` requests from `threads` concurrent clients; returns the statuses.
pub fn load(b: &Brace, threads: usize, n: usize, path: &'static str) -> Vec<u16> {
    let addr = b.addr();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                    out.push(try_get(addr, path).map_or(0, |r| r.status));
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}
