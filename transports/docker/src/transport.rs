//! The `docker` transport: plan targets per engine, spawn containers.

use crate::api::{engine_message, remove, status_code};
use crate::container::{container_name, create_body};
use crate::engine::{EngineAddress, Engines};
use crate::gc::{collect, EngineGc, GcOptions};
use crate::images::ImageFacts;
use crate::images::Images;
use crate::instance::DockerInstance;
use crate::labels::MasterIdentity;
use crate::live::Live;
use crate::settings::DockerSettings;
use crate::watch::Watched;
use crate::wrapper::{resolved_argv, wrap, SHELL};
use async_trait::async_trait;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, DownloadFromContainerOptions,
    StartContainerOptions,
};
use bollard::Docker;
use distarch_core::{
    ConfigError, ConfigErrors, GcReport, GcRequest, Instance, InstanceSpec, PlacementPlan,
    PlacementRef, Prepared, SpawnError, Target, Transport,
};
use futures_util::StreamExt;
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

impl DockerTransport {
    /// Creates the container (under the stdin watcher when `watch_with` gives the
    /// image's facts) and records it.
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        docker: &Docker,
        address: &EngineAddress,
        path: &str,
        name: &str,
        mut body: ContainerCreateBody,
        settings: &DockerSettings,
        spec: &InstanceSpec,
        watch_with: Option<&ImageFacts>,
    ) -> Result<String, SpawnError> {
        if let Some(image) = watch_with {
            let argv = resolved_argv(&body, &image.entrypoint, &image.cmd);
            wrap(&mut body, argv, spec.kill_after);
        }
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            platform: String::new(),
        };
        let created = match docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            // The engine cannot be reached (restarting, say): wait for it, bounded.
            Err(e) if status_code(&e).is_none() && crate::watch::engine_back(docker).await => {
                docker.create_container(Some(options), body).await
            }
            other => other,
        }
        .map_err(|e| create_error(path, address, name, &e))?;
        // If the start is dropped from here on (the run is stopped while starting),
        // the container must not stay behind: `shutdown` ends whatever is recorded.
        self.live.add(&created.id, docker, settings.auto_remove);
        Ok(created.id)
    }
}

/// Whether the image of the created container `id` has the watcher's shell.
async fn has_shell(docker: &Docker, id: &str) -> bool {
    let options = DownloadFromContainerOptions {
        path: SHELL.to_string(),
    };
    let mut archive = docker.download_from_container(id, Some(options));
    matches!(archive.next().await, Some(Ok(_)))
}

/// A docker placement as its plan prepared it: the checked settings and the
/// engine they name.
#[derive(Debug)]
struct PreparedPlacement {
    settings: DockerSettings,
    address: EngineAddress,
}

#[async_trait]
impl Transport for DockerTransport {
    fn name(&self) -> &str {
        "docker"
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        let settings = DockerSettings::from_placement(placement)?;
        let address =
            EngineAddress::resolve(settings.host.as_deref(), settings.cert_path.as_deref())
                .map_err(|m| ConfigError::new(format!("{}.host", placement.path()), m))?;
        let target = Target {
            address: address.url.clone(),
            host: settings.label.clone().unwrap_or_else(|| address.label()),
            instances: placement.instances,
        };
        let prepared = PreparedPlacement { settings, address };
        Ok(PlacementPlan::new(vec![target], Prepared::new(prepared)))
    }

    /// Removes the containers of gone runs on every engine the configuration's
    /// docker placements name (else on the default engine, if there is one).
    async fn gc(&self, request: &GcRequest<'_>) -> GcReport {
        let mut report = GcReport::default();
        for engine in crate::gc::gc_config(request.config, request.dry_run).await {
            if engine.error.is_some() {
                report.error(engine.to_string());
            } else {
                report.info(engine.to_string());
            }
        }
        report
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let path = spec.placement_path();
        let PreparedPlacement { settings, address } = spec.settings::<PreparedPlacement>()?;
        let docker = self.engine(address, &path).await?;
        let image = self
            .images
            .ensure(&docker, address, &settings.image, settings.pull)
            .await
            .map_err(|m| SpawnError::new(format!("{path}: {m}")))?;

        let name = container_name(spec);
        let body = create_body(spec, settings, &self.master);
        // Whether the image has the watcher's shell is found out once per engine
        // and image, with the first container (created under the watcher); the
        // other starts wait for the answer before they create theirs.
        let mut first: Option<String> = None;
        let wrapped = settings.end_with_master
            && *image
                .shell
                .get_or_try_init(|| async {
                    let id = self
                        .create(
                            &docker,
                            address,
                            &path,
                            &name,
                            body.clone(),
                            settings,
                            spec,
                            Some(&image),
                        )
                        .await?;
                    let has = has_shell(&docker, &id).await;
                    first = Some(id);
                    Ok::<bool, SpawnError>(has)
                })
                .await?;
        let id = match first {
            Some(id) if wrapped => id,
            Some(id) => {
                // No shell to run the watcher: run the command as it is.
                if remove(&docker, &id).await.is_ok() {
                    self.live.forget(&id);
                }
                self.create(&docker, address, &path, &name, body, settings, spec, None)
                    .await?
            }
            None => {
                let watch_with = wrapped.then_some(&*image);
                self.create(
                    &docker, address, &path, &name, body, settings, spec, watch_with,
                )
                .await?
            }
        };

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
        // The supervisor kills after `kill_after`; the engine's own timer is a little
        // longer, a backstop that still ends the container if the master dies
        // during the stop.
        let stop_timeout = i32::try_from(spec.kill_after.as_secs_f64().ceil() as i64)
            .unwrap_or(i32::MAX - STOP_BACKSTOP)
            .saturating_add(STOP_BACKSTOP);
        let (io, output, pipes, input_task) = crate::io::wire(attach);
        let watched = Watched {
            docker: docker.clone(),
            id: id.clone(),
            engine: address.url.clone(),
            stop_timeout,
        };
        let (exit, watch_task) = crate::watch::start(watched, output, pipes);
        Ok(Box::new(DockerInstance {
            docker,
            id,
            name,
            engine: address.url.clone(),
            io: Some(io),
            input_task,
            exit,
            watch_task,
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
