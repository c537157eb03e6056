//! The node side: for each pod, what the scheduler and the kubelet would do, with a
//! Docker container standing in for the pod's (single) container. Status changes
//! go through the store, so watches see them in order: scheduled, image checked,
//! container created and started (Running), terminated with its exit code
//! (Succeeded/Failed), then removed once deletion was asked for.

use crate::api::stream_body;
use crate::http::{bad_request, flag, not_found, Body};
use crate::server::{lock, Runtime, Shared, SERVER_LABEL};
use crate::store::{now, Key};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use hyper::Response;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition,
};

use std::collections::{BTreeMap, HashMap};
use tokio::sync::watch;

/// Starts the node-side life of a new pod.
pub fn start(server: Shared, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (tx, rx) = watch::channel(None);
    lock(&server.runtimes).insert(
        uid.clone(),
        Runtime {
            container: None,
            delete: tx,
        },
    );
    tokio::spawn(async move {
        let key: Key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        run(&server, &key, &uid, pod, rx).await;
        // Finalize: the object goes (if the force path has not removed it yet), then
        // the container.
        lock(&server.store).remove_pod(&key, Some(&uid));
        let container = lock(&server.runtimes)
            .remove(&uid)
            .and_then(|r| r.container);
        if let Some(id) = container {
            let opts = RemoveContainerOptions {
                force: true,
                v: true,
                ..RemoveContainerOptions::default()
            };
            let _ = server.docker.remove_container(&id, Some(opts)).await;
        }
    });
}

fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        last_transition_time: Some(now()),
        ..PodCondition::default()
    }
}

fn set_condition(pod: &mut Pod, c: PodCondition) {
    let status = pod.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

fn set_container(pod: &mut Pod, state: ContainerState, ready: bool, id: Option<&str>) {
    let spec_c = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .unwrap_or_default();
    let status = pod.status.get_or_insert_with(Default::default);
    status.container_statuses = Some(vec![ContainerStatus {
        name: spec_c.name.clone(),
        image: spec_c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        container_id: id.map(|i| format!("docker://{i}")),
        ready,
        started: Some(state.running.is_some()),
        restart_count: 0,
        state: Some(state),
        ..ContainerStatus::default()
    }]);
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(message.into()).filter(|m: &String| !m.is_empty()),
        }),
        ..ContainerState::default()
    }
}

async fn deletion_asked(del: &mut watch::Receiver<Option<u32>>) {
    while del.borrow_and_update().is_none() {
        if del.changed().await.is_err() {
            // The runtime entry is gone: nothing will ask any more.
            std::future::pending::<()>().await;
        }
    }
}

fn parse_quantity(q: &str) -> Option<i64> {
    let units: [(&str, i64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, mult) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<i64>().ok().map(|n| n * mult);
        }
    }
    q.parse().ok()
}

async fn run(
    server: &Shared,
    key: &Key,
    uid: &str,
    pod: Pod,
    mut del: watch::Receiver<Option<u32>>,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    let container = spec.containers.first().cloned().unwrap_or_default();
    let update = |f: &dyn Fn(&mut Pod)| lock(&server.store).update_pod(key, uid, |p| f(p));
    let event = |type_: &str, reason: &str, message: &str, source: &str| {
        let current = lock(&server.store).pods.get(key).cloned();
        if let Some(p) = current {
            lock(&server.store).pod_event(&p, type_, reason, message, source);
        }
    };

    // The scheduler: one node, matched by nodeSelector.
    let fits = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| server.node_labels.get(k) == Some(v));
    if !fits {
        let msg = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
        update(&|p| {
            set_condition(
                p,
                condition("PodScheduled", false, Some("Unschedulable"), Some(msg)),
            )
        });
        event("Warning", "FailedScheduling", msg, "default-scheduler");
        deletion_asked(&mut del).await;
        return;
    }
    let node = server.node_name.clone();
    update(&|p| {
        if let Some(s) = p.spec.as_mut() {
            s.node_name = Some(node.clone());
        }
        set_condition(p, condition("PodScheduled", true, None, None));
    });
    event(
        "Normal",
        "Scheduled",
        &format!("Successfully assigned {}/{} to {node}", key.0, key.1),
        "default-scheduler",
    );
    if del.borrow().is_some() {
        return;
    }

    // The image: there is no registry, so a pull can only fail.
    let image = container.image.clone().unwrap_or_default();
    let policy = container
        .image_pull_policy
        .clone()
        .unwrap_or_else(|| "IfNotPresent".into());
    let present = server.docker.inspect_image(&image).await.is_ok();
    let failure = match (policy.as_str(), present) {
        ("Never", false) => Some(("ErrImageNeverPull", format!("Container image \"{image}\" is not present with pull policy of Never"))),
        ("Always", _) | (_, false) => Some(("ErrImagePull", format!(
            "failed to pull and unpack image \"{image}\": the test API server has no registry to pull from"
        ))),
        _ => None,
    };
    if let Some((reason, message)) = failure {
        update(&|p| {
            set_container(p, waiting(reason, &message), false, None);
            set_condition(
                p,
                condition(
                    "Ready",
                    false,
                    Some("ContainersNotReady"),
                    Some("containers with unready status: [worker]"),
                ),
            );
        });
        let ev_reason = if reason == "ErrImagePull" {
            "Failed"
        } else {
            reason
        };
        event(
            "Warning",
            ev_reason,
            &format!("Failed to pull image \"{image}\": {message}"),
            "kubelet",
        );
        deletion_asked(&mut del).await;
        return;
    }
    event(
        "Normal",
        "Pulled",
        &format!("Container image \"{image}\" already present on machine"),
        "kubelet",
    );

    // Create the container.
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(SERVER_LABEL.into(), server.id.clone());
    labels.insert("io.kubernetes.pod.name".into(), key.1.clone());
    labels.insert("io.kubernetes.pod.namespace".into(), key.0.clone());
    labels.insert("io.kubernetes.pod.uid".into(), uid.to_string());
    labels.insert(
        "io.kubernetes.container.name".into(),
        container.name.clone(),
    );
    let mut env = Vec::new();
    for e in container.env.iter().flatten() {
        if e.value_from.is_some() {
            let msg = format!(
                "valueFrom of env {} is not supported by the test API server",
                e.name
            );
            update(&|p| set_container(p, waiting("CreateContainerConfigError", &msg), false, None));
            event("Warning", "Failed", &format!("Error: {msg}"), "kubelet");
            deletion_asked(&mut del).await;
            return;
        }
        env.push(format!(
            "{}={}",
            e.name,
            e.value.clone().unwrap_or_default()
        ));
    }
    let memory = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| parse_quantity(&q.0));
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        entrypoint: container.command.clone(),
        cmd: container.args.clone(),
        env: Some(env),
        working_dir: container.working_dir.clone(),
        open_stdin: container.stdin,
        stdin_once: container.stdin_once,
        attach_stdin: container.stdin,
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: container.tty,
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            memory,
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let name = format!("k8s_{}_{}_{}_{}_0", container.name, key.1, key.0, uid);
    let opts = CreateContainerOptions {
        name: Some(name),
        ..CreateContainerOptions::default()
    };
    let id = match server.docker.create_container(Some(opts), body).await {
        Ok(r) => r.id,
        Err(e) => {
            let msg = e.to_string();
            update(&|p| set_container(p, waiting("CreateContainerError", &msg), false, None));
            event("Warning", "Failed", &format!("Error: {msg}"), "kubelet");
            deletion_asked(&mut del).await;
            return;
        }
    };
    if let Some(rt) = lock(&server.runtimes).get_mut(uid) {
        rt.container = Some(id.clone());
    }
    event(
        "Normal",
        "Created",
        &format!("Created container: {}", container.name),
        "kubelet",
    );
    if del.borrow().is_some() {
        return;
    }
    if let Err(e) = server
        .docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
    {
        let msg = e.to_string();
        update(&|p| set_container(p, waiting("RunContainerError", &msg), false, Some(&id)));
        event("Warning", "Failed", &format!("Error: {msg}"), "kubelet");
        deletion_asked(&mut del).await;
        return;
    }
    let started = now();
    if !server.running_lag.is_zero() {
        // As a real kubelet: the container runs (and writes) before it is reported.
        let mut asked = del.clone();
        tokio::select! {
            () = tokio::time::sleep(server.running_lag) => {}
            () = deletion_asked(&mut asked) => {}
        }
    }
    update(&|p| {
        let st = p.status.get_or_insert_with(Default::default);
        st.phase = Some("Running".into());
        st.start_time = Some(started.clone());
        st.host_ip = Some("127.0.0.1".into());
        set_container(
            p,
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(started.clone()),
                }),
                ..ContainerState::default()
            },
            true,
            Some(&id),
        );
        set_condition(p, condition("Initialized", true, None, None));
        set_condition(p, condition("ContainersReady", true, None, None));
        set_condition(p, condition("Ready", true, None, None));
    });
    event(
        "Normal",
        "Started",
        &format!("Started container {}", container.name),
        "kubelet",
    );

    // Run until the container exits; deletion stops it (SIGTERM, SIGKILL after the
    // grace) or kills it (grace 0).
    let wait = {
        let docker = server.docker.clone();
        let id = id.clone();
        async move {
            let opts = WaitContainerOptions {
                condition: "not-running".into(),
            };
            let mut s = docker.wait_container(&id, Some(opts));
            match s.next().await {
                Some(Ok(r)) => r.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                _ => -1,
            }
        }
    };
    tokio::pin!(wait);
    let mut asked: Option<u32> = None;
    let code = loop {
        tokio::select! {
            code = &mut wait => break code,
            changed = del.changed() => {
                if changed.is_err() { continue; }
                let Some(grace) = *del.borrow_and_update() else { continue };
                if asked.is_some_and(|a| a <= grace) { continue; }
                asked = Some(grace);
                event("Normal", "Killing", &format!("Stopping container {}", container.name), "kubelet");
                let docker = server.docker.clone();
                let id = id.clone();
                if grace == 0 {
                    let _ = docker.kill_container(&id, Some(KillContainerOptions { signal: "SIGKILL".into() })).await;
                } else {
                    let t = i32::try_from(grace).unwrap_or(i32::MAX);
                    tokio::spawn(async move {
                        let _ = docker.stop_container(&id, Some(StopContainerOptions { t: Some(t), signal: None })).await;
                    });
                }
            }
        }
    };
    let info = server
        .docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
        .ok();
    let state = info.and_then(|i| i.state);
    let oom = state.as_ref().and_then(|s| s.oom_killed) == Some(true);
    let code = state.as_ref().and_then(|s| s.exit_code).unwrap_or(code);
    let exit_code = i32::try_from(code).unwrap_or(-1);
    let finished = now();
    let reason = if oom {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    update(&|p| {
        let st = p.status.get_or_insert_with(Default::default);
        st.phase = Some(
            if exit_code == 0 {
                "Succeeded"
            } else {
                "Failed"
            }
            .into(),
        );
        set_container(
            p,
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    reason: Some(reason.into()),
                    started_at: Some(started.clone()),
                    finished_at: Some(finished.clone()),
                    container_id: Some(format!("docker://{id}")),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            },
            false,
            Some(&id),
        );
        set_condition(
            p,
            condition("ContainersReady", false, Some("PodCompleted"), None),
        );
        set_condition(p, condition("Ready", false, Some("PodCompleted"), None));
    });
    // The pod stays (with its log) until someone deletes it.
    deletion_asked(&mut del).await;
}

/// `GET .../pods/NAME/log`: the container's output (stdout and stderr merged, as
/// the kubelet's log files hold it), followed when `follow=true`.
pub async fn log(
    server: Shared,
    ns: &str,
    name: &str,
    q: &BTreeMap<String, String>,
) -> Response<Body> {
    let pod = lock(&server.store)
        .pods
        .get(&(ns.to_string(), name.to_string()))
        .cloned();
    let Some(pod) = pod else {
        return not_found("pods", name);
    };
    let cname = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    if let Some(want) = q.get("container") {
        if *want != cname {
            return bad_request(&format!("container {want} is not valid for pod {name}"));
        }
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id = lock(&server.runtimes)
        .get(&uid)
        .and_then(|r| r.container.clone());
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
    let Some(id) = id.filter(|_| started) else {
        let reason = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
            .unwrap_or_else(|| "ContainerCreating".into());
        return bad_request(&format!(
            "container \"{cname}\" in pod \"{name}\" is waiting to start: {reason}"
        ));
    };
    let opts = LogsOptions {
        follow: flag(q, "follow"),
        stdout: true,
        stderr: true,
        timestamps: flag(q, "timestamps"),
        tail: q.get("tailLines").cloned().unwrap_or_else(|| "all".into()),
        ..LogsOptions::default()
    };
    let stream = server
        .docker
        .logs(&id, Some(opts))
        .take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| std::future::ready(r.ok().map(|o| o.into_bytes())));
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(stream_body(stream))
        .unwrap_or_else(|_| bad_request("cannot build the answer"))
}
