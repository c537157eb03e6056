//! Keeping the metrics from the run's events.

use crate::registry::{GroupLabels, LevelLabels, ReasonLabels, RunMetrics, StreamLabels};
use distarch_core::{Event, EventObserver, ExitStatus, LogStream};
use prometheus_client::metrics::counter::Counter;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// The per-group counters of the hot path (every batch of lines), looked up once.
struct GroupCounters {
    stdout: Counter,
    stderr: Counter,
    frames: Counter,
    bytes: Counter,
    truncated: Counter,
}

/// An [`EventObserver`] that keeps a [`RunMetrics`] up to date.
pub struct MetricsObserver {
    metrics: RunMetrics,
    groups: HashMap<Arc<str>, GroupCounters>,
    /// When each instance's current start began (until it is ready).
    starting: HashMap<u64, Instant>,
    /// Instances that timed out: their next end counts as `hung`.
    hung: HashSet<u64>,
}

impl MetricsObserver {
    pub(crate) fn new(metrics: RunMetrics) -> Self {
        MetricsObserver {
            metrics,
            groups: HashMap::new(),
            starting: HashMap::new(),
            hung: HashSet::new(),
        }
    }

    fn group(&mut self, group: &Arc<str>) -> &GroupCounters {
        let set = &self.metrics.set;
        self.groups.entry(group.clone()).or_insert_with(|| {
            let g = group.to_string();
            let stream = |s: &str| {
                set.lines
                    .get_or_create(&StreamLabels {
                        group: g.clone(),
                        stream: s.into(),
                    })
                    .clone()
            };
            let labels = GroupLabels { group: g.clone() };
            GroupCounters {
                stdout: stream("stdout"),
                stderr: stream("stderr"),
                frames: set.frames.get_or_create(&labels).clone(),
                bytes: set.bytes.get_or_create(&labels).clone(),
                truncated: set.truncated.get_or_create(&labels).clone(),
            }
        })
    }

    fn exit(&self, group: &str, reason: &str) {
        self.metrics
            .set
            .exits
            .get_or_create(&ReasonLabels {
                group: group.into(),
                reason: reason.into(),
            })
            .inc();
    }
}

/// The reason label of an instance's end.
fn exit_reason(exit: &ExitStatus, stopped_by_master: bool) -> &'static str {
    match exit {
        ExitStatus::OomKilled => "oom",
        _ if stopped_by_master => "stopped",
        ExitStatus::Exited(0) => "exit_ok",
        ExitStatus::Exited(_) => "exit_error",
        ExitStatus::Signaled(_) => "signal",
        ExitStatus::Lost(_) => "lost",
        _ => "other",
    }
}

impl EventObserver for MetricsObserver {
    fn observe(&mut self, event: &Event) {
        let set = self.metrics.set.clone();
        let group_labels = |g: &str| GroupLabels { group: g.into() };
        match event {
            Event::Lines(lines) => {
                let c = self.group(&lines.instance.group);
                let n = lines.len() as u64;
                match lines.stream {
                    LogStream::Stdout => c.stdout.inc_by(n),
                    LogStream::Stderr => c.stderr.inc_by(n),
                };
                let mut bytes = 0;
                let mut cut = 0;
                for (line, truncated) in lines.iter() {
                    bytes += line.len() as u64 + 1;
                    cut += u64::from(truncated);
                }
                c.bytes.inc_by(bytes);
                if cut > 0 {
                    c.truncated.inc_by(cut);
                }
            }
            Event::Log(r) => match &r.instance {
                Some(i) if r.stream.is_some() => {
                    let c = self.group(&i.group);
                    c.stdout.inc();
                    c.frames.inc();
                    c.bytes.inc_by(r.message.len() as u64 + 1);
                    if r.truncated {
                        c.truncated.inc();
                    }
                }
                _ => {
                    set.master_records
                        .get_or_create(&LevelLabels {
                            level: r.level.as_str().into(),
                        })
                        .inc();
                }
            },
            Event::InstanceCreated(i) => {
                self.starting.insert(i.id, Instant::now());
            }
            Event::InstanceStarted { instance, .. } => {
                set.starts
                    .get_or_create(&group_labels(&instance.group))
                    .inc();
            }
            Event::InstanceReady(i) => {
                self.group(&i.group).frames.inc();
                if let Some(since) = self.starting.remove(&i.id) {
                    set.start_to_ready
                        .get_or_create(&group_labels(&i.group))
                        .observe(since.elapsed().as_secs_f64());
                }
            }
            Event::InstanceStatus { instance, .. } => {
                self.group(&instance.group).frames.inc();
            }
            Event::InstanceRestarting { instance, .. } => {
                set.restarts
                    .get_or_create(&group_labels(&instance.group))
                    .inc();
            }
            Event::InstanceTimedOut { instance, .. } => {
                self.hung.insert(instance.id);
            }
            Event::InstanceFailedToStart { instance, .. } => {
                self.starting.remove(&instance.id);
                self.exit(&instance.group, "failed_to_start");
            }
            Event::InstanceStopped {
                instance,
                exit,
                stopped_by,
            } => {
                self.starting.remove(&instance.id);
                let reason = if self.hung.remove(&instance.id) {
                    "hung"
                } else {
                    exit_reason(exit, stopped_by.is_some())
                };
                self.exit(&instance.group, reason);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(exit_reason(&ExitStatus::OomKilled, true), "oom");
        assert_eq!(exit_reason(&ExitStatus::Exited(0), false), "exit_ok");
        assert_eq!(exit_reason(&ExitStatus::Exited(3), false), "exit_error");
        assert_eq!(exit_reason(&ExitStatus::Signaled(9), false), "signal");
        assert_eq!(exit_reason(&ExitStatus::Exited(0), true), "stopped");
        assert_eq!(exit_reason(&ExitStatus::Lost("x".into()), false), "lost");
    }
}
