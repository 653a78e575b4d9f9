//! The typed `[[route]] mirror` (`mirror`).

#[derive(Debug, Clone, PartialEq)]
pub struct MirrorConfig {
    /// The shadow upstream the copies go to.
    pub upstream: String,
    /// The share of the route's requests copied (1 to 100).
    pub percent: u32,
    /// A request whose body is larger is not copied.
    pub max_body: u64,
}

pub const DEFAULT_PERCENT: u32 = 100;
pub const DEFAULT_MAX_BODY: u64 = 64 * 1024;
/// The largest `max_body`: a copy's body is held in memory until the request ends.
pub const MAX_BODY_LIMIT: u64 = 1024 * 1024;
