//! Configuration: the model ([`Config`]), its layered loading ([`load`]) and the
//! human durations used in it.

mod command;
mod control;
mod duration;
mod env;
mod load;
pub(crate) mod messages;
mod model;
mod observe;
mod read;
mod supervision;

pub use control::{ControlConfig, DEFAULT_LOG_BUFFER};
pub use duration::HumanDuration;
pub use env::check_env_var;
pub use load::{load, ConfigSources, LoadedConfig, DEFAULT_CONFIG_FILE, ENV_CONFIG_PREFIX};
pub use model::{
    BackoffConfig, CommandLine, Config, GroupConfig, LauncherConfig, LogFormat, PlacementConfig,
    RestartPolicy, DEFAULT_HANG_TIMEOUT,
};
pub use observe::{ByteSize, LogFileConfig, MetricsConfig, TimeZone};
pub use read::{MAX_CONFIG_BYTES, MAX_YAML_DEPTH};
pub use supervision::{DependencyCondition, ReadyRule, StopSignal, TcpTarget};
