//! [`SshTransport`]: the `ssh` transport.

use crate::command::RemoteCommand;
use crate::instance::SshInstance;
use crate::pool::HostPool;
use crate::resolve::{load_ssh_config, resolve};
use crate::settings::{HostEntry, SshSettings};
use async_trait::async_trait;
use distarch_core::{
    ConfigError, Instance, InstanceSpec, PlacementRef, SpawnError, Target, Transport,
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
        let settings_key = serde_json::Value::Object((*spec.settings).clone()).to_string();
        let key = (settings_key, spec.target.clone());
        let mut pools = self.pools.lock().await;
        if let Some(p) = pools.get(&key) {
            return Ok(p.clone());
        }
        let where_ = format!("groups.{}.placements.{}", spec.group, spec.placement);
        let settings: SshSettings = serde_json::from_value(serde_json::Value::Object(
            (*spec.settings).clone(),
        ))
        .map_err(|e| SpawnError::with_source(format!("{where_}: invalid ssh settings"), e))?;
        let entry: HostEntry = spec
            .target
            .parse()
            .map_err(|e: String| SpawnError::new(format!("{where_}: {e}")))?;
        let config =
            load_ssh_config(&settings).map_err(|e| SpawnError::with_source(where_.clone(), e))?;
        let pool = Arc::new(HostPool::new(resolve(&entry, &settings, config.as_ref())));
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

#[async_trait]
impl Transport for SshTransport {
    fn name(&self) -> &str {
        "ssh"
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<Vec<Target>, ConfigError> {
        let settings: SshSettings = placement.parse_settings()?;
        let path = placement.path();
        if let Some(e) = settings.check().into_iter().next() {
            return Err(e.under(&path));
        }
        if let Err(e) = load_ssh_config(&settings) {
            return Err(ConfigError::new(
                format!("{path}.ssh_config"),
                distarch_core::error_chain(&e),
            ));
        }
        Ok(settings
            .hosts
            .iter()
            .map(|h| Target {
                address: h.clone(),
                host: h.clone(),
                instances: placement.instances,
            })
            .collect())
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
