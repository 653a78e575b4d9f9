//! The open client connections, as far as `max_connections` needs them: each one's idle
//! handle (pingora's `IdleConnection`), so that at the cap brace closes the connection that
//! has been idle longest to admit a new one, as nginx does with its keep-alive connections.
//! Idle means an HTTP/1 connection waiting for its next request, or an HTTP/2 connection
//! with no open stream; a connection that has not finished its first request is never
//! idle, and is bounded by `client_header_timeout` from accept instead.
//!
//! The registry is locked once per accepted and per closed connection, never per request;
//! the scan for the oldest idle one runs only at the cap.

use pingora::apps::IdleConnection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<IdleConnection>>>,
}

/// A connection's place in the registry, given up when it closes.
pub struct Entry {
    registry: Arc<Registry>,
    id: u64,
}

impl Registry {
    /// Registers a connection; the entry removes it when dropped.
    pub fn add(self: &Arc<Self>, idle: Arc<IdleConnection>) -> Entry {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, idle);
        Entry {
            registry: self.clone(),
            id,
        }
    }

    /// Asks the connection idle longest to close; `false` when none is idle.
    pub fn close_oldest_idle(&self) -> bool {
        let open = self.lock();
        let mut by_age: Vec<&Arc<IdleConnection>> =
            open.values().filter(|c| c.idle_since().is_some()).collect();
        by_age.sort_unstable_by_key(|c| c.idle_since());
        // One that went busy between the look and the ask declines; try the next.
        by_age.into_iter().any(|c| c.close_if_idle())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<IdleConnection>>> {
        // A panic elsewhere while holding it leaves the map itself intact.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_idle_longest_is_asked_to_close_and_busy_ones_never() {
        let r = Arc::new(Registry::default());
        let conns: Vec<Arc<IdleConnection>> = (0..3).map(|_| Arc::default()).collect();
        let _entries: Vec<Entry> = conns.iter().map(|c| r.add(c.clone())).collect();
        assert!(!r.close_oldest_idle(), "none idle: nothing to close");
        // pingora marks them idle; the second went idle first.
        conns[1].mark_idle_for_test();
        conns[2].mark_idle_for_test();
        assert!(r.close_oldest_idle());
        assert_eq!(conns[1].idle_since(), None, "the oldest was asked");
        assert!(conns[2].idle_since().is_some());
        assert!(r.close_oldest_idle());
        assert!(!r.close_oldest_idle(), "none left idle");
        drop(_entries);
        assert!(r.lock().is_empty());
    }
}
