//! Test harness: a real `brace` process on free loopback ports, real upstream HTTP servers
//! that count requests and can be told to fail, hang or close, a raw HTTP/1.1 client, and
//! `wait_for(condition, deadline)` instead of sleeps.
#![allow(dead_code)]

mod api;
mod brace;
pub mod browser;
mod config;
pub mod dns;
pub mod edge;
mod http;
pub mod otel;
pub mod pki;
pub mod redis;
mod upstream;

// Each test file uses a different part.
#[allow(unused_imports)]
pub use api::*;
#[allow(unused_imports)]
pub use brace::*;
#[allow(unused_imports)]
pub use config::*;
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use upstream::*;

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
