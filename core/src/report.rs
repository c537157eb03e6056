//! What a run returns: how each instance ended, and the exit code that sums it up.

use crate::events::{StopReason, StopStep};
use crate::transport::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

/// Exit code: every instance ended cleanly.
pub const EXIT_OK: i32 = 0;
/// Exit code: at least one instance failed (non-zero exit, signal, lost, hung,
/// failed to start, or had to be killed).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the configuration or the command line is wrong; nothing was started.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code: the launcher-wide no-output `timeout` stopped the run.
pub const EXIT_TIMEOUT: i32 = 3;
/// Exit code: some instances were not ready within the launcher's `ready_timeout`.
pub const EXIT_NOT_READY: i32 = 4;
/// Exit code: some job of a job pool failed for good (dead-lettered), or was
/// never finished (the run stopped first, the input or output failed).
pub const EXIT_JOBS_FAILED: i32 = 5;
/// Exit code: the master's output was gone (EX_IOERR), so it stopped everything.
pub const EXIT_OUTPUT_LOST: i32 = 74;
/// Exit code: the run was interrupted by SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code: the run was stopped by SIGTERM.
pub const EXIT_TERMINATED: i32 = 143;

/// How one instance ended for good (its last start).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It ended by itself.
    Exited(ExitStatus),
    /// The master stopped it; `step` is the last escalation step needed.
    Stopped {
        /// How it ended.
        exit: ExitStatus,
        /// The last step the master had to take.
        step: StopStep,
    },
    /// It sent nothing for the group's `timeout` and was ended.
    TimedOut(ExitStatus),
    /// It could not be started; the text says why.
    FailedToStart(String),
    /// The run was stopped before it could start.
    NotStarted,
}

impl Outcome {
    /// True when this outcome does not make the run fail.
    pub fn is_clean(&self) -> bool {
        match self {
            Outcome::Exited(status) => status.success(),
            Outcome::Stopped { step, .. } => *step < StopStep::Kill,
            Outcome::NotStarted => true,
            Outcome::TimedOut(_) | Outcome::FailedToStart(_) => false,
        }
    }
}

/// The report of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceReport {
    /// Global id.
    pub id: u64,
    /// Group name.
    pub group: Arc<str>,
    /// 1-based index in the group.
    pub group_id: u64,
    /// Host label.
    pub host: Arc<str>,
    /// How many times it was restarted.
    pub restarts: u32,
    /// How its last start ended.
    pub outcome: Outcome,
}

/// The report of a whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// Every instance, in id order.
    pub instances: Vec<InstanceReport>,
    /// Why the launcher stopped everything, if it did.
    pub stop_reason: Option<StopReason>,
    /// How long the run took.
    pub duration: Duration,
    /// How each job pool ended (empty when the run has none).
    pub jobs: Vec<crate::jobs::PoolReport>,
}

impl RunReport {
    /// The process exit code this run sums up to: 130/143 when interrupted by
    /// SIGINT/SIGTERM, 3 when the launcher-wide timeout fired, 4 when instances were
    /// not ready within `ready_timeout`, else 0 when every
    /// instance ended cleanly and 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.stop_reason {
            Some(StopReason::Interrupted) => EXIT_INTERRUPTED,
            Some(StopReason::Terminated) => EXIT_TERMINATED,
            Some(StopReason::Timeout) => EXIT_TIMEOUT,
            Some(StopReason::NotReady) => EXIT_NOT_READY,
            Some(StopReason::OutputLost) => EXIT_OUTPUT_LOST,
            _ if self.jobs.iter().any(|p| p.failed()) => EXIT_JOBS_FAILED,
            // Instances of a pool that finished every job do not fail the run:
            // the pool gave their work to others.
            _ if self
                .instances
                .iter()
                .all(|i| i.outcome.is_clean() || self.pool_finished(&i.group)) =>
            {
                EXIT_OK
            }
            _ => EXIT_FAILED,
        }
    }

    fn pool_finished(&self, group: &str) -> bool {
        self.jobs.iter().any(|p| p.group == group && !p.failed())
    }

    /// Number of instances whose outcome is not clean.
    pub fn failed(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| !i.outcome.is_clean())
            .count()
    }
}
