//! Frame types: what a worker sends ([`WorkerFrame`]) and what the master sends
//! ([`MasterFrame`]).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Severity of a log record, from the least to the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Very detailed tracing output.
    Trace,
    /// Debugging output.
    Debug,
    /// Normal output; plain stdout lines have this level.
    Info,
    /// Something looks wrong; plain stderr lines have this level.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The lowercase name used on the wire (`"info"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not a level name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLevel(pub String);

impl fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown log level `{}` (expected trace, debug, info, warn or error)",
            self.0
        )
    }
}

impl std::error::Error for UnknownLevel {}

impl FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(UnknownLevel(s.to_string())),
        }
    }
}

/// A frame sent by a worker to the master on the worker's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkerFrame {
    /// "I speak the protocol": the first frame an SDK sends. Optional; any valid
    /// frame also tells the master that the worker speaks the protocol.
    Hello {
        /// The protocol version the worker speaks.
        protocol: u32,
        /// Name of the SDK (`distarch-worker-rust`, `distarch-worker-python`, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdk: Option<String>,
        /// Version of the SDK.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// "I am alive": resets the no-output timeout; carries nothing else.
    Ping,
    /// A structured log record.
    Log {
        /// Severity of the record.
        level: Level,
        /// The message text.
        message: String,
        /// Optional structured fields (a JSON object).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fields: Option<serde_json::Map<String, serde_json::Value>>,
    },
    /// The worker finished its start-up and is doing its job.
    Ready,
    /// The worker is about to exit on purpose.
    Ended,
    /// A short free-text status, shown by the master.
    Status {
        /// The status text.
        text: String,
    },
    /// Job pools: "send me `n` more jobs" (a credit that adds up). A worker that
    /// never sends it never gets a job.
    Want {
        /// How many more jobs the worker takes.
        n: u64,
    },
    /// Job pools: the job `id` succeeded, with an optional result.
    Done {
        /// The id of the `job` frame being answered.
        id: u64,
        /// Any JSON value; absent means `null`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
    },
    /// Job pools: the job `id` failed.
    Failed {
        /// The id of the `job` frame being answered.
        id: u64,
        /// What went wrong (shown in the dead-letter output).
        error: String,
        /// Whether another attempt may succeed (default `true`); `false` sends the
        /// job to the dead-letter output at once.
        #[serde(default = "yes")]
        retryable: bool,
    },
}

fn yes() -> bool {
    true
}

/// A frame sent by the master to a worker on the worker's stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MasterFrame {
    /// Please finish the current work and exit cleanly.
    Stop,
    /// The number of instances in the worker's group changed (the group was
    /// scaled); `DISTARCH_GROUP_COUNT` was the count at start.
    GroupCount {
        /// The new number of instances in the group.
        count: u64,
    },
    /// Job pools: one work item, sent only against credit the worker gave with
    /// `want`. The worker answers it with `done` or `failed` and the same `id`.
    Job {
        /// The job's id, unique within the run (the input's record number).
        id: u64,
        /// The work item: any JSON value.
        payload: serde_json::Value,
    },
}
