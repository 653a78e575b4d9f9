//! How late this worker thread's event loop runs: the time a woken task waits for the tasks
//! ahead of it. A latency sample taken by a busy brace includes that wait, which is brace's
//! own queueing, not the backend's; the adaptive limit (`upstream::concurrency`) takes it out,
//! so a proxy short of CPU does not mistake itself for a congested backend and throttle it.
//!
//! One probe task per worker thread (started by the first request the thread handles): every
//! 10 ms it yields and measures how long it waited to run again, a full pass over the tasks
//! ready on that thread. brace's worker threads each run their own runtime
//! (`work_stealing: false`), so a thread's probe and its requests share one run queue.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// The pass time, µs, smoothed (1/4 of each new reading).
    static LAG_US: Cell<u64> = const { Cell::new(0) };
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// The current thread's event-loop lag in µs (0 until its probe has run).
pub fn lag_us() -> u64 {
    LAG_US.with(Cell::get)
}

/// Starts this thread's probe if it has none (call from within the runtime).
pub fn ensure_probe() {
    PROBING.with(|p| {
        if !p.get() && tokio::runtime::Handle::try_current().is_ok() {
            p.set(true);
            tokio::spawn(probe());
        }
    });
}

async fn probe() {
    loop {
        // A pacing timer, not synchronisation: a reading every 10 ms.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let t = Instant::now();
        tokio::task::yield_now().await;
        let us = t.elapsed().as_micros() as u64;
        LAG_US.with(|l| l.set((l.get() * 3 + us) / 4));
    }
}
