//! [`SshTransport`]: the `ssh` transport.

use crate::command::RemoteCommand;
use crate::instance::SshInstance;
use crate::pool::HostPool;
use crate::resolve::{load_ssh_config, resolve, ResolvedHost};
use crate::settings::{HostEntry, SshSettings};
use async_trait::async_trait;
use distarch_core::{
    ConfigError, ConfigErrors, Instance, InstanceSpec, PlacementPlan, PlacementRef, Prepared,
    SpawnError, Target, Transport,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Least time the agent has to report a started worker's pid.
const STARTUP: Duration = Duration::from_secs(30);

/// Runs instances on remote hosts over SSH; one pool of connections per host.
#[derive(Default)]
pub struct SshTransport {
    pools: tokio::sync::Mutex<HashMap<(String, String), Arc<HostPool>>>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport").finish_non_exhaustive()
    }
}

impl SshTransport {
    /// A transport with no connection yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many live connections the transport holds to `host` (the host entry as
    /// written), over all placements.
    pub async fn connections_to(&self, host: &str) -> usize {
        let pools = self.pools.lock().await;
        pools
            .iter()
            .filter(|((_, h), _)| h == host)
            .map(|(_, p)| p.connections())
            .sum()
    }

    async fn pool(&self, spec: &InstanceSpec) -> Result<Arc<HostPool>, SpawnError> {
        let prepared = spec.settings::<PreparedHosts>()?;
        let key = (prepared.key.clone(), spec.target.clone());
        let mut pools = self.pools.lock().await;
        if let Some(p) = pools.get(&key) {
            return Ok(p.clone());
        }
        let host = prepared.hosts.get(&spec.target).ok_or_else(|| {
            SpawnError::new(format!(
                "{}: host `{}` is not one the placement planned",
                spec.placement_path(),
                spec.target
            ))
        })?;
        let pool = Arc::new(HostPool::new(host.clone()));
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

/// An ssh placement as its plan prepared it: every host resolved, the ssh config
/// applied, so that a start reads nothing again.
#[derive(Debug)]
struct PreparedHosts {
    /// The settings as written, as text: placements with equal settings share
    /// their connections to a host.
    key: String,
    /// Host entry as written (the target address) → where and how to connect.
    hosts: HashMap<String, ResolvedHost>,
}

#[async_trait]
impl Transport for SshTransport {
    fn name(&self) -> &str {
        "ssh"
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        let settings: SshSettings = placement.parse_settings()?;
        let path = placement.path();
        let mut errors: Vec<ConfigError> = settings
            .check()
            .into_iter()
            .map(|e| e.under(&path))
            .collect();
        let config = match load_ssh_config(&settings) {
            Ok(c) => c,
            Err(e) => {
                errors.push(ConfigError::new(
                    format!("{path}.ssh_config"),
                    distarch_core::error_chain(&e),
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut hosts = HashMap::new();
        let mut targets = Vec::new();
        for h in &settings.hosts {
            // `check` parsed every entry already.
            if let Ok(entry) = h.parse::<HostEntry>() {
                hosts.insert(h.clone(), resolve(&entry, &settings, config.as_ref()));
            }
            targets.push(Target {
                address: h.clone(),
                host: h.clone(),
                instances: placement.instances,
            });
        }
        let prepared = PreparedHosts {
            key: serde_json::Value::Object(placement.settings.clone()).to_string(),
            hosts,
        };
        Ok(PlacementPlan::new(targets, Prepared::new(prepared)))
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let pool = self.pool(spec).await?;
        let host = pool.host.clone();
        let mut argv = Vec::with_capacity(spec.command.len() + 3);
        if let Some(n) = spec.priority {
            argv.extend(["nice".to_string(), "-n".to_string(), n.to_string()]);
        }
        argv.extend(spec.command.iter().cloned());
        let workdir =
            match &spec.workdir {
                Some(w) => Some(w.to_str().ok_or_else(|| {
                    SpawnError::new(format!("workdir {} is not UTF-8", w.display()))
                })?),
                None => None,
            };
        let command = RemoteCommand {
            argv: &argv,
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            workdir,
            grace: spec.stop_grace,
            kill_after: spec.kill_after,
        };
        command.check().map_err(|e| {
            SpawnError::with_source(format!("cannot build the command for {}", host.label), e)
        })?;
        let agent = pool
            .agent()
            .await
            .map_err(|e| SpawnError::with_source(format!("cannot start on {}", host.label), e))?;
        let registered = agent.register().ok_or_else(|| {
            SpawnError::new(format!(
                "cannot start on {}: the connection dropped",
                host.label
            ))
        })?;
        let lines = command.start_lines(registered.id).map_err(|e| {
            SpawnError::with_source(format!("cannot build the command for {}", host.label), e)
        })?;
        let instance =
            SshInstance::start(agent, registered, lines, host.connect_timeout.max(STARTUP)).await?;
        Ok(Box::new(instance))
    }

    async fn shutdown(&self) {
        let pools: Vec<Arc<HostPool>> = self.pools.lock().await.drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.shutdown().await;
        }
    }
}
