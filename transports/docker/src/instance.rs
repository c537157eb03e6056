//! One running container, as the supervisor sees it.

use crate::api::{remove, status_code};
use crate::live::Live;
use async_trait::async_trait;
use bollard::query_parameters::{KillContainerOptions, StopContainerOptions};
use bollard::Docker;
use distarch_core::{ExitStatus, Instance, InstanceError, InstanceIo};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long `terminate` waits for the engine to answer the stop request before it
/// leaves the engine to carry it out (the engine's own grace timer then runs).
const STOP_ACK: Duration = Duration::from_millis(500);

/// A started container: its stdio, and stop/kill/wait through the engine API.
pub struct DockerInstance {
    pub(crate) docker: Docker,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) engine: String,
    pub(crate) io: Option<InstanceIo>,
    /// Copies the master's writes into the container's stdin.
    pub(crate) input_task: JoinHandle<()>,
    /// How the container ended, once the watch task knows.
    pub(crate) exit: watch::Receiver<Option<ExitStatus>>,
    /// The watch task (output, exit, a dropped attach).
    pub(crate) watch_task: JoinHandle<()>,
    /// Seconds the engine waits after SIGTERM before SIGKILL on `terminate`.
    pub(crate) stop_timeout: i32,
    pub(crate) auto_remove: bool,
    pub(crate) removed: bool,
    pub(crate) live: Live,
}

impl DockerInstance {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

#[async_trait]
impl Instance for DockerInstance {
    fn take_io(&mut self) -> Option<InstanceIo> {
        self.io.take()
    }

    fn describe(&self) -> String {
        let short: String = self.id.chars().take(12).collect();
        format!("container {} ({short}) on {}", self.name, self.engine)
    }

    async fn terminate(&mut self) -> Result<(), InstanceError> {
        let docker = self.docker.clone();
        let id = self.id.clone();
        let options = StopContainerOptions {
            t: Some(self.stop_timeout),
            signal: None,
        };
        // `docker stop` answers only once the container has stopped; the engine
        // runs the grace timer (SIGTERM, then SIGKILL after `t` seconds), so the
        // request goes on in the background and errors are reported if they come
        // at once.
        let mut request =
            tokio::spawn(async move { docker.stop_container(&id, Some(options)).await });
        match tokio::time::timeout(STOP_ACK, &mut request).await {
            Ok(Ok(Ok(()))) | Err(_) => Ok(()),
            Ok(Ok(Err(e))) if matches!(status_code(&e), Some(304 | 404 | 409)) => Ok(()),
            Ok(Ok(Err(e))) => Err(InstanceError::with_source(
                format!("docker stop of {} on {} failed", self.name, self.engine),
                e,
            )),
            Ok(Err(e)) => Err(InstanceError::with_source("docker stop did not run", e)),
        }
    }

    async fn kill(&mut self) -> Result<(), InstanceError> {
        let options = KillContainerOptions {
            signal: "SIGKILL".to_string(),
        };
        match self.docker.kill_container(&self.id, Some(options)).await {
            Ok(()) => Ok(()),
            // Not running any more, or gone: nothing to kill.
            Err(e) if matches!(status_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(InstanceError::with_source(
                format!("docker kill of {} on {} failed", self.name, self.engine),
                e,
            )),
        }
    }

    async fn wait(&mut self) -> Result<ExitStatus, InstanceError> {
        loop {
            if let Some(status) = self.exit.borrow().clone() {
                return Ok(status);
            }
            // `changed` is cancel-safe: dropping this future loses nothing.
            if self.exit.changed().await.is_err() {
                return Err(InstanceError::new(format!(
                    "the exit of container {} could not be watched",
                    self.name
                )));
            }
        }
    }

    async fn cleanup(&mut self) {
        if self.auto_remove && !self.removed {
            // Removing a container ends its attach too, so the output tasks finish.
            if remove(&self.docker, &self.id).await.is_ok() {
                self.removed = true;
                self.live.forget(&self.id);
            }
        } else if !self.auto_remove {
            // Ended and kept on purpose.
            self.live.forget(&self.id);
        }
    }
}

impl Drop for DockerInstance {
    fn drop(&mut self) {
        self.watch_task.abort();
        self.input_task.abort();
        if self.auto_remove && !self.removed {
            // The supervisor went away without cleanup (a task aborted): still do
            // not leave the container behind.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let docker = self.docker.clone();
                let id = self.id.clone();
                handle.spawn(async move {
                    let _ = remove(&docker, &id).await;
                });
            }
        }
    }
}
