//! State transitions an operator acts on (health, ejection, breaker, reload, rate-limit key
//! table overflow): each is one structured log event with its reason, at the level that
//! matches what the operator must do, and is kept in a bounded in-memory ring that
//! `GET /api/events` and the status page read.
//!
//! Transitions are rare (never one per request), so the ring is a `Mutex<VecDeque>`: a
//! push takes the lock for a few nanoseconds, and nothing awaits while holding it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many events the ring keeps; older ones are dropped first (the log has them all).
pub const CAPACITY: usize = 512;

/// What changed. `as_str` is the `event` field of the log line and the `kind` in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Health,
    Ejection,
    Breaker,
    Reload,
    RateLimit,
    /// A pool starts or stops shedding (`upstream::admission`).
    Shedding,
    /// An operator drains or undrains a backend (`runtime::drain`).
    Drain,
    /// A backend asked for a pause with `Retry-After` (`upstream::pause`).
    Pause,
    /// A canary rollout stepped, was aborted, promoted or resumed (`runtime::canary`).
    Canary,
    /// A route went into maintenance or out of it (`runtime::maintenance`).
    Maintenance,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Health => "health",
            Kind::Ejection => "ejection",
            Kind::Breaker => "breaker",
            Kind::Reload => "reload",
            Kind::RateLimit => "rate_limit",
            Kind::Shedding => "shedding",
            Kind::Drain => "drain",
            Kind::Pause => "pause",
            Kind::Canary => "canary",
            Kind::Maintenance => "maintenance",
        }
    }
}

/// What the operator must do: `Info` nothing (a recovery, a reload applied), `Warn` look
/// soon (a backend lost, a breaker open), `Error` act (a reload refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One transition. `subject` names what changed (`upstream`, `backend`, `limit`, `trigger`);
/// `from`/`to` are the states; `reason` says why, in words.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    /// Increases by one per event for the life of the process: `?since=` pages with it.
    pub seq: u64,
    pub at_unix_ms: u64,
    pub kind: Kind,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub reason: String,
    /// The log line's message.
    pub message: String,
}

impl Event {
    /// An event of `kind` to state `to`; fill in the rest with the builder methods.
    pub fn new(kind: Kind, level: Level, to: &'static str, reason: impl Into<String>) -> Event {
        Event {
            seq: 0,
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            kind,
            level,
            upstream: None,
            backend: None,
            limit: None,
            from: None,
            to,
            reason: reason.into(),
            message: String::new(),
        }
    }
    pub fn backend(mut self, upstream: &str, backend: &str) -> Event {
        self.upstream = Some(upstream.to_owned());
        self.backend = Some(backend.to_owned());
        self
    }
    pub fn upstream(mut self, upstream: &str) -> Event {
        self.upstream = Some(upstream.to_owned());
        self
    }
    pub fn limit(mut self, limit: &str) -> Event {
        self.limit = Some(limit.to_owned());
        self
    }
    pub fn from_state(mut self, from: &'static str) -> Event {
        self.from = Some(from);
        self
    }
    pub fn message(mut self, message: impl Into<String>) -> Event {
        self.message = message.into();
        self
    }
}

#[derive(Default)]
pub struct Events {
    ring: Mutex<(u64, VecDeque<Event>)>,
}

impl Events {
    /// Logs `e` as one structured event and keeps it in the ring.
    pub fn record(&self, mut e: Event) {
        log(&e);
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        let (seq, events) = &mut *ring;
        *seq += 1;
        e.seq = *seq;
        if events.len() == CAPACITY {
            events.pop_front();
        }
        events.push_back(e);
    }

    /// Events with `seq > since`, oldest first, at most `limit` of them (the newest).
    pub fn since(&self, since: u64, limit: usize) -> Vec<Event> {
        let Ok(ring) = self.ring.lock() else {
            return Vec::new();
        };
        let newer: Vec<&Event> = ring.1.iter().filter(|e| e.seq > since).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }
}

fn log(e: &Event) {
    // An absent field (`None`) is left out of the line.
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                event = e.kind.as_str(),
                upstream = e.upstream.as_deref(),
                backend = e.backend.as_deref(),
                limit = e.limit.as_deref(),
                from = e.from,
                to = e.to,
                reason = %e.reason,
                "{}",
                e.message
            )
        };
    }
    match e.level {
        Level::Info => emit!(info),
        Level::Warn => emit!(warn),
        Level::Error => emit!(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_and_pages_by_sequence() {
        let events = Events::default();
        for i in 0..CAPACITY + 10 {
            events.record(Event::new(
                Kind::Health,
                Level::Info,
                "healthy",
                format!("{i}"),
            ));
        }
        let all = events.since(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].seq, 11, "the ten oldest were dropped");
        assert_eq!(all.last().map(|e| e.seq), Some((CAPACITY + 10) as u64));
        let tail = events.since(519, usize::MAX);
        assert_eq!(
            tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [520, 521, 522]
        );
        let newest_two = events.since(0, 2);
        assert_eq!(
            newest_two.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [521, 522]
        );
    }

    #[test]
    fn an_event_says_what_moved_where_and_leaves_absent_fields_out() {
        let e = Event::new(Kind::Shedding, Level::Warn, "shedding", "queue_full")
            .upstream("app")
            .from_state("admitting")
            .message("upstream app is shedding");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["upstream"], "app");
        assert_eq!(json["to"], "shedding");
        assert_eq!(json["from"], "admitting");
        assert!(json.get("backend").is_none() && json.get("limit").is_none());
        let events = Events::default();
        events.record(e);
        events.record(Event::new(
            Kind::Shedding,
            Level::Info,
            "admitting",
            "drained",
        ));
        let seen = events.since(0, 10);
        assert_eq!(seen.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(events.since(1, 10)[0].to, "admitting");
    }
}
