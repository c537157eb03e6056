//! `distarch gc` for docker: removes the containers of runs whose master is gone.
//!
//! Every container carries its master's identity (host name, boot id, pid and the
//! pid's start time). A container whose master ran on this machine, in this boot,
//! and whose master process no longer exists (or the pid now belongs to another
//! process) is garbage: it is removed, running or not. Containers of masters on
//! other machines are left alone unless a run id is named. The transport runs the
//! same collection in the background when it first connects to an engine, so the
//! next launch cleans what a killed master left.

use crate::api::remove;
use crate::engine::EngineAddress;
use crate::labels::{self, MasterIdentity, MasterState};
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{KillContainerOptions, ListContainersOptions};
use bollard::Docker;
use distarch_core::Config;
use std::collections::HashMap;

/// What to clean.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Engines to clean; empty: the default engine (`DOCKER_HOST`, else the default
    /// socket).
    pub engines: Vec<EngineAddress>,
    /// Remove every container of this run, whatever its master's state.
    pub run: Option<String>,
    /// Only report what would be removed.
    pub dry_run: bool,
}

/// What `gc` found on one engine.
#[derive(Debug, Clone, Default)]
pub struct EngineGc {
    /// The engine.
    pub engine: String,
    /// Containers removed (or, on a dry run, to remove): name and run id.
    pub removed: Vec<(String, String)>,
    /// Containers of gone runs that were still running and are kept stopped
    /// (`auto_remove = false`): name and run id.
    pub stopped: Vec<(String, String)>,
    /// Containers kept because their master still runs.
    pub alive: usize,
    /// Containers kept because their master is on another machine.
    pub unknown: usize,
    /// Why the engine could not be cleaned, if it could not.
    pub error: Option<String>,
    /// Nothing was removed: `removed` lists what would have been.
    pub dry_run: bool,
}

/// The engines named by a configuration's docker placements (their `host` and
/// `cert_path`, or the defaults), without duplicates.
pub fn engines_in_config(config: &Config) -> Vec<EngineAddress> {
    let mut out: Vec<EngineAddress> = Vec::new();
    for group in config.groups.values() {
        for placement in group.placements.values() {
            if placement.transport != "docker" {
                continue;
            }
            let get = |k: &str| placement.settings.get(k).and_then(|v| v.as_str());
            let cert = get("cert_path").map(std::path::Path::new);
            if let Ok(a) = EngineAddress::resolve(get("host"), cert) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// Cleans each engine of `options`; never fails as a whole: each engine's report
/// says what happened there.
pub async fn gc(options: &GcOptions) -> Vec<EngineGc> {
    let engines = if options.engines.is_empty() {
        match EngineAddress::resolve(None, None) {
            Ok(a) => vec![a],
            Err(e) => {
                return vec![EngineGc {
                    engine: "DOCKER_HOST".into(),
                    error: Some(e),
                    ..Default::default()
                }]
            }
        }
    } else {
        options.engines.clone()
    };
    let here = MasterIdentity::current();
    let mut reports = Vec::new();
    for engine in engines {
        let mut report = EngineGc {
            engine: engine.to_string(),
            dry_run: options.dry_run,
            ..Default::default()
        };
        match engine.connect().await {
            Ok(docker) => {
                if let Err(e) = collect(&docker, &here, options, &mut report).await {
                    report.error = Some(e);
                }
            }
            Err(e) => {
                report.error = Some(distarch_core::error_chain(&e));
            }
        }
        reports.push(report);
    }
    reports
}

/// Removes the containers that `options` makes garbage on one engine.
pub(crate) async fn collect(
    docker: &Docker,
    here: &MasterIdentity,
    options: &GcOptions,
    report: &mut EngineGc,
) -> Result<(), String> {
    let label = match &options.run {
        Some(run) => format!("{}={run}", labels::RUN),
        None => labels::RUN.to_string(),
    };
    let list = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), vec![label])])),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(list))
        .await
        .map_err(|e| format!("cannot list containers: {}", crate::api::engine_message(&e)))?;
    for c in containers {
        let (Some(id), Some(container_labels)) = (c.id, c.labels) else {
            continue;
        };
        let state = if options.run.is_some() {
            MasterState::Gone
        } else {
            labels::master_from_labels(&container_labels)
                .map_or(MasterState::Unknown, |m| m.state_from(here))
        };
        match state {
            MasterState::Alive => report.alive += 1,
            MasterState::Gone => {
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| id.clone());
                let run = container_labels
                    .get(labels::RUN)
                    .cloned()
                    .unwrap_or_default();
                let keep = container_labels
                    .get(labels::AUTO_REMOVE)
                    .map(String::as_str)
                    == Some("false");
                if keep {
                    // The placement asked to keep its containers: only make sure
                    // nothing of the gone run still runs.
                    if c.state == Some(ContainerSummaryStateEnum::RUNNING) {
                        if !options.dry_run {
                            let kill = KillContainerOptions {
                                signal: "SIGKILL".into(),
                            };
                            let _ = docker.kill_container(&id, Some(kill)).await;
                        }
                        report.stopped.push((name, run));
                    }
                    continue;
                }
                if !options.dry_run {
                    remove(docker, &id)
                        .await
                        .map_err(|e| format!("cannot remove container {name}: {e}"))?;
                }
                report.removed.push((name, run));
            }
            // Unknown (and any state a later version adds): not judged, kept.
            _ => report.unknown += 1,
        }
    }
    Ok(())
}

/// `gc` for the engines a configuration names (or the default engine when it names
/// none, or there is no configuration): what `distarch gc` runs.
pub async fn gc_config(config: Option<&Config>, dry_run: bool) -> Vec<EngineGc> {
    let engines = config.map(engines_in_config).unwrap_or_default();
    let default_missing = std::env::var_os("DOCKER_HOST").is_none()
        && !std::path::Path::new(crate::engine::DEFAULT_HOST.trim_start_matches("unix://"))
            .exists();
    if engines.is_empty() && default_missing {
        // No docker placement and no docker here: nothing of ours can exist.
        return Vec::new();
    }
    let options = GcOptions {
        engines,
        run: None,
        dry_run,
    };
    gc(&options).await
}

impl std::fmt::Display for EngineGc {
    /// One line for the user, e.g. `engine unix:///var/run/docker.sock: removed 2
    /// container(s) of gone runs (...); kept 0 of live runs and 0 of masters on
    /// other machines`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.error {
            return write!(f, "engine {}: {e}", self.engine);
        }
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        write!(
            f,
            "engine {}: {verb} {} container(s) of gone runs",
            self.engine,
            self.removed.len()
        )?;
        if !self.removed.is_empty() {
            let names: Vec<&str> = self.removed.iter().map(|(n, _)| n.as_str()).collect();
            write!(f, " ({})", names.join(", "))?;
        }
        if !self.stopped.is_empty() {
            let names: Vec<&str> = self.stopped.iter().map(|(n, _)| n.as_str()).collect();
            write!(
                f,
                "; killed and kept {} (auto_remove = false)",
                names.join(", ")
            )?;
        }
        write!(
            f,
            "; kept {} of live runs and {} of masters on other machines",
            self.alive, self.unknown
        )
    }
}
