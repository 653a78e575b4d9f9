//! brace with a plain listener (HTTP/1.1 and h2c) and a TLS listener (HTTP/2 by ALPN), and
//! curl to send one request over each protocol: for tests that a policy holds over all three.

use super::pki::Pki;
use super::*;

#[derive(Clone, Copy, Debug)]
pub enum Proto {
    Http1,
    H2Tls,
    H2c,
}

pub const PROTOS: [Proto; 3] = [Proto::Http1, Proto::H2Tls, Proto::H2c];

/// brace with a plain listener speaking HTTP/1.1 and h2c, and a TLS listener (HTTP/2 by
/// ALPN) with a certificate for the test's host names.
pub struct Edge {
    pub b: Brace,
    pub port: u16,
    pub tls_port: u16,
    pub pki: Pki,
}

impl Edge {
    pub fn start(body: &str) -> Edge {
        Edge::start_with(body, "")
    }

    /// As [`Edge::start`], with more `[server]` lines.
    pub fn start_with(body: &str, server_extra: &str) -> Edge {
        let pki = Pki::new();
        pki.ca("ca");
        pki.cert(
            "edge",
            "DNS:a.test,DNS:b.test,DNS:c.test,DNS:admin.test,DNS:shop.test",
            "ca",
        );
        let (port, tls_port, admin) = (free_port(), free_port(), free_port());
        let cfg = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nh2c = true\n{server_extra}\n\
             [[server.tls]]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = {:?}\nkey = {:?}\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"warn\"\naccess_log = \"off\"\n{body}",
            pki.path("edge.pem").display().to_string(),
            pki.path("edge.key").display().to_string(),
        );
        let b = Brace::start_raw(&cfg, port, admin);
        Edge {
            b,
            port,
            tls_port,
            pki,
        }
    }

    /// `GET path` for `host` over `proto` with curl: (status, body).
    pub fn get(&self, proto: Proto, host: &str, path: &str) -> (u16, String) {
        self.get_with(proto, host, path, &[])
    }

    /// As [`Edge::get`], with extra header lines.
    pub fn get_with(&self, proto: Proto, host: &str, path: &str, fields: &[&str]) -> (u16, String) {
        let args: Vec<String> = fields
            .iter()
            .flat_map(|f| ["-H".into(), f.to_string()])
            .collect();
        self.curl(proto, host, path, &args)
    }

    /// curl over `proto` for `host` and `path` with these extra arguments: (status, body).
    pub fn curl(&self, proto: Proto, host: &str, path: &str, args: &[String]) -> (u16, String) {
        let (scheme, port, flag) = match proto {
            Proto::Http1 => ("http", self.port, "--http1.1"),
            Proto::H2Tls => ("https", self.tls_port, "--http2"),
            Proto::H2c => ("http", self.port, "--http2-prior-knowledge"),
        };
        let ca = self.pki.path("ca.pem");
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", flag, "--cacert"])
            .arg(&ca)
            .arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
            .args(args)
            .args(["-w", "\n%{http_code} %{http_version}"])
            .arg(format!("{scheme}://{host}:{port}{path}"))
            .output()
            .expect("curl not installed: run the README's test command, which installs it");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
        let mut tail = tail.split(' ');
        let status = tail.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let version = tail.next().unwrap_or("");
        let want = match proto {
            Proto::Http1 => "1.1",
            _ => "2",
        };
        assert_eq!(
            version,
            want,
            "{proto:?} {host}{path}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (status, body.to_owned())
    }

    /// A raw HTTP/1.1 request on the plain listener with this `Host` line.
    pub fn raw(&self, host: &str, path: &str) -> Response {
        send(
            self.b.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap()
    }
}
