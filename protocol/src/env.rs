//! The environment variables that tell a worker who it is.

/// Prefix of every variable distarch sets for a worker.
pub const ENV_PREFIX: &str = "DISTARCH_";

/// Names of the variables a worker is given, as constants.
pub mod env_vars {
    /// Protocol version spoken by the master (`1`).
    pub const PROTOCOL: &str = "DISTARCH_PROTOCOL";
    /// Short random id of the run.
    pub const RUN_ID: &str = "DISTARCH_RUN_ID";
    /// Instance id: 1-based, unique across the whole run.
    pub const ID: &str = "DISTARCH_ID";
    /// Name of the instance's group.
    pub const GROUP: &str = "DISTARCH_GROUP";
    /// 1-based index of the instance within its group.
    pub const GROUP_ID: &str = "DISTARCH_GROUP_ID";
    /// Number of instances in the group.
    pub const GROUP_COUNT: &str = "DISTARCH_GROUP_COUNT";
    /// Label of where the instance runs (a host name, `localhost`, a container engine).
    pub const HOST: &str = "DISTARCH_HOST";
    /// How many times this instance was restarted before (0 on the first start).
    pub const RESTART: &str = "DISTARCH_RESTART";
    /// The group's params, as a JSON object.
    pub const PARAMS: &str = "DISTARCH_PARAMS";
}
