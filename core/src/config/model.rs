//! The configuration model: what `distarch.toml` (or YAML/JSON, env, flags) holds.

use super::duration::HumanDuration;
use super::supervision::{DependencyCondition, ReadyRule, StopSignal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole configuration of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Launcher-wide settings.
    #[serde(default)]
    pub launcher: LauncherConfig,
    /// The groups, by name.
    #[serde(default)]
    pub groups: BTreeMap<String, GroupConfig>,
}

/// Launcher-wide settings (`[launcher]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LauncherConfig {
    /// No output at all from any worker for this long: stop everything (0 = off).
    pub timeout: HumanDuration,
    /// Stop everything cleanly after this long (0 = unlimited).
    pub max_running_time: HumanDuration,
    /// How long a worker has to exit after the `stop` frame before it is terminated.
    pub stop_grace: HumanDuration,
    /// How long a worker has to exit after being terminated before it is killed.
    pub kill_after: HumanDuration,
    /// Longest line read from a worker; longer lines are cut and flagged.
    pub max_line_bytes: usize,
    /// Format of the master's output: `text` or `json`.
    pub log_format: LogFormat,
    /// Least severe level shown: `trace`, `debug` (default), `info`, `warn`, `error`.
    pub log_level: distarch_protocol::Level,
    /// When set, every instance must be ready within this long after the run
    /// starts, or the run is stopped and names the instances that never became
    /// ready (0 = do not wait, the default).
    pub ready_timeout: HumanDuration,
    /// Service mode: the run never ends because its instances ended (only a stop
    /// request, SIGINT/SIGTERM or the control API end it), and `restart` defaults
    /// to `always`.
    pub service: bool,
    /// The control plane (`[launcher.control]`).
    pub control: super::control::ControlConfig,
    /// Text lines on standard output start with their RFC 3339 time (`--timestamps`).
    pub timestamps: bool,
    /// Time zone of timestamps in text output (standard output and files): `utc`
    /// (default) or `local`.
    pub time_zone: super::observe::TimeZone,
    /// Also write the whole log to this file (`[launcher.log_file]`), with rotation.
    pub log_file: Option<super::observe::LogFileConfig>,
    /// The Prometheus endpoint (`[launcher.metrics]`).
    pub metrics: super::observe::MetricsConfig,
}

impl Default for LauncherConfig {
    fn default() -> Self {
        LauncherConfig {
            timeout: HumanDuration::default(),
            max_running_time: HumanDuration::default(),
            stop_grace: HumanDuration::from_secs(10),
            kill_after: HumanDuration::from_secs(5),
            max_line_bytes: distarch_protocol::DEFAULT_MAX_LINE,
            log_format: LogFormat::Text,
            log_level: distarch_protocol::Level::Debug,
            ready_timeout: HumanDuration::default(),
            service: false,
            control: super::control::ControlConfig::default(),
            timestamps: false,
            time_zone: super::observe::TimeZone::Utc,
            log_file: None,
            metrics: super::observe::MetricsConfig::default(),
        }
    }
}

/// Format of the master's log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[group] [host] [id/group_id] LEVEL message` lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A command: an argv list, or a string split like a shell would (without running
/// a shell). Read by hand (config/command.rs) so that a wrong type says so in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// `["prog", "arg"]`.
    Argv(Vec<String>),
    /// `"prog arg 'quoted arg'"`.
    Line(String),
}

impl CommandLine {
    /// The argv, splitting a string like a POSIX shell would (quotes, escapes).
    pub fn argv(&self) -> Result<Vec<String>, String> {
        match self {
            CommandLine::Argv(v) => Ok(v.clone()),
            CommandLine::Line(s) => {
                shell_words::split(s).map_err(|e| format!("cannot split command `{s}`: {e}"))
            }
        }
    }
}

/// When a group's instances are restarted after they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (the original's behaviour).
    #[default]
    Never,
    /// When the instance failed: non-zero exit, signal, hung, lost, failed to start.
    OnFailure,
    /// Whenever it ends, unless the master is stopping.
    Always,
}

/// Delay between restarts: `initial`, multiplied by `factor` after each quick
/// failure up to `max`, with ± `jitter` (a fraction), and reset when an instance ran
/// at least `reset_after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// First delay.
    pub initial: HumanDuration,
    /// Largest delay.
    pub max: HumanDuration,
    /// Growth factor per consecutive failure (at least 1).
    pub factor: f64,
    /// Random spread as a fraction of the delay, 0 to 1.
    pub jitter: f64,
    /// An instance that ran this long is healthy again: delay and the consecutive
    /// restart count start over.
    pub reset_after: HumanDuration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: HumanDuration::from_millis(500),
            max: HumanDuration::from_secs(30),
            factor: 2.0,
            jitter: 0.2,
            reset_after: HumanDuration::from_secs(60),
        }
    }
}

/// A group of identical instances (`[groups.NAME]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Program and arguments (required).
    pub command: CommandLine,
    /// Any JSON object; workers read it from `DISTARCH_PARAMS`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the instances.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Scheduling priority (nice value, -20..19) where the transport supports it.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Default `instances` for placements that do not set it.
    #[serde(default)]
    pub instances: Option<u32>,
    /// No output and no ping for this long: the instance is hung (0 = off). When
    /// not set, 30 s for instances that speak the protocol and off for plain
    /// programs (see [`GroupConfig::hang_timeout`]).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// The signal that stops a plain program (one that never sent a frame) at once,
    /// instead of the `stop` frame and its grace: `SIGTERM` by default.
    #[serde(default)]
    pub stop_signal: StopSignal,
    /// When an instance that does not send `ready` itself counts as ready.
    #[serde(default)]
    pub ready: Option<ReadyRule>,
    /// Groups that must reach a condition before this group starts, by name.
    #[serde(default)]
    pub depends_on: BTreeMap<String, DependencyCondition>,
    /// Overrides the launcher's `stop_grace` for this group.
    #[serde(default)]
    pub stop_grace: Option<HumanDuration>,
    /// Overrides the launcher's `kill_after` for this group.
    #[serde(default)]
    pub kill_after: Option<HumanDuration>,
    /// Restart policy; when not set, `never` (`always` in service mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Most consecutive restarts (counted since the last healthy run); `"unlimited"`
    /// in files is `u32::MAX` here.
    #[serde(
        default = "default_max_restarts",
        with = "super::control::max_restarts"
    )]
    pub max_restarts: u32,
    /// Delay between restarts.
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// Position of the group when ids are given out (lower first; ties by name).
    #[serde(default)]
    pub order: i64,
    /// Where the instances run, by placement name. When empty, the group runs
    /// `instances` local processes.
    #[serde(default)]
    pub placements: BTreeMap<String, PlacementConfig>,
    /// Also write this group's lines (and the master's lines about its instances)
    /// to this file, with rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<super::observe::LogFileConfig>,
    /// Makes the group a job pool: its instances get work items from this input
    /// (see docs/protocol.md, "Jobs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<crate::jobs::JobsConfig>,
}

/// The hang timeout of protocol speakers when a group does not set `timeout`.
pub const DEFAULT_HANG_TIMEOUT: HumanDuration = HumanDuration::from_secs(30);

impl GroupConfig {
    /// A group running `command`, every other setting at its default (one instance
    /// unless placements say otherwise). Library users start from this and set
    /// fields, so that new settings do not break their code.
    pub fn new(command: CommandLine) -> Self {
        GroupConfig {
            command,
            params: Map::new(),
            env: BTreeMap::new(),
            workdir: None,
            priority: None,
            instances: None,
            timeout: None,
            stop_signal: StopSignal::default(),
            ready: None,
            depends_on: BTreeMap::new(),
            stop_grace: None,
            kill_after: None,
            restart: None,
            max_restarts: default_max_restarts(),
            backoff: BackoffConfig::default(),
            order: 0,
            placements: BTreeMap::new(),
            log_file: None,
            jobs: None,
        }
    }

    /// The hang timeout that applies to an instance: the group's `timeout` when set
    /// (0 = off), else 30 s for an instance that speaks the protocol and none for a
    /// plain program, which may well stay silent for hours.
    pub fn hang_timeout(&self, speaks_protocol: bool) -> Option<std::time::Duration> {
        match self.timeout {
            Some(t) => t.non_zero(),
            None if speaks_protocol => DEFAULT_HANG_TIMEOUT.non_zero(),
            None => None,
        }
    }
}

fn default_max_restarts() -> u32 {
    5
}

/// One placement of a group: a transport, how many instances, and the transport's
/// own settings (checked by the transport).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementConfig {
    /// Name of the transport (`local`, `ssh`, `docker`, `kubernetes`, or a custom one).
    pub transport: String,
    /// Instances (per host for transports with several hosts); default: the group's.
    #[serde(default)]
    pub instances: Option<u32>,
    /// Params of this placement's instances, merged over the group's `params`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// Everything else: the transport's settings.
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}
