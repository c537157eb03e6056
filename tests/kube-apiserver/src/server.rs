//! Shared server state: the store, the Docker client, the per-pod runtimes, the
//! RBAC denials the test asked for, and the request counters.

use crate::store::Store;
use bollard::Docker;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// What the kubelet side knows of one pod (by uid).
pub struct Runtime {
    /// The Docker container, once created.
    pub container: Option<String>,
    /// Deletion requests: `Some(grace seconds)`; 0 forces.
    pub delete: watch::Sender<Option<u32>>,
}

/// The whole server.
pub struct Server {
    /// Objects.
    pub store: Mutex<Store>,
    /// The Docker engine that runs pod containers.
    pub docker: Docker,
    /// Runtimes by pod uid.
    pub runtimes: Mutex<HashMap<String, Runtime>>,
    /// `verb:resource` pairs that answer 403.
    pub forbid: BTreeSet<String>,
    /// Labels of the one node.
    pub node_labels: BTreeMap<String, String>,
    /// The node's name.
    pub node_name: String,
    /// Requests by `verb resource`.
    pub counters: Mutex<BTreeMap<String, u64>>,
    /// Label value put on every container of this server.
    pub id: String,
    /// How many more create/delete requests answer 429 Too Many Requests (as the
    /// API server's priority and fairness does when overloaded).
    pub throttle: std::sync::atomic::AtomicU64,
    /// Fault injection: every watch ends after this long with `410 Gone` (as when
    /// etcd compacted the version it watches from): the client must re-list.
    pub expire_watches: Option<std::time::Duration>,
    /// How long after its container started a pod is reported `Running` (a real
    /// kubelet reports it some hundred milliseconds to seconds later).
    pub running_lag: std::time::Duration,
}

/// Shared handle.
pub type Shared = Arc<Server>;

/// Locks a mutex, ignoring poisoning (a panicked request must not wedge the server).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Container label that marks this server's containers.
pub const SERVER_LABEL: &str = "distarch-fake-apiserver";

impl Server {
    /// Counts one request.
    pub fn count(&self, verb: &str, resource: &str) {
        *lock(&self.counters)
            .entry(format!("{verb} {resource}"))
            .or_default() += 1;
    }

    /// True when this request must be throttled (429); counts it.
    pub fn throttled(&self, verb: &str, resource: &str) -> bool {
        use std::sync::atomic::Ordering;
        let took = self
            .throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if took {
            self.count("throttled", &format!("{verb} {resource}"));
        }
        took
    }

    /// True when the test asked `verb` on `resource` to be forbidden.
    pub fn forbidden(&self, verb: &str, resource: &str) -> bool {
        self.forbid.contains(&format!("{verb}:{resource}"))
    }
}
