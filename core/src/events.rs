//! Events a run emits: its life cycle, each instance's, and every log line.

use crate::transport::ExitStatus;
use distarch_protocol::Level;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Who an instance is, as shown in log prefixes and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLabel {
    /// Group name.
    pub group: Arc<str>,
    /// Host label.
    pub host: Arc<str>,
    /// Global id.
    pub id: u64,
    /// 1-based index in the group.
    pub group_id: u64,
    /// Instances in the group.
    pub group_count: u64,
    /// Restarts before the current start.
    pub restart: u32,
}

/// Where a log line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The worker's stdout (plain lines and log frames).
    Stdout,
    /// The worker's stderr.
    Stderr,
}

/// One log record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// When the master received it.
    pub time: SystemTime,
    /// The instance, or `None` for the master's own lines.
    pub instance: Option<Arc<InstanceLabel>>,
    /// Severity.
    pub level: Level,
    /// Text (lossily decoded).
    pub message: String,
    /// Structured fields of a log frame.
    pub fields: Option<Map<String, Value>>,
    /// The stream it came on (`None` for the master's own lines).
    pub stream: Option<LogStream>,
    /// The line was longer than the bound and was cut.
    pub truncated: bool,
}

/// Why the launcher is stopping everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_running_time` was reached.
    MaxRunningTime,
    /// No output from any worker for the launcher-wide `timeout`.
    Timeout,
    /// SIGINT (Ctrl-C).
    Interrupted,
    /// SIGTERM.
    Terminated,
    /// A library user asked for it through a [`crate::StopHandle`].
    Requested,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::MaxRunningTime => "max running time reached",
            StopReason::Timeout => "no output from any worker for the launcher timeout",
            StopReason::Interrupted => "interrupted (SIGINT)",
            StopReason::Terminated => "terminated (SIGTERM)",
            StopReason::Requested => "stop requested",
        })
    }
}

/// Everything that happens during a run, in the order it happens per instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run is about to start its instances.
    RunStarting {
        /// Run id.
        run_id: String,
        /// Number of instances.
        instances: usize,
    },
    /// Every instance has been asked to start.
    RunStarted {
        /// Run id.
        run_id: String,
    },
    /// The launcher began stopping everything.
    RunStopping {
        /// Why.
        reason: StopReason,
        /// True when the stop skips the polite steps (second Ctrl-C, launcher timeout).
        forced: bool,
    },
    /// Every instance has ended for good.
    RunStopped {
        /// Run id.
        run_id: String,
        /// The exit code the run summarises to.
        exit_code: i32,
    },
    /// An instance is about to be started (also before each restart).
    InstanceCreated(Arc<InstanceLabel>),
    /// An instance was started.
    InstanceStarted {
        /// Which.
        instance: Arc<InstanceLabel>,
        /// Transport's description (pid, container id, ...).
        description: String,
    },
    /// First output or ping of an instance since it started.
    InstanceSeen(Arc<InstanceLabel>),
    /// The worker sent `ready`.
    InstanceReady(Arc<InstanceLabel>),
    /// The worker sent a `status`.
    InstanceStatus {
        /// Which.
        instance: Arc<InstanceLabel>,
        /// The status text.
        text: String,
    },
    /// An instance sent nothing for its group's `timeout`.
    InstanceTimedOut {
        /// Which.
        instance: Arc<InstanceLabel>,
        /// The timeout that passed.
        after: Duration,
    },
    /// An instance could not be started.
    InstanceFailedToStart {
        /// Which.
        instance: Arc<InstanceLabel>,
        /// Why, one line.
        error: String,
    },
    /// An instance ended.
    InstanceStopped {
        /// Which.
        instance: Arc<InstanceLabel>,
        /// How.
        exit: ExitStatus,
        /// How it was brought to an end, if the master did it.
        stopped_by: Option<StopStep>,
    },
    /// An instance will be restarted after `delay`.
    InstanceRestarting {
        /// Which (with the restart count of the start that ended).
        instance: Arc<InstanceLabel>,
        /// Restart number about to happen (1 for the first restart).
        restart: u32,
        /// Wait before the restart.
        delay: Duration,
    },
    /// A log line.
    Log(LogRecord),
}

/// The last step the master had to take to end an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopStep {
    /// The `stop` frame was enough.
    StopFrame,
    /// It had to be terminated (SIGTERM, docker stop, pod delete).
    Terminate,
    /// It had to be killed (SIGKILL, docker kill, forced delete).
    Kill,
}
