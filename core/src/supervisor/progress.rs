//! How far each group has come (started, ready, completed), so that groups with
//! `depends_on` start when their dependencies reach the condition they wait for.

use crate::config::DependencyCondition;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// Counts of one group's instances; each instance counts at most once per field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupCounts {
    /// Instances in the group.
    pub(crate) total: u64,
    /// Started at least once.
    pub(crate) started: u64,
    /// Ready at least once.
    pub(crate) ready: u64,
    /// Ended for good with exit code 0.
    pub(crate) completed: u64,
    /// Ended for good without ever starting.
    pub(crate) ended_unstarted: u64,
    /// Ended for good without ever being ready.
    pub(crate) ended_unready: u64,
    /// Ended for good, not successfully.
    pub(crate) ended_failed: u64,
}

/// Where a dependency stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DependencyState {
    /// Reached: every instance met the condition.
    Met,
    /// Not yet: `have` of `total`.
    Waiting { have: u64, total: u64 },
    /// Can no longer be met: `lost` instances ended without meeting it.
    Failed { lost: u64 },
}

impl GroupCounts {
    pub(crate) fn state(&self, condition: DependencyCondition) -> DependencyState {
        let (have, lost) = match condition {
            DependencyCondition::Started => (self.started, self.ended_unstarted),
            DependencyCondition::Ready => (self.ready, self.ended_unready),
            DependencyCondition::Completed => (self.completed, self.ended_failed),
        };
        if have >= self.total {
            DependencyState::Met
        } else if lost > 0 {
            DependencyState::Failed { lost }
        } else {
            DependencyState::Waiting {
                have,
                total: self.total,
            }
        }
    }
}

/// The progress of every group of a run, each on a watch channel, and the ids of
/// the instances that are neither ready nor ended yet.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunProgress {
    /// Groups can be added while the run goes on (`reload`).
    groups: Arc<RwLock<BTreeMap<Arc<str>, watch::Sender<GroupCounts>>>>,
    unready: Arc<Mutex<BTreeSet<u64>>>,
}

impl RunProgress {
    /// Records that an instance is ready, or has ended: it no longer counts as
    /// "never became ready".
    pub(crate) fn settle(&self, id: u64) {
        if let Ok(mut set) = self.unready.lock() {
            set.remove(&id);
        }
    }

    /// Ids of instances neither ready nor ended, in order.
    pub(crate) fn unready(&self) -> Vec<u64> {
        self.unready
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Registers the ids of the run's instances, all not ready yet.
    pub(crate) fn with_ids(self, ids: impl IntoIterator<Item = u64>) -> Self {
        if let Ok(mut set) = self.unready.lock() {
            set.extend(ids);
        }
        self
    }

    /// One channel per group, with its instance count.
    pub(crate) fn new(groups: impl IntoIterator<Item = (Arc<str>, u64)>) -> Self {
        let map = groups
            .into_iter()
            .map(|(name, total)| {
                let (tx, _) = watch::channel(GroupCounts {
                    total,
                    ..GroupCounts::default()
                });
                (name, tx)
            })
            .collect();
        RunProgress {
            groups: Arc::new(RwLock::new(map)),
            unready: Arc::default(),
        }
    }

    /// Changes a group's counts.
    pub(crate) fn update(&self, group: &str, f: impl FnOnce(&mut GroupCounts)) {
        if let Some(tx) = self.groups.read().ok().and_then(|g| g.get(group).cloned()) {
            tx.send_modify(f);
        }
    }

    /// Follows a group's counts; `None` for a group that does not run.
    pub(crate) fn watch(&self, group: &str) -> Option<watch::Receiver<GroupCounts>> {
        let groups = self.groups.read().ok()?;
        groups.get(group).map(watch::Sender::subscribe)
    }

    /// Tracks a group added while the run goes on (a reload), so that its own
    /// `depends_on` and the groups that depend on it wait as at launch. A group
    /// already tracked is left as it is.
    pub(crate) fn add_group(&self, name: Arc<str>, total: u64) {
        if let Ok(mut groups) = self.groups.write() {
            groups.entry(name).or_insert_with(|| {
                watch::channel(GroupCounts {
                    total,
                    ..GroupCounts::default()
                })
                .0
            });
        }
    }
}

/// What one instance has already reported, so that it counts once.
#[derive(Debug, Default)]
pub(crate) struct Reported {
    pub(crate) started: bool,
    pub(crate) ready: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_met_waiting_or_failed() {
        let mut c = GroupCounts {
            total: 2,
            ..GroupCounts::default()
        };
        assert_eq!(
            c.state(DependencyCondition::Ready),
            DependencyState::Waiting { have: 0, total: 2 }
        );
        c.started = 2;
        c.ready = 1;
        assert_eq!(c.state(DependencyCondition::Started), DependencyState::Met);
        c.ended_unready = 1;
        assert_eq!(
            c.state(DependencyCondition::Ready),
            DependencyState::Failed { lost: 1 }
        );
        c.completed = 2;
        assert_eq!(
            c.state(DependencyCondition::Completed),
            DependencyState::Met
        );
    }
}
