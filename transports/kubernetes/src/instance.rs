//! A started pod as an [`Instance`]: its stdio (attach for stdin, the log or the
//! attach for output), its end read from the shared watch, and deletion as stop.

use crate::errors::{instance_error, is_not_found, Call};
use crate::status::{progress, Progress};
use crate::watch::{PodState, PodWatch};
use async_trait::async_trait;
use distarch_core::{ExitStatus, Instance, InstanceError, InstanceIo};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachedProcess, DeleteParams, PropagationPolicy};
use kube::Api;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long cleanup waits for the log to be read to its end before deleting the pod.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// How the pod was asked to go, strongest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Deletion {
    None,
    Graceful,
    Forced,
}

/// One pod, owned by one supervisor task.
pub struct PodInstance {
    pub(crate) api: Api<Pod>,
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) server: String,
    pub(crate) state: watch::Receiver<PodState>,
    pub(crate) watch: Arc<PodWatch>,
    pub(crate) io: Option<InstanceIo>,
    /// Kept alive for the life of the pod: dropping it ends the attach.
    pub(crate) attached: Option<AttachedProcess>,
    /// Turns true once the followed log has been read to its end.
    pub(crate) log_done: Option<watch::Receiver<bool>>,
    pub(crate) kill_after: Duration,
    deletion: Deletion,
}

impl PodInstance {
    /// Wraps a started pod.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        api: Api<Pod>,
        name: String,
        namespace: String,
        server: String,
        state: watch::Receiver<PodState>,
        watch: Arc<PodWatch>,
        io: InstanceIo,
        attached: Option<AttachedProcess>,
        log_done: Option<watch::Receiver<bool>>,
        kill_after: Duration,
    ) -> Self {
        PodInstance {
            api,
            name,
            namespace,
            server,
            state,
            watch,
            io: Some(io),
            attached,
            log_done,
            kill_after,
            deletion: Deletion::None,
        }
    }

    fn call<'a>(&'a self, verb: &'a str) -> Call<'a> {
        Call {
            verb,
            resource: "pods",
            namespace: &self.namespace,
            server: &self.server,
        }
    }

    async fn delete(&mut self, grace: u32, kind: Deletion) -> Result<(), InstanceError> {
        let params = delete_params(grace);
        match self.api.delete(&self.name, &params).await {
            Ok(_) => {
                self.deletion = self.deletion.max(kind);
                Ok(())
            }
            Err(e) if is_not_found(&e) => {
                self.deletion = self.deletion.max(kind);
                Ok(())
            }
            Err(e) => Err(instance_error(self.call("delete"), e)),
        }
    }

    /// The exit of the pod given its state, if it has ended.
    fn ended(&self, state: &PodState) -> Option<ExitStatus> {
        if let Some(pod) = &state.pod {
            if let Progress::Ended(exit) = progress(pod) {
                // A real kubelet reports the container's end (SIGTERM/SIGKILL of the
                // graceful deletion) before the pod object goes: a deletion distarch
                // did not ask for is still someone else's.
                if self.deletion == Deletion::None && pod.metadata.deletion_timestamp.is_some() {
                    return Some(ExitStatus::Lost(format!(
                        "pod {}/{} was deleted by someone else ({exit})",
                        self.namespace, self.name
                    )));
                }
                return Some(exit);
            }
        }
        if state.deleted {
            return Some(match self.deletion {
                Deletion::Forced => ExitStatus::Signaled(9),
                Deletion::Graceful => ExitStatus::Signaled(15),
                Deletion::None => ExitStatus::Lost(format!(
                    "pod {}/{} was deleted by someone else",
                    self.namespace, self.name
                )),
            });
        }
        None
    }
}

/// The delete options distarch sends: the grace in seconds (0 forces) and
/// background propagation.
pub fn delete_params(grace: u32) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(grace),
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    }
}

/// Whole seconds of a grace, rounded up, at least 1 (0 would force the deletion).
pub fn grace_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[async_trait]
impl Instance for PodInstance {
    fn take_io(&mut self) -> Option<InstanceIo> {
        self.io.take()
    }

    fn describe(&self) -> String {
        format!("pod {}/{}", self.namespace, self.name)
    }

    async fn terminate(&mut self) -> Result<(), InstanceError> {
        let grace = grace_seconds(self.kill_after);
        self.delete(grace, Deletion::Graceful).await
    }

    async fn kill(&mut self) -> Result<(), InstanceError> {
        self.delete(0, Deletion::Forced).await
    }

    async fn wait(&mut self) -> Result<ExitStatus, InstanceError> {
        loop {
            let state = self.state.borrow_and_update().clone();
            if let Some(exit) = self.ended(&state) {
                return Ok(exit);
            }
            if let Some(error) = state.watch_error {
                return Err(InstanceError::new(format!(
                    "lost track of pod {}/{}: {error}",
                    self.namespace, self.name
                )));
            }
            if self.state.changed().await.is_err() {
                return Err(InstanceError::new(format!(
                    "lost track of pod {}/{}: the watch ended",
                    self.namespace, self.name
                )));
            }
        }
    }

    async fn cleanup(&mut self) {
        // Deleting the pod ends its log: let the log be read to its last line first
        // (bounded: a stuck reader must not keep the pod).
        // (Only when someone reads it: the streams were handed out.)
        if let (Some(done), None) = (self.log_done.as_mut(), self.io.as_ref()) {
            let _ = tokio::time::timeout(LOG_DRAIN, done.wait_for(|d| *d)).await;
        }
        let already_gone = self.state.borrow().deleted;
        if !already_gone && self.deletion < Deletion::Forced {
            if let Err(e) = self.delete(0, Deletion::Forced).await {
                tracing::warn!(pod = %self.name, error = %e, "could not delete the pod");
            }
        }
        self.attached = None;
        self.watch.unsubscribe(&self.name);
    }
}

impl Drop for PodInstance {
    fn drop(&mut self) {
        self.watch.unsubscribe(&self.name);
    }
}
