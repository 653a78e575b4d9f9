//! `brace drain UPSTREAM ADDR [--wait]` and `brace undrain UPSTREAM ADDR`: the deploy
//! script's side of `POST /api/upstreams/NAME/backends/ADDR/drain`. `--wait` returns when
//! the backend has no request in flight, so a script can drain, restart and undrain.

use super::admin::Admin;
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DrainArgs {
    /// The upstream (pool) the backend belongs to.
    upstream: String,
    /// The backend's address, IP:PORT, as /api/upstreams shows it.
    addr: String,
    /// The admin listener of the running brace.
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: String,
    /// The admin token (default: the BRACE_ADMIN_TOKEN environment variable).
    #[arg(long)]
    token: Option<String>,
    /// Why, for the event log.
    #[arg(long)]
    reason: Option<String>,
    /// Wait until the backend has no request in flight (drain only).
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this long (exit 1), e.g. 30s or 5m.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub fn run(args: DrainArgs, on: bool) -> i32 {
    match drain(&args, on) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn drain(args: &DrainArgs, on: bool) -> Result<(), String> {
    let admin = Admin::new(&args.admin, args.token.clone());
    let verb = if on { "drain" } else { "undrain" };
    let path = format!(
        "/api/upstreams/{}/backends/{}/{verb}",
        args.upstream,
        args.addr.replace('[', "%5B").replace(']', "%5D")
    );
    let body = args
        .reason
        .as_ref()
        .map(|r| serde_json::json!({ "reason": r }).to_string());
    let answer = admin.request("POST", &path, body.as_deref())?;
    let v: serde_json::Value = serde_json::from_str(&answer.body).map_err(|_| {
        format!(
            "{} answered {}: {}",
            admin.addr(),
            answer.status,
            answer.body.trim()
        )
    })?;
    if answer.status != 200 {
        return Err(v["error"].as_str().unwrap_or(answer.body.trim()).to_owned());
    }
    let backend = v["backend"].as_str().unwrap_or(&args.addr);
    let in_flight = v["in_flight"].as_i64().unwrap_or(0);
    let state = if on { "drained" } else { "undrained" };
    println!(
        "{state} {backend} in {} ({in_flight} in flight)",
        args.upstream
    );
    if v["cluster"]["shared"] == false {
        eprintln!(
            "warning: {}",
            v["cluster"]["error"]
                .as_str()
                .unwrap_or("not shared with the fleet")
        );
    }
    if on && args.wait {
        wait(&admin, &args.upstream, backend, args.timeout)?;
    }
    Ok(())
}

/// Polls `/api/upstreams` until the backend has nothing in flight.
fn wait(admin: &Admin, upstream: &str, backend: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = -1;
    loop {
        let answer = admin.request("GET", "/api/upstreams", None)?;
        let v: serde_json::Value = serde_json::from_str(&answer.body).map_err(|e| e.to_string())?;
        let found = v["upstreams"][upstream]["backends"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["addr"] == backend));
        let Some(b) = found else {
            println!("{backend} left {upstream}: nothing in flight");
            return Ok(());
        };
        let n = b["in_flight"].as_i64().unwrap_or(0);
        if n <= 0 {
            println!("{backend} in {upstream}: nothing in flight");
            return Ok(());
        }
        if n != last {
            println!("waiting for {n} in flight");
            last = n;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{n} still in flight to {backend} after {}",
                humantime::format_duration(timeout)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
