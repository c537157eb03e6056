//! Request-level tests: the transport talks to an in-process service that answers
//! like the API server (recorded shapes of real answers), and the tests check the
//! exact requests: the Pod spec, labels, owner references, delete options.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use distarch_core::{ExitStatus, InstanceSpec, Transport};
use distarch_transport_kubernetes::pod::MasterIdentity;
use distarch_transport_kubernetes::KubernetesTransport;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

type Body = BoxBody<Bytes, Infallible>;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

/// How the fake cluster treats pods.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// The container runs and exits at once with code 7.
    ExitSeven,
    /// The image cannot be pulled.
    ImagePullFails,
    /// No node fits.
    Unschedulable,
    /// ConfigMap creation is forbidden.
    Forbidden,
    /// The namespace does not exist.
    NoNamespace,
    /// Someone deletes the pod before it starts.
    DeletedWhilePending,
}

struct Fake {
    seen: Mutex<Vec<Seen>>,
    events: broadcast::Sender<Value>,
    behaviour: Behaviour,
    rv: Mutex<u64>,
}

fn full(status: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&v).unwrap())).boxed())
        .unwrap()
}

fn status_body(code: u16, reason: &str, message: &str, details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "details": details, "code": code})
}

impl Fake {
    fn next_rv(&self) -> String {
        let mut rv = self.rv.lock().unwrap();
        *rv += 1;
        rv.to_string()
    }

    async fn handle(self: Arc<Self>, req: Request<kube::client::Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        let ns = path.split('/').nth(4).unwrap_or("").to_string();
        if self.behaviour == Behaviour::NoNamespace && parts.method == Method::POST {
            return full(
                StatusCode::NOT_FOUND,
                status_body(
                    404,
                    "NotFound",
                    &format!("namespaces \"{ns}\" not found"),
                    json!({"name": ns, "kind": "namespaces"}),
                ),
            );
        }
        match (parts.method.clone(), path.as_str()) {
            (Method::POST, p) if p.ends_with("/configmaps") => {
                if self.behaviour == Behaviour::Forbidden {
                    return full(StatusCode::FORBIDDEN, status_body(403, "Forbidden",
                        &format!("configmaps is forbidden: User \"system:serviceaccount:{ns}:runner\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"{ns}\""),
                        json!({"kind": "configmaps"})));
                }
                let mut cm = body.clone();
                cm["metadata"]["uid"] = json!("owner-uid-1");
                cm["metadata"]["namespace"] = json!(ns);
                cm["metadata"]["resourceVersion"] = json!(self.next_rv());
                full(StatusCode::CREATED, cm)
            }
            (Method::GET, p) if p.ends_with("/pods") && query.contains("watch=true") => {
                let rx = self.events.subscribe();
                let stream = tokio_stream_from(rx).map(|v| {
                    let mut line = serde_json::to_vec(&v).unwrap();
                    line.push(b'\n');
                    Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
                });
                Response::builder()
                    .status(200)
                    .body(BodyExt::boxed(StreamBody::new(stream)))
                    .unwrap()
            }
            (Method::GET, p) if p.ends_with("/pods") => full(
                StatusCode::OK,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": self.next_rv()}, "items": []}),
            ),
            (Method::POST, p) if p.ends_with("/pods") => {
                let mut pod = body.clone();
                pod["metadata"]["uid"] = json!("pod-uid-1");
                pod["metadata"]["namespace"] = json!(ns);
                pod["metadata"]["resourceVersion"] = json!(self.next_rv());
                pod["status"] = json!({"phase": "Pending"});
                let created = pod.clone();
                let mut later = pod.clone();
                later["status"] = match self.behaviour {
                    Behaviour::ExitSeven => json!({"phase": "Failed", "containerStatuses": [{
                        "name": "worker", "ready": false, "restartCount": 0, "image": "w", "imageID": "",
                        "state": {"terminated": {"exitCode": 7, "reason": "Error"}}}]}),
                    Behaviour::ImagePullFails => json!({"phase": "Pending", "containerStatuses": [{
                        "name": "worker", "ready": false, "restartCount": 0, "image": "w", "imageID": "",
                        "state": {"waiting": {"reason": "ErrImagePull", "message": "rpc error: code = NotFound desc = failed to pull and unpack image \"worker:nope\""}}}]}),
                    _ => {
                        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                        "reason": "Unschedulable", "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}]})
                    }
                };
                later["metadata"]["resourceVersion"] = json!(self.next_rv());
                let events = self.events.clone();
                let deleted = self.behaviour == Behaviour::DeletedWhilePending;
                tokio::spawn(async move {
                    // Let the create answer arrive first, as a real server would.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let kind = if deleted { "DELETED" } else { "MODIFIED" };
                    let _ = events.send(json!({"type": kind, "object": later}));
                });
                full(StatusCode::CREATED, created)
            }
            (Method::GET, p) if p.ends_with("/log") => Response::builder()
                .status(200)
                .body(Full::new(Bytes::from_static(b"hello from the pod\n")).boxed())
                .unwrap(),
            (Method::GET, p) if p.ends_with("/events") => full(
                StatusCode::OK,
                json!({"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [
                    {"metadata": {"name": "e1", "resourceVersion": "5"}, "involvedObject": {"kind": "Pod", "name": "x"},
                     "type": "Warning", "reason": "Failed", "message": "Failed to pull image \"worker:nope\": not found"}]}),
            ),
            (Method::DELETE, _) => full(
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
            ),
            _ => full(
                StatusCode::NOT_FOUND,
                status_body(404, "NotFound", "no such path", json!({})),
            ),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn tokio_stream_from(rx: broadcast::Receiver<Value>) -> impl futures::Stream<Item = Value> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((v, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

fn transport(behaviour: Behaviour) -> (KubernetesTransport, Arc<Fake>) {
    let (events, _) = broadcast::channel(64);
    let fake = Arc::new(Fake {
        seen: Mutex::default(),
        events,
        behaviour,
        rv: Mutex::new(100),
    });
    let f = fake.clone();
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let f = f.clone();
        async move { Ok::<_, Infallible>(f.handle(req).await) }
    });
    let client = kube::Client::new(service, "default");
    let master = MasterIdentity {
        host: "master-host".into(),
        boot: "boot-1".into(),
        pid: 4242,
        start: 99,
        pidns: "pid:[4026531836]".into(),
    };
    (
        KubernetesTransport::with_client(client, "https://fake:6443").with_master(master),
        fake,
    )
}

fn spec(settings: Value) -> InstanceSpec {
    let mut spec = InstanceSpec::builder(["/worker", "--fast"])
        .run_id("r1x2")
        .names("Work_ers", "cluster")
        .id(3)
        .env("DISTARCH_ID", "3")
        .env("GREETING", "hi")
        .stop_times(Duration::from_secs(2), Duration::from_millis(2500))
        .plan(&KubernetesTransport::new(), &settings)
        .unwrap_or_else(|e| panic!("plan: {e}"));
    spec.group_id = 2;
    spec.group_count = 4;
    spec
}

fn full_settings() -> Value {
    json!({
        "image": "worker:1", "namespace": "jobs", "image_pull_policy": "IfNotPresent",
        "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
        "node_selector": {"disk": "ssd"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
        "service_account": "runner", "image_pull_secrets": ["registry"],
        "labels": {"team": "search"}, "annotations": {"note": "x"}
    })
}

#[tokio::test]
async fn spawn_creates_owner_then_the_exact_pod_and_reads_the_exit_code() {
    let (t, fake) = transport(Behaviour::ExitSeven);
    let mut inst = t.spawn(&spec(full_settings())).await.expect("spawn");
    let mut io = inst.take_io().unwrap();
    let mut out = String::new();
    io.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "hello from the pod\n");
    let exit = tokio::time::timeout(Duration::from_secs(5), inst.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, ExitStatus::Exited(7));

    let seen = fake.seen();
    let cm_at = seen
        .iter()
        .position(|s| s.method == Method::POST && s.path == "/api/v1/namespaces/jobs/configmaps")
        .expect("owner created");
    let pod_at = seen
        .iter()
        .position(|s| s.method == Method::POST && s.path == "/api/v1/namespaces/jobs/pods")
        .expect("pod created");
    assert!(cm_at < pod_at, "the owner must exist before its pods");
    let cm = &seen[cm_at].body;
    assert_eq!(cm["metadata"]["name"], "distarch-r1x2");
    assert_eq!(cm["metadata"]["labels"]["distarch.run"], "r1x2");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "distarch"
    );
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/component"],
        "run-owner"
    );
    assert_eq!(
        cm["metadata"]["labels"]["distarch.master.host"],
        "master-host"
    );
    assert_eq!(cm["metadata"]["labels"]["distarch.master.pid"], "4242");
    assert_eq!(cm["data"]["distarch.master.start"], "99");
    assert_eq!(cm["data"]["distarch.master.boot"], "boot-1");
    assert_eq!(cm["data"]["distarch.master.pidns"], "pid:[4026531836]");

    let pod = &seen[pod_at].body;
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "distarch-r1x2-work-ers-3",
            "labels": {
                "distarch.run": "r1x2", "distarch.group": "Work_ers", "distarch.id": "3", "distarch.restart": "0",
                "app.kubernetes.io/name": "distarch", "app.kubernetes.io/instance": "r1x2",
                "app.kubernetes.io/component": "Work_ers", "app.kubernetes.io/managed-by": "distarch",
                "team": "search"
            },
            "annotations": {"note": "x", "distarch.io/group": "Work_ers", "distarch.io/placement": "cluster"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "distarch-r1x2",
                                 "uid": "owner-uid-1", "controller": true, "blockOwnerDeletion": false}]
        },
        "spec": {
            "containers": [{
                "name": "worker", "image": "worker:1", "imagePullPolicy": "IfNotPresent",
                "command": ["/worker", "--fast"],
                "env": [{"name": "DISTARCH_ID", "value": "3"}, {"name": "GREETING", "value": "hi"}],
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "100m"}},
                "stdin": true, "stdinOnce": true, "tty": false
            }],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 3,
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
            "serviceAccountName": "runner",
            "imagePullSecrets": [{"name": "registry"}]
        }
    });
    assert_eq!(
        pod,
        &expected,
        "pod spec:\n{}",
        serde_json::to_string_pretty(pod).unwrap()
    );

    // The watch is one per run, selected by the run label, from the list's version.
    let watches: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.query.contains("watch=true"))
        .collect();
    assert_eq!(watches.len(), 1, "{seen:#?}");
    assert!(
        watches[0]
            .query
            .contains("labelSelector=distarch.run%3Dr1x2"),
        "{}",
        watches[0].query
    );
    assert!(
        watches[0].query.contains("resourceVersion="),
        "{}",
        watches[0].query
    );
    let log = seen.iter().find(|s| s.path.ends_with("/log")).unwrap();
    assert!(
        log.query.contains("follow=true") && log.query.contains("container=worker"),
        "{}",
        log.query
    );
    // No polling: one get of nothing, no repeated pod reads.
    assert!(!seen.iter().any(|s| s.method == Method::GET
        && s.path == "/api/v1/namespaces/jobs/pods/distarch-r1x2-work-ers-3"));
}

#[tokio::test]
async fn terminate_and_kill_send_the_grace_and_cleanup_forces() {
    let (t, fake) = transport(Behaviour::ExitSeven);
    let mut inst = t
        .spawn(&spec(json!({"image": "w", "namespace": "jobs"})))
        .await
        .unwrap();
    inst.terminate().await.unwrap();
    inst.kill().await.unwrap();
    let deletes: Vec<Value> = fake
        .seen()
        .into_iter()
        .filter(|s| {
            s.method == Method::DELETE
                && s.path == "/api/v1/namespaces/jobs/pods/distarch-r1x2-work-ers-3"
        })
        .map(|s| s.body)
        .collect();
    assert_eq!(deletes.len(), 2);
    // kill_after = 2.5 s: the grace is rounded up to whole seconds.
    assert_eq!(
        deletes[0],
        json!({"gracePeriodSeconds": 3, "propagationPolicy": "Background"})
    );
    assert_eq!(
        deletes[1],
        json!({"gracePeriodSeconds": 0, "propagationPolicy": "Background"})
    );
    inst.cleanup().await;
    let after = fake
        .seen()
        .iter()
        .filter(|s| s.method == Method::DELETE)
        .count();
    assert_eq!(
        after, 2,
        "a force-deleted pod is not deleted again by cleanup"
    );

    t.shutdown().await;
    let owner_delete = fake.seen().into_iter().find(|s| {
        s.method == Method::DELETE && s.path == "/api/v1/namespaces/jobs/configmaps/distarch-r1x2"
    });
    assert!(
        owner_delete.is_some(),
        "shutdown deletes the owner, which cascades"
    );
}

#[tokio::test]
async fn a_restart_gets_a_new_pod_name_and_label() {
    let (t, fake) = transport(Behaviour::ExitSeven);
    let mut s = spec(json!({"image": "w"}));
    s.restart = 2;
    let _ = t.spawn(&s).await.unwrap();
    let pod = fake
        .seen()
        .into_iter()
        .find(|s| s.method == Method::POST && s.path.ends_with("/pods"))
        .unwrap();
    assert_eq!(
        pod.path, "/api/v1/namespaces/default/pods",
        "the client's namespace is the default"
    );
    assert_eq!(pod.body["metadata"]["name"], "distarch-r1x2-work-ers-3-r2");
    assert_eq!(pod.body["metadata"]["labels"]["distarch.restart"], "2");
}

#[tokio::test]
async fn image_pull_failure_is_a_clear_spawn_error_and_the_pod_is_removed() {
    let (t, fake) = transport(Behaviour::ImagePullFails);
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        t.spawn(&spec(json!({"image": "worker:nope", "namespace": "jobs"}))),
    )
    .await
    .expect("must not hang")
    .err()
    .expect("spawn must fail");
    let text = err.chain();
    assert!(
        text.contains("pod jobs/distarch-r1x2-work-ers-3 cannot start its container: ErrImagePull"),
        "{text}"
    );
    assert!(
        text.contains("Failed to pull image"),
        "the event is quoted: {text}"
    );
    let del = fake
        .seen()
        .into_iter()
        .find(|s| s.method == Method::DELETE)
        .expect("pod deleted");
    assert_eq!(del.body["gracePeriodSeconds"], 0);
}

#[tokio::test]
async fn unschedulable_pod_reports_the_scheduler_reason() {
    let (t, _fake) = transport(Behaviour::Unschedulable);
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        t.spawn(&spec(
            json!({"image": "w", "pending_timeout": "300ms", "node_selector": {"gpu": "yes"}}),
        )),
    )
    .await
    .expect("must not hang")
    .err()
    .expect("spawn must fail");
    let text = err.chain();
    assert!(
        text.contains("cannot be scheduled: 0/2 nodes are available"),
        "{text}"
    );
    assert!(text.contains("pending_timeout"), "{text}");
}

#[tokio::test]
async fn rbac_forbidden_names_the_verb_and_resource() {
    let (t, _fake) = transport(Behaviour::Forbidden);
    let err = t
        .spawn(&spec(json!({"image": "w", "namespace": "jobs"})))
        .await
        .err()
        .unwrap();
    let text = err.chain();
    assert!(
        text.starts_with(
            "forbidden: the Kubernetes account may not create configmaps in namespace \"jobs\""
        ),
        "{text}"
    );
    assert!(
        text.contains("grant RBAC verb \"create\" on resource \"configmaps\""),
        "{text}"
    );
}

#[tokio::test]
async fn missing_namespace_is_named() {
    let (t, _fake) = transport(Behaviour::NoNamespace);
    let err = t
        .spawn(&spec(json!({"image": "w", "namespace": "nope"})))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.chain(),
        "namespace \"nope\" does not exist on https://fake:6443"
    );
}

#[tokio::test]
async fn unreachable_cluster_says_so() {
    let dir = std::env::temp_dir().join(format!("kcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(&path, format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\nusers:\n- name: u\n  user: {{}}\n"
    )).unwrap();
    let t = KubernetesTransport::new();
    let err = t
        .spawn(&spec(
            json!({"image": "w", "kubeconfig": path, "context": "ctx"}),
        ))
        .await
        .err()
        .unwrap();
    let text = err.chain();
    assert!(
        text.starts_with(&format!(
            "cannot reach the Kubernetes API server http://127.0.0.1:{port}/"
        )),
        "{text}"
    );
    let err = KubernetesTransport::new()
        .spawn(&spec(
            json!({"image": "w", "kubeconfig": path, "context": "other"}),
        ))
        .await
        .err()
        .unwrap();
    assert!(
        err.chain().contains("cannot use context \"other\""),
        "{}",
        err.chain()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_pod_deleted_before_it_starts_fails_the_start() {
    let (t, _fake) = transport(Behaviour::DeletedWhilePending);
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        t.spawn(&spec(json!({"image": "w"}))),
    )
    .await
    .expect("must not hang")
    .err()
    .expect("spawn must fail");
    assert_eq!(
        err.chain(),
        "pod default/distarch-r1x2-work-ers-3 was deleted before its container started"
    );
}

#[tokio::test]
async fn in_cluster_outside_a_cluster_says_so() {
    let err = KubernetesTransport::new()
        .spawn(&spec(json!({"image": "w", "in_cluster": true})))
        .await
        .err()
        .unwrap();
    assert!(
        err.chain()
            .starts_with("cannot load the in-cluster service-account configuration"),
        "{}",
        err.chain()
    );
}
