//! Canary releases: a route sends a share of its requests to another upstream (the canary),
//! steps that share up on a schedule while the canary does as well as the route's own
//! upstream (the baseline) over a sliding window, and pulls it back to 0% at once when it
//! does worse: a higher 5xx share, or a p99 many times the baseline's.
//!
//! A [`Rollout`] is the earned state of one route's canary: its phase and step (changed by
//! [`Rollout::tick`], once a second from `runtime::canary`, and by an operator), the share
//! the request path reads (one atomic), and the [`window::Window`] both sides record into.
//! It is carried across reloads that keep the route's `[route.canary]` unchanged.

pub mod window;

use crate::config::canary::{CanaryConfig, Match};
use crate::config::HashKey;
use pingora::http::RequestHeader;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;
use window::{Side, Summary, Window};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// At `steps[step]`, moving on after `interval` healthy.
    Stepping,
    /// Pulled back to 0% (by the analysis or an operator) until resumed.
    Aborted,
    /// Every step passed (or an operator promoted it): all requests go to the canary.
    Promoted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Stepping => "stepping",
            Phase::Aborted => "aborted",
            Phase::Promoted => "promoted",
        }
    }
}

/// A rollout's state, as the status page and the fleet's store show it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct State {
    pub phase: Phase,
    /// Index into `steps` (while stepping).
    pub step: usize,
    /// When the current step or phase began (brace-clock ms).
    #[serde(skip)]
    pub since_ms: u64,
    /// Why it was aborted or promoted, in words.
    pub reason: String,
}

/// What the analysis found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Too few canary requests in the window to say.
    TooFew,
    Healthy,
    Worse(String),
}

/// A change of phase or step, for events and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub to: State,
    pub percent: u32,
}

/// An operator's command (`POST /api/routes/NAME/canary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Promote,
    Abort,
    Resume,
}

/// The absolute slack under the latency ratio: a canary is not "slower" by less than this
/// (2 ms against 0.5 ms is noise, not a regression).
pub const LATENCY_FLOOR: std::time::Duration = std::time::Duration::from_millis(5);

pub struct Rollout {
    pub config: CanaryConfig,
    state: Mutex<State>,
    /// The canary's share now, in hundredths of a percent (0 to 10,000): what requests read.
    share: AtomicU32,
    pub window: Window,
}

impl Rollout {
    /// A rollout at its first step from `now_ms`.
    pub fn new(config: &CanaryConfig, now_ms: u64) -> Rollout {
        let state = State {
            phase: Phase::Stepping,
            step: 0,
            since_ms: now_ms,
            reason: String::new(),
        };
        let r = Rollout {
            config: config.clone(),
            share: AtomicU32::new(0),
            window: Window::new(config.window),
            state: Mutex::new(state.clone()),
        };
        r.share.store(r.percent_of(&state) * 100, Relaxed);
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().clone()
    }

    /// The canary's percent of the route's requests in `s`.
    pub fn percent_of(&self, s: &State) -> u32 {
        match s.phase {
            Phase::Stepping => self.config.steps.get(s.step).copied().unwrap_or(100),
            Phase::Aborted => 0,
            Phase::Promoted => 100,
        }
    }

    /// The canary's share now, in percent.
    pub fn percent(&self) -> u32 {
        self.share.load(Relaxed) / 100
    }

    /// Which side takes this request. While the canary runs, a request matching the operator's
    /// header or cookie goes to it; others draw against the share (by a hash of the sticky
    /// key when set, so a client stays on its side as the share grows).
    pub fn side(&self, req: &RequestHeader, client_ip: Option<IpAddr>) -> Side {
        let share = self.share.load(Relaxed);
        if share == 0 {
            return Side::Baseline;
        }
        if share >= 10_000 || self.config.matching.iter().any(|m| matches(m, req)) {
            return Side::Canary;
        }
        let draw = match &self.config.sticky {
            None => fastrand::u32(..10_000),
            Some(key) => sticky_draw(key, req, client_ip),
        };
        if draw < share {
            Side::Canary
        } else {
            Side::Baseline
        }
    }

    /// Judges the window at `now_ms`.
    pub fn verdict(&self, now_ms: u64) -> Verdict {
        let base = self.window.summary(Side::Baseline, now_ms);
        let canary = self.window.summary(Side::Canary, now_ms);
        judge(&self.config, &base, &canary)
    }

    /// Once a second: aborts a worse canary, steps a healthy one on after `interval`.
    pub fn tick(&self, now_ms: u64) -> Option<Transition> {
        let mut s = self.lock();
        if s.phase != Phase::Stepping {
            return None;
        }
        let next = match self.verdict(now_ms) {
            Verdict::Worse(why) => State {
                phase: Phase::Aborted,
                step: s.step,
                since_ms: now_ms,
                reason: why,
            },
            Verdict::Healthy if now_ms.saturating_sub(s.since_ms) >= ms(self.config.interval) => {
                let step = s.step + 1;
                let last = step >= self.config.steps.len() || self.config.steps[step] >= 100;
                State {
                    phase: if last {
                        Phase::Promoted
                    } else {
                        Phase::Stepping
                    },
                    step: if last { s.step } else { step },
                    since_ms: now_ms,
                    reason: if last {
                        "every step passed".into()
                    } else {
                        String::new()
                    },
                }
            }
            _ => return None,
        };
        Some(self.set(&mut s, next))
    }

    /// An operator's command; `None` when it changes nothing.
    pub fn act(&self, action: Action, now_ms: u64) -> Option<Transition> {
        let mut s = self.lock();
        let next = match (action, s.phase) {
            (Action::Promote, Phase::Promoted) | (Action::Abort, Phase::Aborted) => return None,
            (Action::Resume, Phase::Stepping) => return None,
            (Action::Promote, _) => State {
                phase: Phase::Promoted,
                step: s.step,
                since_ms: now_ms,
                reason: "promoted by an operator".into(),
            },
            (Action::Abort, _) => State {
                phase: Phase::Aborted,
                step: s.step,
                since_ms: now_ms,
                reason: "aborted by an operator".into(),
            },
            (Action::Resume, _) => {
                // Judged afresh: what made it abort is in the past.
                self.window.clear();
                State {
                    phase: Phase::Stepping,
                    step: 0,
                    since_ms: now_ms,
                    reason: String::new(),
                }
            }
        };
        Some(self.set(&mut s, next))
    }

    /// Adopts a state decided elsewhere (the fleet); `None` when it is the one in force.
    pub fn adopt(&self, mut next: State, now_ms: u64) -> Option<Transition> {
        let mut s = self.lock();
        if s.phase == next.phase && s.step == next.step {
            return None;
        }
        next.step = next.step.min(self.config.steps.len().saturating_sub(1));
        next.since_ms = now_ms;
        Some(self.set(&mut s, next))
    }

    fn set(&self, s: &mut State, next: State) -> Transition {
        let percent = self.percent_of(&next);
        self.share.store(percent * 100, Relaxed);
        *s = next.clone();
        Transition { to: next, percent }
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The analysis: worse when the canary's failure share exceeds the baseline's by more than
/// `error_margin_percent` points, or its p99 is over `latency_ratio` times the baseline's
/// (and over it by [`LATENCY_FLOOR`]); the latency needs `min_requests` on both sides.
pub fn judge(cfg: &CanaryConfig, base: &Summary, canary: &Summary) -> Verdict {
    if canary.requests < u64::from(cfg.min_requests) {
        return Verdict::TooFew;
    }
    let (c, b) = (canary.failure_share() * 100.0, base.failure_share() * 100.0);
    if c > b + f64::from(cfg.error_margin_percent) {
        return Verdict::Worse(format!(
            "5xx share {c:.1}% against the baseline's {b:.1}% (over {} requests)",
            canary.requests
        ));
    }
    let enough_base = base.requests >= u64::from(cfg.min_requests);
    if enough_base
        && canary.p99.as_secs_f64() > cfg.latency_ratio * base.p99.as_secs_f64()
        && canary.p99 > base.p99 + LATENCY_FLOOR
    {
        return Verdict::Worse(format!(
            "p99 {} ms against the baseline's {} ms (over {}x)",
            canary.p99.as_millis(),
            base.p99.as_millis(),
            cfg.latency_ratio
        ));
    }
    Verdict::Healthy
}

fn matches(m: &Match, req: &RequestHeader) -> bool {
    match m {
        Match::Header(name, value) => req
            .headers
            .get_all(name.as_str())
            .iter()
            .any(|v| v.as_bytes() == value.as_bytes()),
        Match::Cookie(name, value) => {
            crate::upstream::sticky::cookie(req, name).is_some_and(|v| v == value)
        }
    }
}

/// A stable draw in 0..10,000 from the sticky key (a request without it draws at random).
fn sticky_draw(key: &HashKey, req: &RequestHeader, client_ip: Option<IpAddr>) -> u32 {
    let k = crate::upstream::select::hash_key(
        req,
        client_ip,
        &crate::config::Balance::ConsistentHash(key.clone()),
    );
    if k.is_empty() {
        return fastrand::u32(..10_000);
    }
    let h = crate::config::fnv1a_hex(&k);
    let n = u64::from_str_radix(&h[..h.len().min(15)], 16).unwrap_or(0);
    (n % 10_000) as u32
}

#[cfg(test)]
mod tests;
