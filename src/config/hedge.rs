//! The typed `[[route]] hedge`: a second attempt on another backend for a request the first
//! has not answered in time (`upstream::hedge`, `proxy::hedge`).

use std::time::Duration;

/// When a hedge goes out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeAfter {
    /// When the pool's measured time to answer at this percentile (in tenths: 950 = p95) has
    /// passed.
    Percentile(u16),
    /// After a fixed delay.
    Fixed(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HedgeConfig {
    pub after: HedgeAfter,
    /// Hedges add at most this share of the route's requests to the pool (1-100).
    pub max_extra_percent: u32,
}

/// `max_extra_percent`'s default.
pub const DEFAULT_MAX_EXTRA_PERCENT: u32 = 5;
