//! Configuration: the model ([`Config`]), its layered loading ([`load`]) and the
//! human durations used in it.

mod command;
mod duration;
mod load;
pub(crate) mod messages;
mod model;
mod read;

pub use duration::HumanDuration;
pub use load::{load, ConfigSources, LoadedConfig, DEFAULT_CONFIG_FILE, ENV_CONFIG_PREFIX};
pub use model::{
    BackoffConfig, CommandLine, Config, GroupConfig, LauncherConfig, LogFormat, PlacementConfig,
    RestartPolicy,
};
pub use read::{MAX_CONFIG_BYTES, MAX_YAML_DEPTH};
