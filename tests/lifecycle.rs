//! pingora's graceful upgrade, with real clients.

mod support;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

#[test]
fn graceful_upgrade_hands_the_listeners_to_a_new_process() {
    let up = Upstream::start("u");
    let old = Brace::start(&simple_config("", &[&up], ""));
    let sock = old.dir.path().join("upgrade.sock");
    // The new process waits for the old one's sockets.
    let mut new = Command::new(BRACE)
        .args(["run", "-c"])
        .arg(&old.config_path)
        .arg("--upgrade")
        .arg("--upgrade-sock")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut old = old;
    assert_eq!(old.get("/").status, 200);
    // Give the new process its socket to wait on, then hand over.
    wait_for(
        "the new process to wait on the upgrade socket",
        Duration::from_secs(10),
        || sock.exists(),
    );
    old.signal("QUIT");
    // Throughout the handover and after it, requests keep being answered. pingora's old
    // process closes a connection it accepted but has not read a request from when it starts
    // shutting down (as nginx closes its idle connections); a client sees an empty reply
    // before any byte of a response and sends again, as HTTP clients do. On a busy machine a
    // request can land in that instant: it is sent once more, never a third time, and no
    // request may get an error status.
    let (mut answered, mut resent) = (0, 0);
    wait_for("the old process to exit", Duration::from_secs(30), || {
        let r = try_get(old.addr(), "/").or_else(|e| {
            resent += 1;
            assert!(e.to_string().contains("bad status line \"\""), "{e}");
            try_get(old.addr(), "/")
        });
        assert_eq!(
            r.unwrap().status,
            200,
            "a request failed during the upgrade"
        );
        answered += 1;
        old.child.try_wait().unwrap().is_some()
    });
    assert!(resent <= 1, "{resent} requests met a closed connection");
    for _ in 0..5 {
        assert_eq!(old.get("/").status, 200, "the new process does not answer");
    }
    assert_eq!(get(old.admin(), "/readyz").status, 200);
    assert!(new.try_wait().unwrap().is_none(), "the new process exited");
    eprintln!(
        "graceful upgrade: {answered} requests answered during the handover ({resent} sent again)"
    );
    let _ = new.kill();
    let _ = new.wait();
}
