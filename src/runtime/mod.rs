//! The runtime model: an immutable [`Snapshot`] built from a validated config, and the one
//! place it is held ([`State::store`]).

pub mod build;
pub mod plan;
pub mod reload;
pub mod snapshot;
pub mod store;
pub mod tasks;

pub use snapshot::Snapshot;
pub use store::State;
