//! The `docker` transport: plan targets per engine, spawn containers.

use crate::container::{container_name, create_body};
use crate::engine::{EngineAddress, Engines};
use crate::gc::{collect, EngineGc, GcOptions};
use crate::images::Images;
use crate::instance::{engine_message, remove, status_code, watch_exit, DockerInstance};
use crate::labels::MasterIdentity;
use crate::live::Live;
use crate::settings::DockerSettings;
use async_trait::async_trait;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use distarch_core::{
    ConfigError, Instance, InstanceSpec, PlacementRef, SpawnError, Target, Transport,
};
use serde_json::Value;
use std::sync::Mutex;
use tokio::task::JoinHandle;

/// How long `shutdown` waits for the collections of gone runs to finish.
const COLLECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Seconds the engine's stop timer runs past the master's `kill_after`.
const STOP_BACKSTOP: i32 = 2;

/// Runs instances as containers on Docker engines (or anything that serves the
/// Docker Engine API).
pub struct DockerTransport {
    engines: Engines,
    live: Live,
    images: Images,
    master: MasterIdentity,
    collect_on_connect: bool,
    collections: Mutex<Vec<JoinHandle<()>>>,
}

impl Default for DockerTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl DockerTransport {
    /// A transport with no engine connected yet.
    pub fn new() -> Self {
        DockerTransport {
            engines: Engines::default(),
            live: Live::default(),
            images: Images::default(),
            master: MasterIdentity::current(),
            collect_on_connect: true,
            collections: Mutex::new(Vec::new()),
        }
    }

    /// Whether to remove, in the background, the containers of gone runs of this
    /// machine when first connecting to an engine (default true).
    pub fn collect_on_connect(mut self, yes: bool) -> Self {
        self.collect_on_connect = yes;
        self
    }

    async fn engine(&self, address: &EngineAddress, path: &str) -> Result<Docker, SpawnError> {
        let (docker, fresh) = self.engines.get(address).await.map_err(|e| {
            SpawnError::with_source(
                format!("{path}: cannot reach the docker engine at {address}"),
                e,
            )
        })?;
        if fresh && self.collect_on_connect {
            let docker = docker.clone();
            let here = self.master.clone();
            let task = tokio::spawn(async move {
                let mut report = EngineGc::default();
                let _ = collect(&docker, &here, &GcOptions::default(), &mut report).await;
            });
            self.collections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
        }
        Ok(docker)
    }
}

fn placement_path(spec: &InstanceSpec) -> String {
    format!("groups.{}.placements.{}", spec.group, spec.placement)
}

#[async_trait]
impl Transport for DockerTransport {
    fn name(&self) -> &str {
        "docker"
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<Vec<Target>, ConfigError> {
        let settings = DockerSettings::from_placement(placement)?;
        let address =
            EngineAddress::resolve(settings.host.as_deref(), settings.cert_path.as_deref())
                .map_err(|m| ConfigError::new(format!("{}.host", placement.path()), m))?;
        Ok(vec![Target {
            address: address.url.clone(),
            host: settings.label.clone().unwrap_or_else(|| address.label()),
            instances: placement.instances,
        }])
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let path = placement_path(spec);
        let settings: DockerSettings =
            serde_json::from_value(Value::Object(spec.settings.as_ref().clone()))
                .map_err(|e| SpawnError::new(format!("{path}: {e}")))?;
        let address =
            EngineAddress::resolve(settings.host.as_deref(), settings.cert_path.as_deref())
                .map_err(|m| SpawnError::new(format!("{path}.host: {m}")))?;
        let docker = self.engine(&address, &path).await?;
        self.images
            .ensure(&docker, &address, &settings.image, settings.pull)
            .await
            .map_err(|m| SpawnError::new(format!("{path}: {m}")))?;

        let name = container_name(spec);
        let body = create_body(spec, &settings, &self.master);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            platform: String::new(),
        };
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| create_error(&path, &address, &name, &e))?;
        let id = created.id;
        // If this future is dropped from here on (the run is stopped while starting),
        // the container must not stay behind: `shutdown` ends whatever is recorded.
        self.live.add(&id, &docker, settings.auto_remove);

        // Attach before start, so that nothing the worker writes is lost.
        let attached = async {
            let options = AttachContainerOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                stream: true,
                logs: false,
                detach_keys: None,
            };
            let attach = docker
                .attach_container(&id, Some(options))
                .await
                .map_err(|e| (format!("cannot attach to container {name}"), e))?;
            docker
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .map_err(|e| (format!("cannot start container {name}"), e))?;
            Ok::<_, (String, bollard::errors::Error)>(attach)
        }
        .await;
        let attach = match attached {
            Ok(a) => a,
            Err((what, e)) => {
                if remove(&docker, &id).await.is_ok() {
                    self.live.forget(&id);
                }
                return Err(SpawnError::new(format!(
                    "{path}: {what} on the docker engine at {address}: {}",
                    engine_message(&e)
                )));
            }
        };
        let (io, io_tasks) = crate::io::wire(attach);
        let (exit, exit_task) = watch_exit(docker.clone(), id.clone());
        // The supervisor kills after `kill_after`; the engine's own timer is a little
        // longer, a backstop that still ends the container if the master dies
        // during the stop.
        let stop_timeout = i32::try_from(spec.kill_after.as_secs_f64().ceil() as i64)
            .unwrap_or(i32::MAX - STOP_BACKSTOP)
            .saturating_add(STOP_BACKSTOP);
        Ok(Box::new(DockerInstance {
            docker,
            id,
            name,
            engine: address.url.clone(),
            io: Some(io),
            io_tasks,
            exit,
            exit_task,
            stop_timeout,
            auto_remove: settings.auto_remove,
            removed: false,
            live: self.live.clone(),
        }))
    }

    async fn shutdown(&self) {
        // Containers of starts that were cancelled, or whose task went away without
        // cleanup, are still recorded: end them now.
        self.live.end_all().await;
        // Let the collections started at connection finish, so a short run still
        // cleans what killed runs left (bounded: an engine may be slow).
        let tasks: Vec<JoinHandle<()>> = self
            .collections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        let _ = tokio::time::timeout(COLLECTION_WAIT, futures_util::future::join_all(tasks)).await;
    }
}

fn create_error(
    path: &str,
    address: &EngineAddress,
    name: &str,
    e: &bollard::errors::Error,
) -> SpawnError {
    let message = match status_code(e) {
        Some(409) => format!(
            "{path}: a container named {name} already exists on the docker engine at {address}"
        ),
        Some(404) => format!(
            "{path}: the docker engine at {address} cannot create container {name}: {}",
            engine_message(e)
        ),
        Some(_) => format!(
            "{path}: the docker engine at {address} refused container {name}: {}",
            engine_message(e)
        ),
        None => {
            return SpawnError::with_source(
                format!("{path}: cannot create container {name} on the docker engine at {address}"),
                clone_error(e),
            )
        }
    };
    SpawnError::new(message)
}

/// bollard errors are not `Clone`; keep their text as the cause.
fn clone_error(e: &bollard::errors::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
