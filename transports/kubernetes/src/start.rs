//! Bringing a created pod to the point where the master talks to it: wait (on the
//! shared watch) until its container runs, failing early and clearly when it never
//! will; then connect its stdio through the API server.

use crate::pod::CONTAINER_NAME;
use crate::settings::KubernetesSettings;
use crate::status::{progress, Progress};
use crate::watch::PodState;
use distarch_core::InstanceIo;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{AttachParams, AttachedProcess, ListParams};
use kube::Api;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

/// Waits until the pod's container runs (`Ok(true)`) or has already ended
/// (`Ok(false)`); `Err` says why it will not start.
pub async fn wait_started(
    events: &Api<Event>,
    name: &str,
    namespace: &str,
    state: &mut watch::Receiver<PodState>,
    settings: &KubernetesSettings,
) -> Result<bool, String> {
    let start_timeout = settings.start_timeout;
    let pending_timeout = settings.pending_timeout;
    let deadline = Instant::now() + start_timeout.0;
    let mut unschedulable_since: Option<Instant> = None;
    let mut last = "no status yet".to_string();
    loop {
        let s = state.borrow_and_update().clone();
        if let Some(error) = s.watch_error {
            return Err(format!("pod {namespace}/{name}: {error}"));
        }
        let mut wake = deadline;
        if let Some(pod) = &s.pod {
            match progress(pod) {
                Progress::Running => return Ok(true),
                Progress::Ended(_) => return Ok(false),
                Progress::WillNotStart(text) => {
                    let event = warning_event(events, name).await;
                    let event = match event {
                        Some(e) if !text.contains(&e) => format!(" (event: {e})"),
                        _ => String::new(),
                    };
                    return Err(format!(
                        "pod {namespace}/{name} cannot start its container: {text}{event}"
                    ));
                }
                Progress::Unschedulable(message) => {
                    let since = *unschedulable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= pending_timeout.0 {
                        return Err(format!(
                            "pod {namespace}/{name} cannot be scheduled: {message} (unschedulable for {pending_timeout}, pending_timeout)"
                        ));
                    }
                    last = format!("Unschedulable: {message}");
                    wake = wake.min(since + pending_timeout.0);
                }
                Progress::Pending(reason) => {
                    unschedulable_since = None;
                    last = reason.unwrap_or_else(|| "Pending".to_string());
                }
            }
        }
        if s.deleted {
            return Err(format!(
                "pod {namespace}/{name} was deleted before its container started"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "pod {namespace}/{name} did not start within {start_timeout} (start_timeout); last status: {last}"
            ));
        }
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return Err(format!("pod {namespace}/{name}: the pod watch ended"));
                }
            }
            _ = sleep_until(wake) => {}
        }
    }
}

/// The latest warning event about pod `name`, as `Reason: message`.
async fn warning_event(events: &Api<Event>, name: &str) -> Option<String> {
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let list = events.list(&params).await.ok()?;
    list.items
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .max_by_key(|e| {
            e.metadata
                .resource_version
                .clone()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
}

/// Which call failed, for messages: (verb, resource).
pub type FailedCall = (&'static str, &'static str);

/// Connects the pod's stdio: stdin through an attach (kept open; closing it is the
/// worker's EOF), output through the followed container log, or with
/// `output_from_attach` through the attach, its start taken from the log.
pub async fn attach_stdio(
    pods: &Api<Pod>,
    name: &str,
    state: watch::Receiver<PodState>,
    running: bool,
    output_from_attach: bool,
) -> Result<
    (
        InstanceIo,
        Option<AttachedProcess>,
        Option<watch::Receiver<bool>>,
    ),
    (FailedCall, kube::Error),
> {
    let mut attached = None;
    if running {
        let params = AttachParams::default()
            .container(CONTAINER_NAME)
            .stdin(true)
            .stdout(output_from_attach)
            .stderr(output_from_attach);
        match pods.attach(name, &params).await {
            Ok(a) => attached = Some(a),
            Err(e) => {
                // A worker that ended at once cannot be attached to any more; its
                // output is still in the log (all of it, stderr merged in).
                let ended = match pods.get(name).await {
                    Ok(pod) => matches!(progress(&pod), Progress::Ended(_)),
                    Err(_) => false,
                };
                if !ended {
                    // A WebSocket GET: the API server authorizes it as `get`.
                    return Err((("get", "pods/attach"), e));
                }
            }
        }
    }
    let stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin> =
        match attached.as_mut().and_then(|a| a.stdin()) {
            Some(w) => Box::new(w),
            None => Box::new(tokio::io::sink()),
        };
    let log = crate::logs::follow(
        pods.clone(),
        name.to_string(),
        CONTAINER_NAME.to_string(),
        state,
    )
    .await
    .map_err(|e| (("get", "pods/log"), e))?;
    let attached_output = attached
        .as_mut()
        .filter(|_| output_from_attach)
        .and_then(|a| Some((a.stdout()?, a.stderr()?)));
    let Some((out, err)) = attached_output else {
        let (stdout, log_done) = crate::eof::EofSignal::new(log);
        return Ok((
            InstanceIo {
                stdin,
                stdout: Box::new(stdout),
                stderr: None,
            },
            attached,
            Some(log_done),
        ));
    };
    // The attach carries stdout and stderr apart, but only from when it connected:
    // the log gives what came before (see splice.rs).
    let (stdout, stderr) = crate::splice::splice(log, out, err);
    let (stdout, out_done) = crate::eof::EofSignal::new(stdout);
    Ok((
        InstanceIo {
            stdin,
            stdout: Box::new(stdout),
            stderr: Some(Box::new(stderr)),
        },
        attached,
        Some(out_done),
    ))
}
