//! Open-loop HTTP/1.1 load for the harness (wrk2-style): requests are *scheduled* at a fixed
//! rate over keep-alive connections, and each latency is measured from its scheduled time, so
//! a stalled proxy is charged for the requests it delayed (no coordinated omission).
//!
//! Usage: openloop URL RATE SECONDS CONNECTIONS
//! Prints `sent`, `ok`, `errors`, per-second `errors_per_second` and p50/p99/p999 in µs as JSON.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let url = a[1].trim_start_matches("http://").to_owned();
    let (host, path) = url
        .split_once('/')
        .map(|(h, p)| (h.to_owned(), format!("/{p}")))
        .unwrap_or((url.clone(), "/".into()));
    let rate: f64 = a[2].parse().expect("RATE");
    let secs: u64 = a[3].parse().expect("SECONDS");
    let conns: usize = a[4].parse().expect("CONNECTIONS");
    let total = (rate * secs as f64) as usize;
    let start = Instant::now() + Duration::from_millis(100);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let results = Arc::new(Mutex::new(Vec::<(u64, bool, u64)>::with_capacity(total)));
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let (host, path, results) = (host.clone(), path.clone(), results.clone());
            std::thread::spawn(move || {
                let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                let mut local = Vec::new();
                // Connection c sends requests c, c + conns, c + 2·conns, ...
                for i in (c..total).step_by(conns) {
                    let due = start + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait); // pacing to the schedule, not synchronisation
                    }
                    let ok = (|| -> std::io::Result<bool> {
                        if conn.is_none() {
                            let s = TcpStream::connect(&host)?;
                            s.set_nodelay(true)?;
                            s.set_read_timeout(Some(Duration::from_secs(5)))?;
                            conn = Some((s.try_clone()?, BufReader::new(s)));
                        }
                        let (w, r) = conn.as_mut().expect("just set");
                        w.write_all(
                            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
                        )?;
                        let mut line = String::new();
                        r.read_line(&mut line)?;
                        let status: u16 = line
                            .split_whitespace()
                            .nth(1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            r.read_line(&mut h)?;
                            if h.trim().is_empty() {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body)?;
                        Ok(status == 200)
                    })()
                    .unwrap_or(false);
                    if !ok {
                        conn = None;
                    }
                    let done = Instant::now();
                    let second = due.saturating_duration_since(start).as_secs();
                    local.push((
                        done.saturating_duration_since(due).as_micros() as u64,
                        ok,
                        second,
                    ));
                }
                results.lock().unwrap().extend(local);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let r = results.lock().unwrap();
    let mut lat: Vec<u64> = r.iter().filter(|x| x.1).map(|x| x.0).collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let mut per_sec = vec![0u64; secs as usize + 1];
    for x in r.iter().filter(|x| !x.1) {
        per_sec[(x.2 as usize).min(secs as usize)] += 1;
    }
    println!(
        "{{\"sent\": {}, \"ok\": {}, \"errors\": {}, \"errors_per_second\": {:?}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}}}",
        r.len(),
        lat.len(),
        r.len() - lat.len(),
        per_sec,
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
}
