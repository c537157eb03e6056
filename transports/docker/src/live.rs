//! The containers this transport has created and not yet let go of, so that
//! `shutdown` can remove any that a cancelled start or an aborted task left.

use crate::api::remove;
use bollard::query_parameters::KillContainerOptions;
use bollard::Docker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Containers by id, with their engine and whether they are to be removed.
#[derive(Clone, Default)]
pub(crate) struct Live {
    containers: Arc<Mutex<HashMap<String, (Docker, bool)>>>,
}

impl Live {
    /// Records a created container.
    pub(crate) fn add(&self, id: &str, docker: &Docker, auto_remove: bool) {
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id.to_string(), (docker.clone(), auto_remove));
    }

    /// Forgets a container that has ended and been dealt with.
    pub(crate) fn forget(&self, id: &str) {
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// Ends every container still recorded, all at once: removes it, or only kills
    /// it when the placement keeps its containers (`auto_remove = false`).
    pub(crate) async fn end_all(&self) {
        let all: Vec<(String, (Docker, bool))> = {
            let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            map.drain().collect()
        };
        let jobs = all
            .into_iter()
            .map(|(id, (docker, auto_remove))| async move {
                if auto_remove {
                    let _ = remove(&docker, &id).await;
                } else {
                    let kill = KillContainerOptions {
                        signal: "SIGKILL".into(),
                    };
                    let _ = docker.kill_container(&id, Some(kill)).await;
                }
            });
        futures_util::future::join_all(jobs).await;
    }
}
