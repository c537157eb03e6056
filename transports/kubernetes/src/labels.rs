//! Label and annotation keys distarch puts on the objects it creates.

/// Run id (`kubectl get pods -l distarch.run=<id>`).
pub const RUN: &str = "distarch.run";
/// Group name.
pub const GROUP: &str = "distarch.group";
/// Global instance id.
pub const ID: &str = "distarch.id";
/// Restart count of the instance start.
pub const RESTART: &str = "distarch.restart";
/// Host of the master that owns a run (on the owner object).
pub const MASTER_HOST: &str = "distarch.master-host";
/// Pid of the master that owns a run (on the owner object).
pub const MASTER_PID: &str = "distarch.master-pid";
/// Start time of the master process, clock ticks since boot (on the owner object).
pub const MASTER_START: &str = "distarch.master-start";
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
