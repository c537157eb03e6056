//! One running container, as the supervisor sees it.

use crate::io::IoTasks;
use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, RemoveContainerOptions, StopContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use distarch_core::{ExitStatus, Instance, InstanceError, InstanceIo};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long `terminate` waits for the engine to answer the stop request before it
/// leaves the engine to carry it out (the engine's own grace timer then runs).
const STOP_ACK: Duration = Duration::from_millis(500);
/// How many times in a row the exit watcher may fail to reach the engine before
/// the container counts as lost.
const WAIT_ATTEMPTS: u32 = 5;

/// A started container: its stdio, and stop/kill/wait through the engine API.
pub struct DockerInstance {
    pub(crate) docker: Docker,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) engine: String,
    pub(crate) io: Option<InstanceIo>,
    pub(crate) io_tasks: IoTasks,
    pub(crate) exit: watch::Receiver<Option<ExitStatus>>,
    pub(crate) exit_task: JoinHandle<()>,
    /// Seconds the engine waits after SIGTERM before SIGKILL on `terminate`.
    pub(crate) stop_timeout: i32,
    pub(crate) auto_remove: bool,
    pub(crate) removed: bool,
    pub(crate) live: crate::live::Live,
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

/// Starts the task that waits for the container to end and publishes how it ended.
pub(crate) fn watch_exit(
    docker: Docker,
    id: String,
) -> (watch::Receiver<Option<ExitStatus>>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let status = wait_exit(&docker, &id).await;
        let _ = tx.send(Some(status));
    });
    (rx, task)
}

async fn wait_exit(docker: &Docker, id: &str) -> ExitStatus {
    let mut failures = 0u32;
    loop {
        let options = WaitContainerOptions {
            condition: "not-running".to_string(),
        };
        let mut stream = docker.wait_container(id, Some(options));
        let code = match stream.next().await {
            Some(Ok(r)) => Some(r.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Some(code),
            Some(Err(_)) | None => None,
        };
        drop(stream);
        if let Some(code) = code {
            return classify(docker, id, code).await;
        }
        // The wait call failed (engine restarting, connection cut): ask directly.
        match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let state = info.state.unwrap_or_default();
                if state.running != Some(true) {
                    if state.oom_killed == Some(true) {
                        return ExitStatus::OomKilled;
                    }
                    return exit_code_status(state.exit_code.unwrap_or(-1));
                }
                failures = 0;
            }
            Err(e) if status_code(&e) == Some(404) => {
                return ExitStatus::Lost("the container was removed by someone else".into())
            }
            Err(e) => {
                failures += 1;
                if failures >= WAIT_ATTEMPTS {
                    return ExitStatus::Lost(format!("cannot reach the engine: {e}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200) * (failures + 1)).await;
    }
}

/// How a container that exited with `code` ended: OOM-killed (from the engine's
/// state), killed by a signal (codes 129..=159, the shell convention the engine
/// uses), or exited.
async fn classify(docker: &Docker, id: &str, code: i64) -> ExitStatus {
    if let Ok(info) = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        if info.state.and_then(|s| s.oom_killed) == Some(true) {
            return ExitStatus::OomKilled;
        }
    }
    exit_code_status(code)
}

fn exit_code_status(code: i64) -> ExitStatus {
    match code {
        129..=159 => ExitStatus::Signaled((code - 128) as i32),
        c => ExitStatus::Exited(i32::try_from(c).unwrap_or(-1)),
    }
}

/// The HTTP status of an engine error, if it is one.
pub(crate) fn status_code(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own message of an error, or the error's text.
pub(crate) fn engine_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

/// Removes a container (and its anonymous volumes), whatever its state.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    match docker.remove_container(id, Some(options)).await {
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        // 409: removal already in progress.
        Err(e) if status_code(&e) == Some(409) => Ok(()),
        other => other,
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
        self.exit_task.abort();
        self.io_tasks.abort();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code_status(0), ExitStatus::Exited(0));
        assert_eq!(exit_code_status(3), ExitStatus::Exited(3));
        assert_eq!(exit_code_status(137), ExitStatus::Signaled(9));
        assert_eq!(exit_code_status(143), ExitStatus::Signaled(15));
        assert_eq!(exit_code_status(255), ExitStatus::Exited(255));
    }
}
