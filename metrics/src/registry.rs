//! The metrics of a run, registered once.

use distarch_core::{Control, InstanceState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Labels `{group}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabels {
    pub(crate) group: String,
}

/// Labels `{group, stream}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StreamLabels {
    pub(crate) group: String,
    pub(crate) stream: String,
}

/// Labels `{group, reason}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) group: String,
    pub(crate) reason: String,
}

/// Labels `{group, transport, state}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    pub(crate) group: String,
    pub(crate) transport: String,
    pub(crate) state: String,
}

/// Labels `{level}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LevelLabels {
    pub(crate) level: String,
}

/// Buckets of the start-to-ready histogram, in seconds (10 ms to about 5 min).
fn ready_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.01, 2.0, 16,
    ))
}

/// Every metric of a run.
pub(crate) struct Set {
    pub(crate) instances: Family<StateLabels, Gauge>,
    pub(crate) up: Family<GroupLabels, Gauge>,
    pub(crate) ready: Family<GroupLabels, Gauge>,
    pub(crate) starts: Family<GroupLabels, Counter>,
    pub(crate) restarts: Family<GroupLabels, Counter>,
    pub(crate) exits: Family<ReasonLabels, Counter>,
    pub(crate) lines: Family<StreamLabels, Counter>,
    pub(crate) frames: Family<GroupLabels, Counter>,
    pub(crate) bytes: Family<GroupLabels, Counter>,
    pub(crate) truncated: Family<GroupLabels, Counter>,
    pub(crate) master_records: Family<LevelLabels, Counter>,
    pub(crate) start_to_ready: Family<GroupLabels, Histogram, fn() -> Histogram>,
}

/// A run's metrics: cheap to clone, every clone updates the same registry.
#[derive(Clone)]
pub struct RunMetrics {
    pub(crate) set: Arc<Set>,
    registry: Arc<Mutex<Registry>>,
}

impl Default for RunMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RunMetrics {
    /// Registers every metric (prefix `distarch_`), with the build's version.
    pub fn new() -> Self {
        let set = Set {
            instances: Family::default(),
            up: Family::default(),
            ready: Family::default(),
            starts: Family::default(),
            restarts: Family::default(),
            exits: Family::default(),
            lines: Family::default(),
            frames: Family::default(),
            bytes: Family::default(),
            truncated: Family::default(),
            master_records: Family::default(),
            start_to_ready: Family::new_with_constructor(ready_buckets),
        };
        let mut r = Registry::with_prefix("distarch");
        r.register(
            "build",
            "The distarch build serving these metrics",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "instances",
            "Instances of the run by group, transport and state",
            set.instances.clone(),
        );
        r.register(
            "up",
            "Instances whose process, container or pod exists (starting, running, ready, stopping)",
            set.up.clone(),
        );
        r.register("ready", "Instances that are ready", set.ready.clone());
        r.register(
            "instance_starts",
            "Starts of instances (first starts and restarts)",
            set.starts.clone(),
        );
        r.register(
            "instance_restarts",
            "Restarts of instances (by policy or by command)",
            set.restarts.clone(),
        );
        r.register(
            "instance_exits",
            "Ends of instances by reason: exit_ok, exit_error, signal, oom, lost, hung, stopped, failed_to_start",
            set.exits.clone(),
        );
        r.register(
            "lines",
            "Lines read from workers (plain lines and log frames), by stream",
            set.lines.clone(),
        );
        r.register(
            "frames",
            "Protocol frames read from workers that reach the event stream (log, ready, status)",
            set.frames.clone(),
        );
        r.register(
            "read_bytes",
            "Bytes of text lines read from workers",
            set.bytes.clone(),
        );
        r.register(
            "lines_truncated",
            "Lines longer than max_line_bytes, cut",
            set.truncated.clone(),
        );
        r.register(
            "master_log_records",
            "Lines of the master's own (its tracing records included), by level",
            set.master_records.clone(),
        );
        r.register(
            "start_to_ready_seconds",
            "Time from an instance's start until it was ready",
            set.start_to_ready.clone(),
        );
        RunMetrics {
            set: Arc::new(set),
            registry: Arc::new(Mutex::new(r)),
        }
    }

    /// Fills the instance gauges from the run's current state.
    pub fn refresh(&self, control: &Control) {
        let mut states: BTreeMap<StateLabels, i64> = BTreeMap::new();
        let mut up: BTreeMap<String, i64> = BTreeMap::new();
        let mut ready: BTreeMap<String, i64> = BTreeMap::new();
        for i in control.snapshot() {
            *states
                .entry(StateLabels {
                    group: i.group.clone(),
                    transport: i.transport.clone(),
                    state: i.state.as_str().to_string(),
                })
                .or_default() += 1;
            *up.entry(i.group.clone()).or_default() += i64::from(i.state.is_live());
            *ready.entry(i.group).or_default() += i64::from(i.state == InstanceState::Ready);
        }
        self.set.instances.clear();
        for (labels, n) in states {
            self.set.instances.get_or_create(&labels).set(n);
        }
        self.set.up.clear();
        self.set.ready.clear();
        for (group, n) in up {
            self.set.up.get_or_create(&GroupLabels { group }).set(n);
        }
        for (group, n) in ready {
            self.set.ready.get_or_create(&GroupLabels { group }).set(n);
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// An observer of the run's events that keeps these metrics.
    pub fn observer(&self) -> crate::MetricsObserver {
        crate::MetricsObserver::new(self.clone())
    }
}

impl PartialOrd for StateLabels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StateLabels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.group, &self.transport, &self.state).cmp(&(
            &other.group,
            &other.transport,
            &other.state,
        ))
    }
}
