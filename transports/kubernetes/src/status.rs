//! Reading a pod's status: is its container running yet, will it never start (image
//! pull failure, unschedulable), how did it end.

use crate::pod::CONTAINER_NAME;
use distarch_core::ExitStatus;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

/// Container waiting reasons after which the container will not start by itself.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Where a pod stands, as far as starting its worker goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not running yet; the text says why when the status tells.
    Pending(Option<String>),
    /// The scheduler cannot place the pod; its message.
    Unschedulable(String),
    /// The container will not start; what the status says.
    WillNotStart(String),
    /// The container is running.
    Running,
    /// The container (or the pod) has ended.
    Ended(ExitStatus),
}

fn container_status(pod: &Pod) -> Option<&ContainerStatus> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find(|s| s.name == CONTAINER_NAME)
        .or_else(|| statuses.first())
}

/// How a terminated container ended.
pub fn exit_status(t: &ContainerStateTerminated) -> ExitStatus {
    if t.reason.as_deref() == Some("OOMKilled") {
        return ExitStatus::OomKilled;
    }
    match t.signal {
        Some(sig) if sig > 0 => ExitStatus::Signaled(sig),
        _ => ExitStatus::Exited(t.exit_code),
    }
}

/// Where `pod` stands.
pub fn progress(pod: &Pod) -> Progress {
    if let Some(cs) = container_status(pod) {
        if let Some(state) = &cs.state {
            if let Some(t) = &state.terminated {
                return Progress::Ended(exit_status(t));
            }
            if state.running.is_some() {
                return Progress::Running;
            }
            if let Some(w) = &state.waiting {
                let reason = w.reason.clone().unwrap_or_default();
                let text = match &w.message {
                    Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                    _ => reason.clone(),
                };
                if FATAL_WAITING.contains(&reason.as_str()) {
                    return Progress::WillNotStart(text);
                }
                return Progress::Pending(Some(text).filter(|t| !t.is_empty()));
            }
        }
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase == "Failed" || phase == "Succeeded" {
        let why = status
            .and_then(|s| s.reason.clone().or_else(|| s.message.clone()))
            .unwrap_or_else(|| format!("pod {phase} without a container status"));
        return Progress::Ended(ExitStatus::Lost(format!("pod {phase}: {why}")));
    }
    if let Some(cond) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
    {
        if cond.status == "False" && cond.reason.as_deref() == Some("Unschedulable") {
            return Progress::Unschedulable(
                cond.message
                    .clone()
                    .unwrap_or_else(|| "no node can run the pod".to_string()),
            );
        }
    }
    Progress::Pending(status.and_then(|s| s.reason.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "worker", "image": "w"}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn fresh_pod_is_pending() {
        assert_eq!(
            progress(&pod(json!({"phase": "Pending"}))),
            Progress::Pending(None)
        );
    }

    #[test]
    fn running_container_is_running() {
        let p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "worker", "ready": true, "restartCount": 0, "image": "w", "imageID": "",
             "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]}));
        assert_eq!(progress(&p), Progress::Running);
    }

    #[test]
    fn terminated_exit_code_is_read() {
        let p = pod(json!({"phase": "Failed", "containerStatuses": [
            {"name": "worker", "ready": false, "restartCount": 0, "image": "w", "imageID": "",
             "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}));
        assert_eq!(progress(&p), Progress::Ended(ExitStatus::Exited(3)));
        let p = pod(json!({"phase": "Failed", "containerStatuses": [
            {"name": "worker", "ready": false, "restartCount": 0, "image": "w", "imageID": "",
             "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        assert_eq!(progress(&p), Progress::Ended(ExitStatus::OomKilled));
    }

    #[test]
    fn image_pull_failure_will_not_start() {
        let p = pod(json!({"phase": "Pending", "containerStatuses": [
            {"name": "worker", "ready": false, "restartCount": 0, "image": "w", "imageID": "",
             "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied for w"}}}]}));
        assert_eq!(
            progress(&p),
            Progress::WillNotStart("ErrImagePull: pull access denied for w".into())
        );
    }

    #[test]
    fn unschedulable_reports_the_scheduler_message() {
        let p = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient cpu."}]}));
        assert_eq!(
            progress(&p),
            Progress::Unschedulable("0/3 nodes are available: 3 Insufficient cpu.".into())
        );
    }

    #[test]
    fn evicted_pod_is_lost() {
        let p = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert!(
            matches!(progress(&p), Progress::Ended(ExitStatus::Lost(t)) if t.contains("Evicted"))
        );
    }
}
