//! Events a run emits: its life cycle, each instance's, and every log line.

use crate::transport::ExitStatus;
use distarch_protocol::Level;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Who an instance is, as shown in log prefixes and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLabel {
    /// `[group] [host] [id/group_id] `, computed once (see [`InstanceLabel::new`]).
    prefix: String,
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

impl InstanceLabel {
    /// A label; its text prefix is computed here, once.
    pub fn new(
        group: Arc<str>,
        host: Arc<str>,
        id: u64,
        group_id: u64,
        group_count: u64,
        restart: u32,
    ) -> Self {
        // Group and host names come from the config: escaped like worker text.
        let prefix = format!(
            "[{}] [{}] [{id}/{group_id}] ",
            crate::escape::escaped(&group),
            crate::escape::escaped(&host)
        );
        InstanceLabel {
            prefix,
            group,
            host,
            id,
            group_id,
            group_count,
            restart,
        }
    }

    /// The text-log prefix `[group] [host] [id/group_id] ` (with a trailing space).
    pub fn text_prefix(&self) -> &str {
        &self.prefix
    }
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

impl LogRecord {
    /// A line of the master's own, stamped now.
    pub fn master(level: Level, message: impl Into<String>) -> Self {
        LogRecord {
            time: SystemTime::now(),
            instance: None,
            level,
            message: message.into(),
            fields: None,
            stream: None,
            truncated: false,
        }
    }
}

/// Plain text lines that arrived together on one stream of one instance (one read),
/// kept in one buffer: the cheap path for workers that print a lot.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLines {
    /// When the master received them.
    pub time: SystemTime,
    /// The instance.
    pub instance: Arc<InstanceLabel>,
    /// Their level: `info` on stdout, `warn` on stderr.
    pub level: Level,
    /// The stream they came on.
    pub stream: LogStream,
    text: String,
    /// End offset of each line in `text`, and whether it was cut.
    ends: Vec<(usize, bool)>,
    /// Whether the text needs escapes, found once for every formatter.
    plain: Plainness,
}

/// Whether a batch's text holds anything a formatter must escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plain {
    /// Nothing text output escapes (see [`crate::escape::needs_escape`]).
    pub(crate) text: bool,
    /// Nothing a JSON string escapes.
    pub(crate) json: bool,
}

/// [`Plain`], found at the first format (a cache: never part of equality).
#[derive(Debug, Clone, Default)]
struct Plainness(std::sync::OnceLock<Plain>);

impl PartialEq for Plainness {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl LogLines {
    /// An empty set of lines.
    pub fn new(
        time: SystemTime,
        instance: Arc<InstanceLabel>,
        level: Level,
        stream: LogStream,
    ) -> Self {
        Self::with_capacity(time, instance, level, stream, 0)
    }

    /// An empty set of lines with room for `bytes` of text.
    pub fn with_capacity(
        time: SystemTime,
        instance: Arc<InstanceLabel>,
        level: Level,
        stream: LogStream,
        bytes: usize,
    ) -> Self {
        LogLines {
            time,
            instance,
            level,
            stream,
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(bytes / 32),
            plain: Plainness::default(),
        }
    }

    /// Whether the lines need escapes, found in one pass over the whole batch
    /// the first time a formatter asks (the text output, the log files and the
    /// followers' JSON then skip the per-line checks).
    pub(crate) fn plain(&self) -> Plain {
        *self.plain.0.get_or_init(|| Plain {
            text: !crate::escape::needs_escape(&self.text),
            json: !crate::escape::json_needs_escape(&self.text),
        })
    }

    /// Adds a line (without its newline; invalid UTF-8 replaced).
    pub fn push(&mut self, bytes: &[u8], truncated: bool) {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.text.push_str(text),
            Err(_) => self.text.push_str(&String::from_utf8_lossy(bytes)),
        }
        self.ends.push((self.text.len(), truncated));
        self.plain = Plainness::default();
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes of text of all the lines together (no newlines).
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// True when there is no line.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each line's text and whether it was cut at the line bound.
    pub fn iter(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(end, truncated)| {
            let line = &self.text[start..end];
            start = end;
            (line, truncated)
        })
    }
}

/// Why the launcher is stopping everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Some instances were not ready within the launcher's `ready_timeout`.
    NotReady,
    /// The master's own output is gone (its reader closed the pipe, the disk is
    /// full): nobody would see what happens next.
    OutputLost,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::MaxRunningTime => "max running time reached",
            StopReason::Timeout => "no output from any worker for the launcher timeout",
            StopReason::Interrupted => "interrupted (SIGINT)",
            StopReason::Terminated => "terminated (SIGTERM)",
            StopReason::Requested => "stop requested",
            StopReason::NotReady => "instances not ready within the ready timeout",
            StopReason::OutputLost => "the master's output is gone",
        })
    }
}

/// Everything that happens during a run, in the order it happens per instance.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// A log line (a `log` frame, a malformed frame, or a line of the master's).
    Log(LogRecord),
    /// Plain text lines of a worker.
    Lines(LogLines),
}

/// The last step the master had to take to end an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StopStep {
    /// The `stop` frame was enough.
    StopFrame,
    /// It had to be terminated (SIGTERM, docker stop, pod delete).
    Terminate,
    /// It had to be killed (SIGKILL, docker kill, forced delete).
    Kill,
}
