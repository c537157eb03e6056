//! The labels distarch puts on its containers, with the identity of the master
//! (core's [`MasterIdentity`], under its `distarch.master.*` keys) that lets `gc`
//! tell whether a container's run is still alive.

use std::collections::HashMap;

/// Run id of the container (`docker ps --filter label=distarch.run=ID`).
pub const RUN: &str = "distarch.run";
/// Group name.
pub const GROUP: &str = "distarch.group";
/// Placement name.
pub const PLACEMENT: &str = "distarch.placement";
/// Global instance id.
pub const ID: &str = "distarch.id";
/// Restart count of this start.
pub const RESTART: &str = "distarch.restart";
/// `true` when the master removes the container after it ended.
pub const AUTO_REMOVE: &str = "distarch.auto-remove";
pub use distarch_core::owner::{
    MasterIdentity, MasterState, MASTER_BOOT, MASTER_HOST, MASTER_PID, MASTER_PIDNS, MASTER_START,
};

/// Reads a master's identity back from container labels.
pub fn master_from_labels(labels: &HashMap<String, String>) -> Option<MasterIdentity> {
    MasterIdentity::from_entries(|k| labels.get(k).map(String::as_str))
}
