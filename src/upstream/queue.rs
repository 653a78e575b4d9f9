//! A pool's wait queue: requests that found every backend at its adaptive limit wait here,
//! briefly, served by priority (critical, then normal, then sheddable; first come first served
//! within one). A full queue refuses a newcomer at once, unless it outranks someone waiting:
//! then the newest of the lowest priority is shed in its place. When room appears (an attempt
//! ends, a limit grows) the first waiter is woken to choose a backend.
//!
//! The request path reads one atomic (`len`) when nobody waits; the lock is taken only by
//! requests that wait and by attempts that end while someone does.

use crate::config::Priority;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

crate::label_set! {
    /// Why a request was shed, as the `reason` label of `brace_requests_shed_total`.
    pub enum ShedReason {
        /// The queue was full of requests of its priority or higher.
        QueueFull => "queue_full",
        /// No room appeared within `queue_timeout`.
        QueueTimeout => "queue_timeout",
        /// A request of higher priority took its place in a full queue.
        Evicted => "evicted",
    }
}

/// What a waiter is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Room may have appeared: choose a backend.
    Try,
    /// Someone of higher priority took this place: shed.
    Evicted,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Wake>,
}

#[derive(Default)]
pub struct Queue {
    /// When a request of this pool was last shed (brace's clock, ms; 0 = never).
    pub last_shed_ms: AtomicU64,
    /// The pool is in its shedding state (reported once on entry and once on exit).
    pub shedding: std::sync::atomic::AtomicBool,
    len: AtomicUsize,
    next_id: AtomicU64,
    /// Waiters by priority rank.
    lanes: Mutex<[VecDeque<Waiter>; 3]>,
}

/// A place in the queue; leaving it (dropped) removes it if it is still there.
pub struct Ticket {
    queue: Arc<Queue>,
    id: u64,
    rank: usize,
    pub rx: oneshot::Receiver<Wake>,
}

impl Queue {
    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Joins the queue (at the front of its priority when `front`, for a waiter that was
    /// woken and lost the race for the room). `None` when the queue holds `max` and nobody of
    /// lower priority can be shed in its place.
    pub fn join(self: &Arc<Self>, priority: Priority, max: usize, front: bool) -> Option<Ticket> {
        let rank = priority.rank();
        let mut lanes = self.lanes.lock().ok()?;
        let waiting: usize = lanes.iter().map(VecDeque::len).sum();
        if waiting >= max.max(1) {
            // The newest of the lowest priority below ours gives up its place.
            let lowest = (rank + 1..3).rev().find(|&r| !lanes[r].is_empty())?;
            if let Some(w) = lanes[lowest].pop_back() {
                let _ = w.tx.send(Wake::Evicted);
                self.len.fetch_sub(1, Relaxed);
            }
        }
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Relaxed);
        if front {
            lanes[rank].push_front(Waiter { id, tx });
        } else {
            lanes[rank].push_back(Waiter { id, tx });
        }
        self.len.fetch_add(1, Relaxed);
        Some(Ticket {
            queue: self.clone(),
            id,
            rank,
            rx,
        })
    }

    /// Room appeared: wakes the first waiter still waiting. A no-op when nobody waits.
    pub fn release(&self) {
        if self.is_empty() {
            return;
        }
        let Ok(mut lanes) = self.lanes.lock() else {
            return;
        };
        for lane in lanes.iter_mut() {
            while let Some(w) = lane.pop_front() {
                self.len.fetch_sub(1, Relaxed);
                if w.tx.send(Wake::Try).is_ok() {
                    return;
                }
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Ok(mut lanes) = self.queue.lanes.lock() else {
            return;
        };
        let lane = &mut lanes[self.rank];
        if let Some(i) = lane.iter().position(|w| w.id == self.id) {
            lane.remove(i);
            self.queue.len.fetch_sub(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn woken(t: &mut Ticket) -> Option<Wake> {
        t.rx.try_recv().ok()
    }

    #[test]
    fn served_by_priority_then_arrival() {
        let q = Arc::new(Queue::default());
        let mut s = q.join(Priority::Sheddable, 10, false).unwrap();
        let mut n1 = q.join(Priority::Normal, 10, false).unwrap();
        let mut n2 = q.join(Priority::Normal, 10, false).unwrap();
        let mut c = q.join(Priority::Critical, 10, false).unwrap();
        assert_eq!(q.len(), 4);
        q.release();
        assert_eq!(woken(&mut c), Some(Wake::Try));
        q.release();
        assert_eq!(woken(&mut n1), Some(Wake::Try));
        assert_eq!(woken(&mut n2), None);
        q.release();
        q.release();
        assert_eq!(woken(&mut n2), Some(Wake::Try));
        assert_eq!(woken(&mut s), Some(Wake::Try));
        assert!(q.is_empty());
        q.release(); // nobody waits: nothing happens
    }

    #[test]
    fn a_full_queue_sheds_the_lowest_priority_first() {
        let q = Arc::new(Queue::default());
        let mut s = q.join(Priority::Sheddable, 2, false).unwrap();
        let _n = q.join(Priority::Normal, 2, false).unwrap();
        // Full: a sheddable newcomer is refused, a normal one takes the sheddable's place.
        assert!(q.join(Priority::Sheddable, 2, false).is_none());
        let _n2 = q.join(Priority::Normal, 2, false).unwrap();
        assert_eq!(woken(&mut s), Some(Wake::Evicted));
        assert_eq!(q.len(), 2);
        // Only normals left: another normal is refused, a critical evicts the newest normal.
        assert!(q.join(Priority::Normal, 2, false).is_none());
        let _c = q.join(Priority::Critical, 2, false).unwrap();
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_waiter_that_leaves_is_skipped_and_uncounted() {
        let q = Arc::new(Queue::default());
        let gone = q.join(Priority::Normal, 10, false).unwrap();
        let mut stays = q.join(Priority::Normal, 10, false).unwrap();
        drop(gone);
        assert_eq!(q.len(), 1);
        q.release();
        assert_eq!(woken(&mut stays), Some(Wake::Try));
        drop(stays);
        assert!(q.is_empty());
    }
}
