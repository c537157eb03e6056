//! The [`Transport`] and [`Instance`] traits that every backend implements.
//!
//! A transport checks a placement's settings and turns them into targets and a
//! typed, prepared form ([`Transport::plan`]) before anything starts; later it starts
//! one instance at a time ([`Transport::spawn`]) from that prepared form, so settings
//! are parsed once. The supervisor talks to a started instance only
//! through [`Instance`]: its stdio as byte streams, and three controls (terminate,
//! kill, wait). Nothing here assumes local processes.

use crate::config::StopSignal;
use crate::error::{ConfigError, ConfigErrors, InstanceError, SpawnError};
use crate::gc::{GcReport, GcRequest};
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A placement as the transport sees it: its name, its group, and the settings that
/// are the transport's own (everything but `transport` and `instances`).
#[derive(Debug, Clone)]
pub struct PlacementRef<'a> {
    /// Name of the group.
    pub group: &'a str,
    /// Name of the placement within the group.
    pub name: &'a str,
    /// `instances` of the placement (per target for transports with several hosts).
    pub instances: u32,
    /// The transport-specific settings, as a JSON object.
    pub settings: &'a Map<String, Value>,
}

impl PlacementRef<'_> {
    /// The dotted config path of this placement (`groups.G.placements.P`).
    pub fn path(&self) -> String {
        format!("groups.{}.placements.{}", self.group, self.name)
    }

    /// Deserializes the settings into the transport's own settings type. Errors name
    /// the placement path; use `#[serde(deny_unknown_fields)]` on `T` so that a
    /// misspelt key is reported.
    pub fn parse_settings<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_json::from_value(Value::Object(self.settings.clone()))
            .map_err(|e| ConfigError::new(self.path(), e.to_string()))
    }
}

/// A placement's settings as its transport prepared them in [`Transport::plan`]: the
/// transport's own typed value (parsed and checked once), handed back unchanged in
/// [`InstanceSpec::prepared`] so that `spawn` never reads the raw settings again.
#[derive(Clone)]
pub struct Prepared(Arc<dyn Any + Send + Sync>);

impl Prepared {
    /// Wraps a transport's typed settings.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Prepared(Arc::new(value))
    }

    /// The typed settings, if they are of type `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl Default for Prepared {
    /// Nothing prepared (`()`): for transports without settings of their own.
    fn default() -> Self {
        Prepared::new(())
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prepared(..)")
    }
}

/// What [`Transport::plan`] says of one placement: where its instances go, and its
/// settings in the transport's prepared form.
#[derive(Debug, Clone)]
pub struct PlacementPlan {
    /// The targets, each with its share of the instances.
    pub targets: Vec<Target>,
    /// Given to every instance of the placement as [`InstanceSpec::prepared`].
    pub prepared: Prepared,
}

impl PlacementPlan {
    /// A plan of `targets` with `prepared` settings.
    pub fn new(targets: Vec<Target>, prepared: Prepared) -> Self {
        PlacementPlan { targets, prepared }
    }
}

/// Where some of a placement's instances go: one host, one engine, one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What the transport needs to find the target again at spawn time (e.g.
    /// `user@host:22`); given back as [`InstanceSpec::target`].
    pub address: String,
    /// Short human label of where the instances run; shown in log prefixes and given
    /// to workers as `DISTARCH_HOST`.
    pub host: String,
    /// How many instances go to this target.
    pub instances: u32,
}

/// Everything needed to start one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Id of the run.
    pub run_id: String,
    /// Name of the group.
    pub group: String,
    /// Name of the placement within the group.
    pub placement: String,
    /// Global id, 1-based across the run.
    pub id: u64,
    /// 1-based index within the group.
    pub group_id: u64,
    /// Number of instances in the group.
    pub group_count: u64,
    /// [`Target::address`] of the target this instance goes to.
    pub target: String,
    /// [`Target::host`] label.
    pub host: String,
    /// How many times this instance was restarted before this start.
    pub restart: u32,
    /// Program and arguments; never passed through a shell by distarch.
    pub command: Vec<String>,
    /// Environment to set: the group's env plus the `DISTARCH_*` variables.
    pub env: BTreeMap<String, String>,
    /// Working directory, if the group sets one.
    pub workdir: Option<PathBuf>,
    /// Scheduling priority (nice value), if the group sets one.
    pub priority: Option<i32>,
    /// The placement's settings as its transport's [`Transport::plan`] prepared them
    /// (read them with [`InstanceSpec::settings`]).
    pub prepared: Prepared,
    /// How long the master waits after a `stop` frame before terminating; transports
    /// whose terminate has its own grace (docker stop) may use it.
    pub stop_grace: Duration,
    /// How long the master waits after terminating before killing.
    pub kill_after: Duration,
}

impl InstanceSpec {
    /// The dotted config path of the instance's placement (`groups.G.placements.P`).
    pub fn placement_path(&self) -> String {
        format!("groups.{}.placements.{}", self.group, self.placement)
    }

    /// The placement's settings in the form the transport prepared them at plan
    /// time. The error (settings of another type: the spec was not planned by this
    /// transport) names the placement.
    pub fn settings<T: Any>(&self) -> Result<&T, SpawnError> {
        self.prepared.get().ok_or_else(|| {
            SpawnError::new(format!(
                "{}: the settings were not prepared by this transport's plan (expected {})",
                self.placement_path(),
                std::any::type_name::<T>()
            ))
        })
    }

    /// A readable name: `distarch-<run>-<group>-<id>`, with characters outside
    /// `[A-Za-z0-9_.-]` replaced by `-` (fit for container and pod names).
    pub fn object_name(&self) -> String {
        let raw = format!("distarch-{}-{}-{}", self.run_id, self.group, self.id);
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }
}

/// The byte streams of a started instance.
pub struct InstanceIo {
    /// The worker's stdin: the master writes frames here and closes it when it goes.
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    /// The worker's stdout: frames and plain lines.
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// The worker's stderr, when the transport keeps it apart (lines become `warn`).
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
}

impl fmt::Debug for InstanceIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceIo")
            .field("stderr", &self.stderr.is_some())
            .finish_non_exhaustive()
    }
}

/// How an instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// The worker exited with this code.
    Exited(i32),
    /// The worker was ended by this signal number.
    Signaled(i32),
    /// The worker was killed for using too much memory.
    OomKilled,
    /// The master lost track of the worker (connection dropped, object vanished);
    /// the text says what happened.
    Lost(String),
}

impl ExitStatus {
    /// True for an exit with code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited(0))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(sig) => write!(f, "killed by signal {sig}"),
            ExitStatus::OomKilled => f.write_str("killed: out of memory"),
            ExitStatus::Lost(why) => write!(f, "lost: {why}"),
        }
    }
}

/// A started instance, owned by exactly one supervisor task.
#[async_trait]
pub trait Instance: Send {
    /// Hands over the instance's byte streams; `None` after the first call.
    fn take_io(&mut self) -> Option<InstanceIo>;

    /// A short description for logs (a pid, a container id, a channel).
    fn describe(&self) -> String;

    /// Polite end: SIGTERM to the process group, `docker stop`, pod delete with grace.
    async fn terminate(&mut self) -> Result<(), InstanceError>;

    /// Final end: SIGKILL to the process group, `docker kill`, forced delete.
    async fn kill(&mut self) -> Result<(), InstanceError>;

    /// Polite end of a plain program (one that never sent a frame) with the group's
    /// `stop_signal`. Transports that can send any signal override it; the
    /// default is [`Instance::terminate`].
    async fn stop_with_signal(&mut self, signal: StopSignal) -> Result<(), InstanceError> {
        let _ = signal;
        self.terminate().await
    }

    /// Waits for the instance to end. Must be cancel-safe: the supervisor drops the
    /// future when a timer fires and calls `wait` again later.
    async fn wait(&mut self) -> Result<ExitStatus, InstanceError>;

    /// Releases what the instance holds once it has ended (remove a container, close
    /// a channel). Called once, after `wait` returned. Default: nothing.
    async fn cleanup(&mut self) {}
}

/// A backend that starts instances: local processes, SSH, Docker, Kubernetes, ...
#[async_trait]
pub trait Transport: Send + Sync {
    /// The name placements use in `transport = "..."`.
    fn name(&self) -> &str;

    /// Checks a placement's settings before anything starts, says where its
    /// instances go and returns the settings in a prepared, typed form that
    /// [`Transport::spawn`] gets back in [`InstanceSpec::prepared`]. Reports every
    /// problem found, each naming its key (use [`PlacementRef::path`]).
    fn plan(&self, placement: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors>;

    /// The settings keys a placement of this transport accepts (besides `transport`
    /// and `instances`), so that a misspelt key is named with the keys it could have
    /// been and the closest one. Default: `None` (the transport's own `plan` reports
    /// unknown keys; serde's "unknown field" wording is then reworded).
    fn settings_keys(&self) -> Option<&[&str]> {
        None
    }

    /// Starts one instance.
    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError>;

    /// Called once when the run is over: close connections, clients. Default: nothing.
    async fn shutdown(&self) {}

    /// `distarch gc`: removes what runs of this transport whose master is gone left
    /// behind (containers, pods, cgroups), or on a dry run says what it would
    /// remove. Default: nothing to clean (an empty report).
    async fn gc(&self, request: &GcRequest<'_>) -> GcReport {
        let _ = request;
        GcReport::default()
    }
}
