//! What travels between the master and its clients: request and answer bodies
//! (JSON), and the run descriptor written next to each socket.

use distarch_core::{Config, Selector};
use serde::{Deserialize, Serialize};

pub use distarch_core::jobs::JobStats;
pub use distarch_core::{InstanceSnapshot, InstanceState, ReloadOutcome, ScaleOutcome};

/// Version prefix of every path of the API.
pub const API_PREFIX: &str = "/v1";

/// The small file that lets clients find a run: `<run id>.json` beside
/// `<run id>.sock` in the runtime directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDescriptor {
    /// Run id.
    pub run_id: String,
    /// Pid of the master.
    pub pid: u32,
    /// When the run started (RFC 3339).
    pub started: String,
    /// The config file the run was started from, absolute, if any.
    pub config: Option<String>,
    /// A name for the run (`launcher.name`-like: the config file's stem, or the
    /// directory's name).
    pub name: String,
    /// The master's working directory.
    pub cwd: String,
    /// The TCP address the API is also served on, if any.
    pub listen: Option<String>,
    /// Whether the run is in service mode.
    pub service: bool,
}

/// `GET /v1/run`: who the run is and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    /// The descriptor.
    #[serde(flatten)]
    pub descriptor: RunDescriptor,
    /// Instances the run has (in any state).
    pub instances: usize,
    /// Instances running now (starting, running, ready, stopping).
    pub running: usize,
}

/// `POST /v1/stop` and `POST /v1/restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetsRequest {
    /// Groups and ids; empty means the whole run.
    #[serde(default)]
    pub targets: Vec<Selector>,
    /// Restart one at a time (restart only).
    #[serde(default)]
    pub rolling: bool,
}

/// `POST /v1/suspend` and `POST /v1/resume`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsRequest {
    /// Group names.
    pub groups: Vec<String>,
}

/// `POST /v1/scale`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// Group name.
    pub group: String,
    /// Placement name (needed when the group has several).
    #[serde(default)]
    pub placement: Option<String>,
    /// Instances wanted.
    pub count: u64,
}

/// `POST /v1/reload`: a whole new configuration, or none to have the master read
/// its own configuration sources again (like SIGHUP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadRequest {
    /// The new configuration.
    #[serde(default)]
    pub config: Option<Config>,
}

/// The answer of commands that act on instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsAnswer {
    /// Ids acted on.
    pub ids: Vec<u64>,
}

/// The answer to a refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// What went wrong, for a human.
    pub error: String,
}
