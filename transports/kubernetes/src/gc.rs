//! `distarch gc` for Kubernetes: find the runs whose master is gone and delete their
//! owner object and pods.
//!
//! A run's owner ConfigMap records the master's host, pid, process start time and
//! boot id. A run is gone when its master ran on this host and that process no longer
//! exists (or the pid now belongs to another process). Runs of masters on other hosts
//! are left alone and reported. Pods that carry distarch's labels but whose run has no
//! owner object left are deleted too.

use crate::client::{connect, ClusterKey};
use crate::errors::{describe, is_not_found, Call};
use crate::instance::delete_params;
use crate::labels;
use crate::settings::{DEFAULT_API_BURST, DEFAULT_API_QPS};
use distarch_core::owner::{self, MasterIdentity, MasterState};
use distarch_core::Config;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::ListParams;
use kube::Api;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// Where to look: one namespace of one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct GcScope {
    /// Kubeconfig file (default as kubectl).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Context (default: the current one).
    #[serde(default)]
    pub context: Option<String>,
    /// In-cluster configuration.
    #[serde(default)]
    pub in_cluster: bool,
    /// Namespace (default: the context's).
    #[serde(default)]
    pub namespace: Option<String>,
}

impl GcScope {
    /// The scope of a placement's settings (other keys are ignored).
    pub fn from_settings(settings: &Map<String, Value>) -> Self {
        let pick = |k: &str| settings.get(k).cloned();
        let mut m = Map::new();
        for k in ["kubeconfig", "context", "in_cluster", "namespace"] {
            if let Some(v) = pick(k) {
                m.insert(k.to_string(), v);
            }
        }
        serde_json::from_value(Value::Object(m)).unwrap_or_default()
    }
}

/// What gc did (or would do) about one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcAction {
    /// The run's master is gone: its owner object and pods were deleted.
    Deleted {
        /// Namespace.
        namespace: String,
        /// Run id.
        run: String,
        /// Pods deleted.
        pods: usize,
    },
    /// The run's master still runs here.
    Live {
        /// Namespace.
        namespace: String,
        /// Run id.
        run: String,
        /// Master pid.
        pid: u32,
    },
    /// The run's master ran on another host (or boot, or pid namespace): left alone.
    Foreign {
        /// Namespace.
        namespace: String,
        /// Run id.
        run: String,
        /// The master's host.
        host: String,
    },
}

impl fmt::Display for GcAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GcAction::Deleted { namespace, run, pods } => write!(
                f,
                "run {run} in namespace {namespace}: master gone, deleted its owner object and {pods} pod(s)"
            ),
            GcAction::Live { namespace, run, pid } => write!(
                f,
                "run {run} in namespace {namespace}: master (pid {pid}) still running, kept"
            ),
            GcAction::Foreign { namespace, run, host } => write!(
                f,
                "run {run} in namespace {namespace}: master ran on host {host:?} (another machine, boot or pid namespace), not checked from here, kept"
            ),
        }
    }
}

/// Everything gc did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// One entry per run found.
    pub actions: Vec<GcAction>,
}

impl GcReport {
    /// Pods deleted in all.
    pub fn pods_deleted(&self) -> usize {
        self.actions
            .iter()
            .map(|a| match a {
                GcAction::Deleted { pods, .. } => *pods,
                _ => 0,
            })
            .sum()
    }
}

/// gc could not look at a namespace.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GcError {
    /// What failed, and where.
    pub message: String,
    /// The cause.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The master identity recorded in an owner object's data (the `distarch.master.*`
/// keys; owner objects of earlier versions used `master_*` keys, read as well).
fn identity(cm: &ConfigMap) -> Option<MasterIdentity> {
    let data = cm.data.as_ref()?;
    const LEGACY: [(&str, &str); 3] = [
        (owner::MASTER_HOST, "master_host"),
        (owner::MASTER_PID, "master_pid"),
        (owner::MASTER_START, "master_start_ticks"),
    ];
    MasterIdentity::from_entries(|key| {
        data.get(key)
            .or_else(|| {
                let legacy = match key {
                    owner::MASTER_BOOT => Some("master_boot_id"),
                    _ => LEGACY.iter().find(|(k, _)| *k == key).map(|(_, l)| *l),
                };
                legacy.and_then(|l| data.get(l))
            })
            .map(String::as_str)
    })
}

/// Deletes the owner objects and pods of runs whose master is gone, in every scope
/// (with `dry_run`, only reports what it would delete).
pub async fn gc(scopes: &[GcScope], dry_run: bool) -> Result<GcReport, GcError> {
    let unique: BTreeSet<GcScope> = scopes.iter().cloned().collect();
    let mut report = GcReport::default();
    for scope in unique {
        gc_scope(&scope, dry_run, &mut report).await?;
    }
    Ok(report)
}

/// The scopes of a configuration's `kubernetes` placements; without any, the current
/// kube context when a kubeconfig exists (else nothing).
pub fn scopes_in_config(config: Option<&Config>) -> Vec<GcScope> {
    let mut out = Vec::new();
    if let Some(config) = config {
        for group in config.groups.values() {
            for placement in group.placements.values() {
                if placement.transport == crate::transport::NAME {
                    let scope = GcScope::from_settings(&placement.settings);
                    if !out.contains(&scope) {
                        out.push(scope);
                    }
                }
            }
        }
    }
    if out.is_empty() {
        let home_config = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".kube/config"))
            .is_some_and(|p| p.exists());
        if std::env::var_os("KUBECONFIG").is_some() || home_config {
            out.push(GcScope::default());
        }
    }
    out
}

/// What `distarch gc` runs for Kubernetes: one line per run found (or per error)
/// in every scope the configuration names (else the current context, if any).
pub async fn gc_config(config: Option<&Config>, dry_run: bool) -> distarch_core::GcReport {
    let mut out = distarch_core::GcReport::default();
    // Without a kubernetes placement, the current context is looked at only in case:
    // an unreachable cluster there is worth a warning, not a failed gc.
    let explicit = config.is_some_and(|c| {
        c.groups
            .values()
            .flat_map(|g| g.placements.values())
            .any(|p| p.transport == crate::transport::NAME)
    });
    for scope in scopes_in_config(config) {
        match gc(std::slice::from_ref(&scope), dry_run).await {
            Ok(report) => {
                for action in &report.actions {
                    let text = action.to_string();
                    if dry_run {
                        out.info(text.replace("deleted its", "would delete its"));
                    } else {
                        out.info(text);
                    }
                }
                if report.actions.is_empty() {
                    out.info(format!("{}: no run of distarch found", scope.describe()));
                }
            }
            Err(e) if explicit => out.error(format!(
                "{}: {}",
                scope.describe(),
                distarch_core::error_chain(&e)
            )),
            Err(e) => out.warn(format!(
                "{} (no kubernetes placement configured; skipped): {}",
                scope.describe(),
                distarch_core::error_chain(&e)
            )),
        }
    }
    out
}

impl GcScope {
    /// `context/namespace` as the user wrote them (or `current context`).
    pub fn describe(&self) -> String {
        let ctx = self
            .context
            .clone()
            .unwrap_or_else(|| "current context".into());
        match &self.namespace {
            Some(ns) => format!("{ctx}, namespace {ns}"),
            None => ctx,
        }
    }
}

async fn gc_scope(scope: &GcScope, dry_run: bool, report: &mut GcReport) -> Result<(), GcError> {
    let key = ClusterKey {
        kubeconfig: scope.kubeconfig.clone(),
        context: scope.context.clone(),
        in_cluster: scope.in_cluster,
    };
    let cluster = connect(&key, DEFAULT_API_QPS, DEFAULT_API_BURST)
        .await
        .map_err(|e| GcError {
            message: e.message.clone(),
            source: Some(Box::new(e)),
        })?;
    let namespace = scope
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let err = |verb: &'static str, resource: &'static str, e: kube::Error| GcError {
        message: describe(
            Call {
                verb,
                resource,
                namespace: &namespace,
                server: &cluster.server,
            },
            &e,
        ),
        source: Some(Box::new(e)),
    };
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let owner_selector = format!(
        "{},{}={}",
        labels::managed_selector(),
        labels::COMPONENT,
        labels::COMPONENT_OWNER
    );
    let owners = cms
        .list(&ListParams::default().labels(&owner_selector))
        .await
        .map_err(|e| err("list", "configmaps", e))?;
    let all_pods = pods
        .list(&ListParams::default().labels(&labels::managed_selector()))
        .await
        .map_err(|e| err("list", "pods", e))?;
    let mut pods_by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &all_pods.items {
        let run = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::RUN))
            .cloned()
            .unwrap_or_default();
        if let Some(name) = &p.metadata.name {
            pods_by_run.entry(run).or_default().push(name.clone());
        }
    }
    let here = MasterIdentity::current();
    for cm in &owners.items {
        let run = cm
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::RUN))
            .cloned()
            .unwrap_or_default();
        let pod_names = pods_by_run.remove(&run).unwrap_or_default();
        let Some(m) = identity(cm) else { continue };
        match m.state_from(&here) {
            MasterState::Gone => {}
            MasterState::Alive => {
                report.actions.push(GcAction::Live {
                    namespace: namespace.clone(),
                    run,
                    pid: m.pid,
                });
                continue;
            }
            // Unknown (and any state a later version adds): not judged, kept.
            _ => {
                report.actions.push(GcAction::Foreign {
                    namespace: namespace.clone(),
                    run,
                    host: m.host,
                });
                continue;
            }
        }
        if dry_run {
            report.actions.push(GcAction::Deleted {
                namespace: namespace.clone(),
                run,
                pods: pod_names.len(),
            });
            continue;
        }
        let deleted = delete_pods(&pods, &pod_names)
            .await
            .map_err(|e| err("delete", "pods", e))?;
        if let Some(name) = &cm.metadata.name {
            match cms.delete(name, &delete_params(0)).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(err("delete", "configmaps", e)),
            }
        }
        report.actions.push(GcAction::Deleted {
            namespace: namespace.clone(),
            run,
            pods: deleted,
        });
    }
    // Pods whose run has no owner object left.
    for (run, names) in pods_by_run {
        if dry_run {
            report.actions.push(GcAction::Deleted {
                namespace: namespace.clone(),
                run,
                pods: names.len(),
            });
            continue;
        }
        let deleted = delete_pods(&pods, &names)
            .await
            .map_err(|e| err("delete", "pods", e))?;
        report.actions.push(GcAction::Deleted {
            namespace: namespace.clone(),
            run,
            pods: deleted,
        });
    }
    Ok(())
}

async fn delete_pods(pods: &Api<Pod>, names: &[String]) -> Result<usize, kube::Error> {
    let mut deleted = 0;
    for name in names {
        match pods.delete(name, &delete_params(0)).await {
            Ok(_) => deleted += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
