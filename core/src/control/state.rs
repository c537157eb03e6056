//! The run's live state as clients see it: one [`InstanceSnapshot`] per instance,
//! kept up to date from the run's events (see [`super::tap`]) and from the control
//! engine's own changes (suspended, stopping, removed).

use crate::events::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum InstanceState {
    /// Planned, its task not started yet.
    Pending,
    /// Being started by its transport.
    Starting,
    /// Started; no `ready` frame yet.
    Running,
    /// Started and the worker sent `ready`.
    Ready,
    /// Being stopped by the master.
    Stopping,
    /// Waiting before a restart.
    Backoff,
    /// Stopped by `suspend`; `resume` starts it again.
    Suspended,
    /// Ended for good (by itself, or stopped).
    Ended,
}

impl InstanceState {
    /// The lowercase name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Ready => "ready",
            InstanceState::Stopping => "stopping",
            InstanceState::Backoff => "backoff",
            InstanceState::Suspended => "suspended",
            InstanceState::Ended => "ended",
        }
    }

    /// True while the instance's process (or container, pod) may exist.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            InstanceState::Starting
                | InstanceState::Running
                | InstanceState::Ready
                | InstanceState::Stopping
        )
    }
}

/// One instance as `ps` shows it. Times are RFC 3339 with milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    /// Global id.
    pub id: u64,
    /// Group name.
    pub group: String,
    /// 1-based index in the group.
    pub group_id: u64,
    /// Instances in the group now.
    pub group_count: u64,
    /// Placement name.
    pub placement: String,
    /// Transport name.
    pub transport: String,
    /// Host label.
    pub host: String,
    /// Where it is in its life.
    pub state: InstanceState,
    /// The transport's description of the running instance (pid, container, pod).
    pub process: Option<String>,
    /// Restarts so far (by policy or by `restart`).
    pub restarts: u32,
    /// When the current (or last) start began.
    pub started: Option<String>,
    /// When the worker sent `ready`.
    pub ready: Option<String>,
    /// When the master last heard from it (any line or ping it produced).
    pub last_seen: Option<String>,
    /// The last `status` text the worker sent.
    pub status: Option<String>,
    /// How its previous run ended.
    pub last_exit: Option<String>,
}

/// The static facts of an instance, given when the control engine creates it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) id: u64,
    pub(crate) group: String,
    pub(crate) group_id: u64,
    pub(crate) group_count: u64,
    pub(crate) placement: String,
    pub(crate) transport: String,
    pub(crate) host: String,
}

/// Every instance of the run, by id.
#[derive(Debug, Default)]
pub(crate) struct Instances {
    by_id: BTreeMap<u64, InstanceSnapshot>,
    /// When each instance was last heard from; formatted only when asked for.
    seen: std::collections::HashMap<u64, SystemTime>,
    /// How many starts of each instance this table has seen (`InstanceCreated`
    /// events). Events reach the table after the engine acts, so a waiter compares
    /// this count to tell the new start's state from the last one's.
    starts: std::collections::HashMap<u64, u64>,
}

pub(crate) fn now() -> String {
    stamp(SystemTime::now())
}

pub(crate) fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Instances {
    /// Adds (or replaces) an instance, `pending`.
    pub(crate) fn add(&mut self, m: Member, restarts: u32) {
        self.by_id.insert(
            m.id,
            InstanceSnapshot {
                id: m.id,
                group: m.group,
                group_id: m.group_id,
                group_count: m.group_count,
                placement: m.placement,
                transport: m.transport,
                host: m.host,
                state: InstanceState::Pending,
                process: None,
                restarts,
                started: None,
                ready: None,
                last_seen: None,
                status: None,
                last_exit: None,
            },
        );
    }

    /// Forgets an instance (scaled down, or its group removed by a reload).
    pub(crate) fn remove(&mut self, id: u64) {
        self.by_id.remove(&id);
        self.seen.remove(&id);
    }

    /// Sets an instance's state.
    pub(crate) fn set_state(&mut self, id: u64, state: InstanceState) {
        if let Some(i) = self.by_id.get_mut(&id) {
            i.state = state;
        }
    }

    /// Raises the restart count shown (a restart by command).
    pub(crate) fn bump_restarts(&mut self, id: u64, restarts: u32) {
        if let Some(i) = self.by_id.get_mut(&id) {
            i.restarts = i.restarts.max(restarts);
        }
    }

    /// Changes where an instance runs (a reload moved it), keeping the rest.
    pub(crate) fn move_member(&mut self, id: u64, placement: &str, transport: &str, host: &str) {
        if let Some(i) = self.by_id.get_mut(&id) {
            i.placement = placement.to_string();
            i.transport = transport.to_string();
            i.host = host.to_string();
        }
    }

    /// Sets the group count shown for every instance of `group`.
    pub(crate) fn set_group_count(&mut self, group: &str, count: u64) {
        for i in self.by_id.values_mut().filter(|i| i.group == group) {
            i.group_count = count;
        }
    }

    /// One instance.
    /// Starts of instance `id` seen so far.
    pub(crate) fn starts(&self, id: u64) -> u64 {
        self.starts.get(&id).copied().unwrap_or(0)
    }

    pub(crate) fn get(&self, id: u64) -> Option<&InstanceSnapshot> {
        self.by_id.get(&id)
    }

    /// How many instances there are, and how many of them are live.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let live = self.by_id.values().filter(|i| i.state.is_live()).count();
        (self.by_id.len(), live)
    }

    /// Every instance, by id.
    pub(crate) fn all(&self) -> Vec<InstanceSnapshot> {
        self.by_id
            .values()
            .map(|i| {
                let mut i = i.clone();
                i.last_seen = self.seen.get(&i.id).map(|t| stamp(*t));
                i
            })
            .collect()
    }

    /// Updates the instance an event is about.
    pub(crate) fn observe(&mut self, event: &Event) {
        let id = match event {
            Event::InstanceCreated(l)
            | Event::InstanceSeen(l)
            | Event::InstanceReady(l)
            | Event::InstanceStarted { instance: l, .. }
            | Event::InstanceStatus { instance: l, .. }
            | Event::InstanceFailedToStart { instance: l, .. }
            | Event::InstanceStopped { instance: l, .. }
            | Event::InstanceRestarting { instance: l, .. } => l.id,
            Event::Lines(lines) => lines.instance.id,
            Event::Log(r) => match &r.instance {
                Some(l) => l.id,
                None => return,
            },
            _ => return,
        };
        match event {
            Event::Lines(lines) => {
                self.seen.insert(id, lines.time);
                return;
            }
            Event::Log(r) => {
                self.seen.insert(id, r.time);
                return;
            }
            Event::InstanceSeen(_) => {
                self.seen.insert(id, SystemTime::now());
                return;
            }
            _ => {}
        }
        let Some(i) = self.by_id.get_mut(&id) else {
            return;
        };
        match event {
            Event::InstanceCreated(l) => {
                *self.starts.entry(id).or_default() += 1;
                i.state = InstanceState::Starting;
                i.host = l.host.to_string();
                i.status = None;
                i.ready = None;
                i.restarts = i.restarts.max(l.restart);
            }
            Event::InstanceStarted { description, .. } => {
                i.state = InstanceState::Running;
                i.started = Some(now());
                i.process = Some(description.clone());
            }
            Event::InstanceReady(_) => {
                if i.state == InstanceState::Running {
                    i.state = InstanceState::Ready;
                }
                i.ready = Some(now());
            }
            Event::InstanceStatus { text, .. } => i.status = Some(text.clone()),
            Event::InstanceFailedToStart { error, .. } => {
                i.state = InstanceState::Ended;
                i.last_exit = Some(format!("failed to start: {error}"));
            }
            Event::InstanceStopped { exit, .. } => {
                if i.state != InstanceState::Suspended {
                    i.state = InstanceState::Ended;
                }
                i.process = None;
                i.last_exit = Some(exit.to_string());
            }
            Event::InstanceRestarting { restart, .. } => {
                i.state = InstanceState::Backoff;
                i.restarts = i.restarts.max(*restart);
            }
            _ => {}
        }
    }
}
