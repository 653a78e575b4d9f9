//! A raw HTTP/1.1 client: one request per connection, and a reader for responses.

use super::*;

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
pub(super) fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
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

pub(super) fn read_headers(r: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
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

pub(super) fn read_body(
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
