//! A small HTTP/1.1 client for a running brace's admin listener: the command line's way to
//! ask it things (`check --against running`, `drain`). Plain TCP on purpose: the admin
//! listener is loopback or a private address, and the answers are small JSON.

use std::io::{Read, Write};
use std::time::Duration;

/// An admin listener: `127.0.0.1:9901` or `http://127.0.0.1:9901`.
pub struct Admin {
    addr: String,
    token: Option<String>,
}

/// One answer: its status code and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Admin {
    /// `token` is sent as `Authorization: Bearer`; `BRACE_ADMIN_TOKEN` when not given.
    pub fn new(addr: &str, token: Option<String>) -> Admin {
        let addr = addr.strip_prefix("http://").unwrap_or(addr);
        Admin {
            addr: addr.trim_end_matches('/').to_owned(),
            token: token.or_else(|| std::env::var("BRACE_ADMIN_TOKEN").ok()),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `method path` (with `body`, JSON, when given) and reads the whole answer.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<Answer, String> {
        let addr = &self.addr;
        let fail = |e: &dyn std::fmt::Display| format!("asking the running brace at {addr}: {e}");
        let mut s = std::net::TcpStream::connect(addr).map_err(|e| fail(&e))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| fail(&e))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(t) = &self.token {
            head += &format!("Authorization: Bearer {t}\r\n");
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method == "POST" {
            head += &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        write!(s, "{head}\r\n{body}").map_err(|e| fail(&e))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| fail(&e))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| fail(&"no HTTP response"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| fail(&"no status line"))?;
        Ok(Answer {
            status,
            body: body.to_owned(),
        })
    }
}
