//! The runtime model: an immutable [`Snapshot`] built from a validated config, and the one
//! place it is held ([`State::store`]).

pub mod build;
pub mod canary;
pub mod change;
pub mod dns;
pub mod drain;
pub mod fleet;
pub mod maintenance;
pub mod plan;
pub mod publish;
pub mod reload;
pub mod restart;
pub mod snapshot;
pub mod store;
pub mod tasks;

pub use snapshot::Snapshot;
pub use store::State;

/// What a snapshot build draws on besides the config, made at start and kept for the process:
/// the fleet's store and the DNS answers.
#[derive(Clone, Default)]
pub struct Env {
    pub cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
    pub dns: std::sync::Arc<crate::upstream::dns::Resolved>,
}
