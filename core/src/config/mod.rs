//! Configuration: the model ([`Config`]), its layered loading ([`load`]) and the
//! human durations used in it.

mod control;
mod duration;
mod load;
mod model;

pub use control::{ControlConfig, DEFAULT_LOG_BUFFER};
pub use duration::HumanDuration;
pub use load::{load, ConfigSources, LoadedConfig, DEFAULT_CONFIG_FILE, ENV_CONFIG_PREFIX};
pub use model::{
    BackoffConfig, CommandLine, Config, GroupConfig, LauncherConfig, LogFormat, PlacementConfig,
    RestartPolicy,
};
