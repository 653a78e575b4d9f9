//! One key that changes between two configs, with its old and new values as shown to an
//! operator: the unit of a plan (`plan`) and of the restart-only list (`restart`).

use serde::Serialize;

#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct Change {
    pub key: String,
    pub old: String,
    pub new: String,
}
