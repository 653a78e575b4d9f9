//! Traffic mirroring (`[[route]] mirror`): a share of a route's requests is copied to a shadow
//! upstream after the real request has ended, and the copy's answer is thrown away. The
//! client never waits for a copy: it is sent from its own task once the request is over, at
//! most [`MAX_IN_FLIGHT`] copies per route are out at once (beyond that a copy is dropped and
//! counted), each is bounded by the shadow upstream's timeouts, and a body is copied only up
//! to `max_body` (a larger or unfinished one is not copied). Copies never touch any pool's
//! health, breakers, ejection, limits or request metrics: they have their own family,
//! `brace_mirror_requests_total`.

use crate::config::mirror::MirrorConfig;
use crate::upstream::pool::Pool;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Copies of one route out at once, at most.
pub const MAX_IN_FLIGHT: usize = 32;

crate::label_set! {
    /// The `result` label of `brace_mirror_requests_total`.
    pub enum MirrorResult {
        /// The shadow answered (whatever its status).
        Answered => "answered",
        /// The copy could not be delivered or was not answered within the shadow's timeouts.
        Failed => "failed",
        /// Not sent: `MAX_IN_FLIGHT` copies were already out.
        Dropped => "dropped",
        /// Not sent: its body was over `max_body`, or the client never finished it.
        Skipped => "skipped",
    }
}

pub struct Mirror {
    pub config: MirrorConfig,
    pub pool: Arc<Pool>,
    permits: Arc<Semaphore>,
    results: crate::metrics::ByLabel<MirrorResult>,
}

/// A request being copied: its head as sent upstream and its body so far.
pub struct Copy {
    head: Option<Box<RequestHeader>>,
    body: BytesMut,
    too_large: bool,
}

impl Mirror {
    pub fn new(
        config: &MirrorConfig,
        pool: Arc<Pool>,
        results: crate::metrics::ByLabel<MirrorResult>,
    ) -> Mirror {
        Mirror {
            config: config.clone(),
            pool,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            results,
        }
    }

    /// Whether this request is copied (`percent`), at its start.
    pub fn sample(&self) -> Option<Copy> {
        (self.config.percent >= 100 || fastrand::u32(..100) < self.config.percent).then(|| Copy {
            head: None,
            body: BytesMut::new(),
            too_large: false,
        })
    }

    /// The request ended (`body_done`: its body arrived whole): sends the copy from its own
    /// task, or counts why not.
    pub fn send(&self, copy: Copy, body_done: bool) {
        let Some(head) = copy.head else {
            return; // never sent upstream (refused, answered from the cache): nothing to copy
        };
        if copy.too_large || !body_done {
            self.results.get(MirrorResult::Skipped).inc();
            return;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.results.get(MirrorResult::Dropped).inc();
            return;
        };
        let (pool, body) = (self.pool.clone(), copy.body.freeze());
        let (answered, failed) = (
            self.results.get(MirrorResult::Answered).clone(),
            self.results.get(MirrorResult::Failed).clone(),
        );
        tokio::spawn(async move {
            let ok = deliver(&pool, head, body).await;
            (if ok { answered } else { failed }).inc();
            drop(permit);
        });
    }
}

impl Copy {
    /// The request head as sent to the real upstream (the first attempt's).
    pub fn head(&mut self, req: &RequestHeader) {
        if self.head.is_none() {
            self.head = Some(Box::new(req.clone()));
        }
    }

    /// A chunk of the request body, kept while the whole stays within `max`.
    pub fn chunk(&mut self, data: &Bytes, max: u64) {
        if self.too_large {
            return;
        }
        if (self.body.len() + data.len()) as u64 > max {
            self.too_large = true;
            self.body = BytesMut::new();
            return;
        }
        self.body.extend_from_slice(data);
    }
}

/// Sends one copy to a backend of the shadow pool and reads its answer to the end; true when
/// it answered. Nothing is recorded on the pool: its health is its checks' business.
async fn deliver(pool: &Pool, mut head: Box<RequestHeader>, body: Bytes) -> bool {
    let now = crate::clock::now_ms();
    let Some(i) = pool.pick(&[], &[], now) else {
        return false;
    };
    let mut peer = pool.peer(i);
    let c = &pool.config;
    peer.options.connection_timeout = Some(c.connect_timeout);
    peer.options.read_timeout = Some(c.read_timeout);
    peer.options.write_timeout = Some(c.read_timeout);
    // The whole exchange, bounded: a shadow that trickles cannot hold a permit for long.
    let limit = c.connect_timeout + c.read_timeout.min(Duration::from_secs(30));
    let exchange = async {
        let connector = crate::upstream::health::connector();
        let (mut session, reused) = connector.get_http_session(&peer).await.ok()?;
        head.remove_header(&http::header::TRANSFER_ENCODING);
        if matches!(
            session,
            pingora::protocols::http::client::HttpSession::H1(_)
        ) {
            head.set_version(http::Version::HTTP_11);
        }
        if !body.is_empty() || head.headers.contains_key(http::header::CONTENT_LENGTH) {
            let _ = head.insert_header(http::header::CONTENT_LENGTH, body.len());
        }
        session.write_request_header(head).await.ok()?;
        if !body.is_empty() {
            session.write_request_body(body, true).await.ok()?;
        }
        session.finish_request_body().await.ok()?;
        session.read_response_header().await.ok()?;
        while session.read_response_body().await.ok()?.is_some() {}
        connector
            .release_http_session(session, &peer, Some(c.keepalive_timeout))
            .await;
        let _ = reused;
        Some(())
    };
    matches!(tokio::time::timeout(limit, exchange).await, Ok(Some(())))
}
