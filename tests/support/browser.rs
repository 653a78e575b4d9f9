//! A real browser for the tests that need one: headless Chromium (installed by the README's
//! test command), bounded in time.

use super::*;

/// The page's DOM after its script ran, as headless Chromium renders it.
pub fn rendered(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("brace-chromium-{}", free_port()));
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium not installed: run the README's test command, which installs it");
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    // Bounded: a Chromium that hangs is killed after 60 s (read_to_string then ends).
    let pid = child.id();
    let guard = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50)); // allowed: watchdog poll inside a deadline
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    stdout.read_to_string(&mut out).unwrap();
    let _ = child.wait();
    let _ = guard.join();
    let _ = std::fs::remove_dir_all(profile);
    out
}
