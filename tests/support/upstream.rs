//! Real upstream HTTP servers on 127.0.0.1 that count requests and can be told to fail, hang, close or follow a script.

use super::*;

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

/// A peer that accepts TCP connections and never sends a byte (a stalled server, a store
/// that hangs): the connections stay open until the test ends.
pub struct BlackHole {
    pub addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let h = held.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                h.lock().unwrap().push(c);
            }
        });
        BlackHole { addr, held }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// An origin that answers 200 with `headers` and the `Host` it was asked for as the body, so
/// a page served for another host shows.
pub fn host_echo(headers: &'static str) -> Upstream {
    Upstream::with_mode(
        "origin",
        script(move |head, _| {
            let host = head
                .lines()
                .find_map(|l| l.strip_prefix("host: "))
                .unwrap_or("-")
                .to_owned();
            (200, headers.into(), host.into_bytes())
        }),
    )
}
