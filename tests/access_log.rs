//! The access log never stalls proxying: brace's stdout is a pipe nobody reads, as when a
//! log shipper hangs. And the process log in JSON, for shippers.

mod support;
use std::io::Read;
use std::time::Duration;
use support::*;

#[test]
fn a_blocked_access_log_drops_lines_instead_of_stalling_requests() {
    let up = Upstream::start("u");
    let (port, admin) = (free_port(), free_port());
    let mut b = Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [log]\nlevel = \"warn\"\naccess_log = \"stdout\"\n\n{}",
            simple_config("", &[&up], "")
        ),
        port,
        admin,
    );
    // A pipe holds 64 KiB, about 200 records; the writer's queue 8,192 more. 10,000
    // requests overflow both.
    let statuses = load(&b, 4, 10_000, "/");
    assert!(
        statuses.iter().all(|&s| s == 200),
        "requests stalled or failed"
    );
    let dropped = b.metric("brace_access_log_dropped_lines_total");
    assert!(dropped > 0.0, "nothing dropped: was the pipe read?");
    wait_for(
        "/healthz to report the stuck writer",
        Duration::from_secs(15),
        || get(b.admin(), "/healthz").status == 503,
    );
    // The reader comes back: the writer catches up and /healthz recovers.
    let mut out = b.child_stdout();
    let reader = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
        sink.len()
    });
    wait_for("/healthz to recover", Duration::from_secs(15), || {
        get(b.admin(), "/healthz").status == 200
    });
    assert_eq!(b.get("/").status, 200);
    drop(b);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn the_process_log_in_json_is_one_object_per_line_with_level_and_message() {
    let up = Upstream::start("u");
    let (port, admin) = (free_port(), free_port());
    let mut b = Brace::start_raw(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [log]\nlevel = \"info\"\nformat = \"json\"\naccess_log = \"off\"\n\n{}",
            simple_config("", &[&up], "")
        ),
        port,
        admin,
    );
    assert_eq!(b.get("/").status, 200);
    let log = b.stderr();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ready = lines
        .iter()
        .find(|v| v["fields"]["message"] == "brace ready")
        .unwrap_or_else(|| panic!("no \"brace ready\" event in:\n{log}"));
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["target"], "brace::server");
    assert!(ready["timestamp"].is_string());
}

#[test]
fn a_stderr_nobody_reads_drops_log_lines_and_never_holds_up_a_request() {
    // Every request to a dead backend logs a warning of ~300 bytes; stderr is a pipe this test
    // never reads, so it fills after ~200 of them. Before the process log was queued, the
    // worker thread then blocked in the write and every later request hung.
    let dead = free_port();
    let b = Brace::start(&format!(
        "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:{dead}\"]\n\
         adaptive = false\n[upstream.u.retry]\nattempts = 0\n[upstream.u.outlier]\nconsecutive_failures = 0\n"
    ));
    // (No adaptive limit: the dead backend's failures would cut it, and on a busy machine a
    // request could be shed, 503, instead of getting its 502: this test is about the log.)
    let statuses = load(&b, 4, 1200, "/");
    assert_eq!(statuses.len(), 1200);
    assert!(statuses.iter().all(|&s| s == 502), "{statuses:?}");
    // Queued, not dropped: 1,200 lines fit the queue (8,192); beyond it they are counted.
    assert!(b
        .metrics()
        .contains("brace_process_log_dropped_lines_total 0"));
}
