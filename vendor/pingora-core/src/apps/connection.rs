// brace: what a server application knows of one accepted connection beyond its stream:
// when it was accepted (the request-header deadline of its first request counts from then)
// and a handle through which the application can close it while it waits idle between
// requests (to admit a new connection at a connection limit, as nginx does).

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use futures::task::AtomicWaker;
use std::sync::atomic::AtomicBool;

/// What [`super::ServerApp::admit`] returns: held for a connection's whole life.
pub struct ConnectionGuard {
    _hold: Box<dyn Any + Send>,
    idle: Option<Arc<IdleConnection>>,
}

impl ConnectionGuard {
    /// A guard holding `hold` (dropped when the connection closes).
    pub fn new(hold: impl Any + Send) -> ConnectionGuard {
        ConnectionGuard {
            _hold: Box::new(hold),
            idle: None,
        }
    }

    pub(crate) fn idle(&self) -> Option<Arc<IdleConnection>> {
        self.idle.clone()
    }

    /// Lets the application close this connection through `idle` while it waits idle.
    pub fn with_idle(mut self, idle: Arc<IdleConnection>) -> ConnectionGuard {
        self.idle = Some(idle);
        self
    }
}

/// Order of going idle, shared by every connection: a smaller number went idle earlier.
static IDLE_ORDER: AtomicU64 = AtomicU64::new(1);

/// One connection's idle state. It is idle while an HTTP/1 connection waits for the next
/// request on a kept-alive connection, or an HTTP/2 connection has no open stream.
#[derive(Default)]
pub struct IdleConnection {
    /// When it went idle, in `IDLE_ORDER`; 0 while busy (or once asked to close).
    since: AtomicU64,
    /// Asked to close; stays set, so a connection asked while it turned busy closes at its
    /// next idle wait.
    close: AtomicBool,
    /// The idle wait to wake. An atomic waker rather than a `Notify`: registering costs a
    /// few atomic operations, and every keep-alive wait registers.
    waker: AtomicWaker,
}

impl IdleConnection {
    /// When it went idle (smaller: longer ago); `None` while it is busy.
    pub fn idle_since(&self) -> Option<u64> {
        match self.since.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Asks the connection to close if it is idle; `false` (nothing asked) when it is busy.
    /// A connection that turns busy at the same moment closes at its next idle wait.
    pub fn close_if_idle(&self) -> bool {
        if self.since.swap(0, Ordering::Relaxed) == 0 {
            return false;
        }
        self.close.store(true, Ordering::Release);
        self.waker.wake();
        true
    }

    /// Marks it idle, as pingora does when it starts waiting (for applications' tests).
    #[doc(hidden)]
    pub fn mark_idle_for_test(&self) {
        self.enter();
    }

    pub(crate) fn enter(&self) {
        let n = IDLE_ORDER.fetch_add(1, Ordering::Relaxed);
        self.since.store(n, Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        self.since.store(0, Ordering::Relaxed);
    }

    /// Resolves when the application asked this connection to close.
    pub(crate) async fn closed(&self) {
        std::future::poll_fn(|cx| {
            if self.close.load(Ordering::Acquire) {
                return std::task::Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // Asked between the first look and the registration: seen now.
            if self.close.load(Ordering::Acquire) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }
}

/// The connection a task serves.
#[derive(Clone)]
pub(crate) struct Scope {
    pub accepted: Instant,
    pub idle: Option<Arc<IdleConnection>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `fut` (the task serving one connection) with its [`Scope`].
pub(crate) async fn scoped<F: std::future::Future>(
    idle: Option<Arc<IdleConnection>>,
    fut: F,
) -> F::Output {
    let scope = Scope {
        accepted: Instant::now(),
        idle,
    };
    SCOPE.scope(scope, fut).await
}

/// The connection this task serves, if it was accepted by a listening service.
pub(crate) fn current() -> Option<Scope> {
    SCOPE.try_with(Scope::clone).ok()
}
