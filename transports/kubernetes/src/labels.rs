//! Label and annotation keys distarch puts on the objects it creates.

/// Run id (`kubectl get pods -l distarch.run=<id>`).
pub const RUN: &str = "distarch.run";
/// Group name.
pub const GROUP: &str = "distarch.group";
/// Global instance id.
pub const ID: &str = "distarch.id";
/// Restart count of the instance start.
pub const RESTART: &str = "distarch.restart";
/// The master's identity keys (on the owner object: all in its data; host, pid and
/// start time also as labels), the same keys as on docker containers.
pub use distarch_core::owner::{MASTER_HOST, MASTER_PID, MASTER_START};
/// Recommended label: the application name (`distarch`).
pub const NAME: &str = "app.kubernetes.io/name";
/// Recommended label: the instance of the application (the run id).
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// Recommended label: the component (the group, or `run-owner`).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// Recommended label: the tool managing the object (`distarch`).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGER: &str = "distarch";
/// Value of [`COMPONENT`] on the owner object.
pub const COMPONENT_OWNER: &str = "run-owner";
/// Annotation: the group name, unsanitized.
pub const ANNOTATION_GROUP: &str = "distarch.io/group";
/// Annotation: the placement name.
pub const ANNOTATION_PLACEMENT: &str = "distarch.io/placement";

/// Label selector of everything distarch manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// Label selector of the pods of one run.
pub fn run_selector(run_id: &str) -> String {
    format!("{RUN}={}", crate::settings::to_label_value(run_id))
}
