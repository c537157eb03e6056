//! Run-time control of a running launch: its live state ([`Control::snapshot`]),
//! its logs and events, and commands (stop, suspend, resume, scale, restart,
//! reload). A [`Control`] comes from [`crate::Launcher::control`]; the commands are
//! carried out by the launcher's own loop (see `engine`), which owns every instance
//! task.

mod commands;
mod engine;
mod hub;
mod launcher_diff;
mod logs;
mod state;

pub use hub::{FeedEvent, Followed};
pub use logs::LogFilter;
pub use state::{InstanceSnapshot, InstanceState};

pub(crate) use engine::{last_reports, Engine, EngineParts};
pub(crate) use hub::{Hub, Tap};

use crate::config::Config;
use crate::events::Event;
use crate::supervisor::StopHandle;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What a command is about: a whole group, or one instance by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Selector {
    /// An instance id.
    Id(u64),
    /// A group name.
    Group(String),
}

impl Selector {
    /// A number is an id, anything else a group name.
    pub fn parse(text: &str) -> Selector {
        match text.parse() {
            Ok(id) => Selector::Id(id),
            Err(_) => Selector::Group(text.to_string()),
        }
    }
}

/// Why a command was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// A group or id that the run does not have.
    #[error("{0}")]
    NotFound(String),
    /// The request does not make sense (bad count, group with several placements...).
    #[error("{0}")]
    Invalid(String),
    /// The configuration given to `reload` is not valid; the text lists why.
    #[error("invalid configuration:\n{0}")]
    Config(String),
    /// The run is stopping or has ended.
    #[error("the run is stopping; it takes no more commands")]
    Stopping,
}

/// What `scale` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleOutcome {
    /// The group's instance count now.
    pub count: u64,
    /// Ids of the new instances.
    pub added: Vec<u64>,
    /// Ids of the instances stopped and removed.
    pub removed: Vec<u64>,
}

/// What `reload` did, by group name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// New groups, started.
    pub added: Vec<String>,
    /// Groups no longer configured, stopped.
    pub removed: Vec<String>,
    /// Groups whose configuration changed, restarted one instance at a time.
    pub changed: Vec<String>,
    /// Groups left alone.
    pub unchanged: Vec<String>,
    /// Things the reload did not apply (launcher-wide settings), one line each.
    pub notes: Vec<String>,
}

type Reply<T> = oneshot::Sender<Result<T, ControlError>>;

/// A command for the engine, with where to send its answer.
pub(crate) enum Command {
    Stop(Vec<Selector>, Reply<Waiting>),
    Suspend(Vec<String>, Reply<Waiting>),
    Resume(Vec<String>, Reply<Vec<u64>>),
    Scale {
        group: String,
        placement: Option<String>,
        count: u64,
        reply: Reply<(ScaleOutcome, Waiting)>,
    },
    /// Restarts these instances now (ids resolved) and says when each new start began.
    Restart(Vec<Selector>, Reply<Waiting>),
    /// Resolves selectors to ids (for a rolling restart driven from outside the loop).
    Resolve(Vec<Selector>, Reply<Vec<u64>>),
    Reload(Box<Config>, Reply<(ReloadOutcome, Vec<u64>, Waiting)>),
}

/// Ids a command acted on, and a receiver per id that fires when its old task ended.
pub(crate) struct Waiting {
    pub(crate) ids: Vec<u64>,
    pub(crate) ended: Vec<oneshot::Receiver<()>>,
}

impl Waiting {
    async fn wait(self) -> Vec<u64> {
        for rx in self.ended {
            let _ = rx.await;
        }
        self.ids
    }
}

/// Steers a running launch. Cheap to clone; every clone talks to the same run.
/// Commands wait until what they started is done (instances stopped, restarted),
/// and fail with [`ControlError::Stopping`] once the run is stopping.
#[derive(Clone)]
pub struct Control {
    pub(crate) hub: Arc<Hub>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) stop: StopHandle,
    pub(crate) run_id: Arc<str>,
    pub(crate) rolling_delay: std::time::Duration,
    pub(crate) live: crate::LiveOutput,
}

/// How long a rolling restart waits to see the new start of an instance before it
/// moves on anyway (a restart that could not even be created).
const NEW_START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Control {
    /// The run's output settings that a reload changes while it goes on: bind the
    /// run's writers to them with [`crate::LogWriter::following`].
    pub fn live_output(&self) -> crate::LiveOutput {
        self.live.clone()
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Every instance of the run, by id.
    pub fn snapshot(&self) -> Vec<InstanceSnapshot> {
        self.hub.instances(|i| i.all())
    }

    /// How many instances the run has, and how many of them are live (cheaper
    /// than counting a [`Control::snapshot`]).
    pub fn counts(&self) -> (usize, usize) {
        self.hub.instances(|i| i.counts())
    }

    /// The progress of every job pool of the run (empty when it has none).
    pub fn jobs(&self) -> Vec<crate::jobs::JobStats> {
        self.hub.jobs()
    }

    /// The buffered output the filter wants.
    pub fn logs(&self, filter: &LogFilter) -> Vec<Arc<Event>> {
        self.hub.logs(filter)
    }

    /// The buffered output the filter wants, then every event as it comes (filter
    /// the live ones with [`LogFilter::wants`]). A receiver that falls more than
    /// about a thousand batches behind gets `Lagged`.
    pub fn follow(&self, filter: &LogFilter) -> Followed {
        self.hub.follow(filter)
    }

    /// Every event of the run from now on (`buffered` is empty; `ended` is set
    /// when the run had already stopped).
    pub fn events(&self) -> Followed {
        self.hub.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ControlError::Stopping)?;
        rx.await.map_err(|_| ControlError::Stopping)?
    }

    /// Stops the whole run cleanly (the same path as Ctrl-C). Returns at once.
    pub fn stop_run(&self) {
        self.stop.stop();
    }

    /// Stops these instances cleanly (`stop` frame, grace, terminate, kill) and keeps
    /// them stopped; returns their ids once they have ended.
    pub async fn stop(&self, targets: Vec<Selector>) -> Result<Vec<u64>, ControlError> {
        let waiting = self.ask(|r| Command::Stop(targets, r)).await?;
        Ok(waiting.wait().await)
    }

    /// Stops every instance of these groups cleanly and keeps them stopped (no
    /// restarts, no hang timeouts) until [`Control::resume`]; returns their ids once
    /// they have ended.
    pub async fn suspend(&self, groups: Vec<String>) -> Result<Vec<u64>, ControlError> {
        let waiting = self.ask(|r| Command::Suspend(groups, r)).await?;
        Ok(waiting.wait().await)
    }

    /// Starts the suspended instances of these groups again, with the same ids.
    pub async fn resume(&self, groups: Vec<String>) -> Result<Vec<u64>, ControlError> {
        self.ask(|r| Command::Resume(groups, r)).await
    }

    /// Sets the number of instances of a group (or of one of its placements): new
    /// instances get ids after the highest ever given, a smaller count stops the
    /// highest group ids. Running instances are sent the new count in a
    /// `group_count` frame.
    pub async fn scale(
        &self,
        group: String,
        placement: Option<String>,
        count: u64,
    ) -> Result<ScaleOutcome, ControlError> {
        let (outcome, waiting) = self
            .ask(|reply| Command::Scale {
                group,
                placement,
                count,
                reply,
            })
            .await?;
        waiting.wait().await;
        Ok(outcome)
    }

    /// Restarts these instances (every instance when `targets` is empty). Rolling:
    /// one at a time, the next once the previous sent `ready` or ran for the
    /// `rolling_delay` without failing.
    pub async fn restart(
        &self,
        targets: Vec<Selector>,
        rolling: bool,
    ) -> Result<Vec<u64>, ControlError> {
        if !rolling {
            let waiting = self.ask(|r| Command::Restart(targets, r)).await?;
            return Ok(waiting.wait().await);
        }
        let ids = self.ask(|r| Command::Resolve(targets, r)).await?;
        self.roll(&ids).await?;
        Ok(ids)
    }

    /// Restarts `ids` one after another, each once the previous is up.
    /// (See [`NEW_START_WAIT`] for how long a start that never shows is waited for.)
    async fn roll(&self, ids: &[u64]) -> Result<(), ControlError> {
        for &id in ids {
            let before = self.hub.instances(|i| i.starts(id));
            let waiting = self
                .ask(|r| Command::Restart(vec![Selector::Id(id)], r))
                .await?;
            waiting.wait().await;
            self.wait_up(id, before).await;
        }
        Ok(())
    }

    /// Waits until instance `id` is ready, has run for the rolling delay, or is not
    /// coming up (ended, gone). Only the states of a start after the first
    /// `starts_before` count: the last start's events may still be on their way.
    async fn wait_up(&self, id: u64, starts_before: u64) {
        let mut running_since: Option<tokio::time::Instant> = None;
        let mut waited = std::time::Duration::ZERO;
        loop {
            let (starts, state) = self
                .hub
                .instances(|i| (i.starts(id), i.get(id).map(|s| s.state)));
            // No new start seen yet (and none coming for a long time: give up).
            let state = if starts <= starts_before && state.is_some() {
                if waited >= NEW_START_WAIT {
                    return;
                }
                Some(InstanceState::Starting)
            } else {
                state
            };
            match state {
                Some(InstanceState::Ready) | Some(InstanceState::Ended) | None => return,
                Some(InstanceState::Running) => {
                    let since = *running_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.rolling_delay {
                        return;
                    }
                }
                _ => running_since = None,
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            waited += std::time::Duration::from_millis(20);
        }
    }

    /// Applies a new configuration: new groups start, removed groups stop, changed
    /// groups are restarted one instance at a time, the others are left alone. A
    /// configuration that does not check out changes nothing.
    pub async fn reload(&self, config: Config) -> Result<ReloadOutcome, ControlError> {
        let (outcome, roll, waiting) = self.ask(|r| Command::Reload(Box::new(config), r)).await?;
        waiting.wait().await;
        self.roll(&roll).await?;
        Ok(outcome)
    }
}
