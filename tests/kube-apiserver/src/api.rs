//! The REST routes: pods (create, get, list, watch, delete, log, attach), config
//! maps (create, get, list, watch, delete with cascade to owned pods), events
//! (list), namespaces (get), plus `/version` and the `/debug/requests` counters.

use crate::http::{
    already_exists, bad_request, flag, invalid, json_response, not_found, query, status_response,
    Body, FieldSelector, Selector,
};
use crate::server::{lock, Shared};
use crate::store::{now, to_value, Kind};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

/// Handles one request.
pub async fn handle(server: Shared, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = query(req.uri().query());
    let method = req.method().clone();
    match segs.as_slice() {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "35", "gitVersion": "v1.35.0-distarch-fake", "platform": "linux/amd64"}),
        ),
        ["debug", "requests"] => {
            let counters = lock(&server.counters).clone();
            let total: u64 = counters.values().sum();
            json_response(StatusCode::OK, &json!({"total": total, "by": counters}))
        }
        ["debug", "requests", "reset"] => {
            lock(&server.counters).clear();
            json_response(StatusCode::OK, &json!({"total": 0}))
        }
        ["api", "v1", "namespaces", ns] => {
            server.count("get", "namespaces");
            if lock(&server.store).namespaces.contains(*ns) {
                json_response(
                    StatusCode::OK,
                    &json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns}, "status": {"phase": "Active"}}),
                )
            } else {
                not_found("namespaces", ns)
            }
        }
        ["api", "v1", "namespaces", ns, resource] => {
            collection(server, method, Some(ns), resource, q, req).await
        }
        ["api", "v1", resource] => collection(server, method, None, resource, q, req).await,
        ["api", "v1", "namespaces", ns, resource, name] => {
            item(server, method, ns, resource, name, q, req).await
        }
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => {
            server.count("get", "pods/log");
            if server.forbidden("get", "pods/log") {
                return forbidden("get", "pods/log", ns, Some(name));
            }
            crate::kubelet::log(server, ns, name, &q).await
        }
        ["api", "v1", "namespaces", ns, "pods", name, "attach"] => {
            server.count("create", "pods/attach");
            // The attach is a WebSocket GET: a real API server (v1.35) authorizes it
            // as `get` on pods/attach.
            if server.forbidden("get", "pods/attach") {
                return forbidden("get", "pods/attach", ns, Some(name));
            }
            crate::attach::attach(server, ns, name, &q, req).await
        }
        _ => status_response(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ),
    }
}

/// 429 as priority and fairness writes it, with `Retry-After: 1`.
pub fn too_many_requests() -> Response<Body> {
    let mut r = status_response(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        Some(json!({"retryAfterSeconds": 1})),
    );
    r.headers_mut()
        .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    r
}

/// 403 as the authorizer writes it.
pub fn forbidden(verb: &str, resource: &str, ns: &str, name: Option<&str>) -> Response<Body> {
    let base = resource.split('/').next().unwrap_or(resource);
    let subject = match name {
        Some(n) => format!("{base} \"{n}\" is forbidden"),
        None => format!("{base} is forbidden"),
    };
    status_response(
        403,
        "Forbidden",
        &format!(
            "{subject}: User \"system:serviceaccount:{ns}:distarch\" cannot {verb} resource \"{resource}\" in API group \"\" in the namespace \"{ns}\""
        ),
        Some(json!({"name": name.unwrap_or(""), "kind": base})),
    )
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| bad_request(&format!("cannot read the request body: {e}")))?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| bad_request(&format!("json: {e}")))
}

fn is_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

async fn collection(
    server: Shared,
    method: Method,
    ns: Option<&str>,
    resource: &str,
    q: BTreeMap<String, String>,
    req: Request<Incoming>,
) -> Response<Body> {
    if !matches!(resource, "pods" | "configmaps" | "events") {
        return status_response(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
    }
    let ns_label = ns.unwrap_or("");
    match method {
        Method::GET => {
            let watch = flag(&q, "watch");
            let verb = if watch { "watch" } else { "list" };
            server.count(verb, resource);
            if server.forbidden(verb, resource) {
                return forbidden(verb, resource, ns_label, None);
            }
            let labels =
                match Selector::parse(q.get("labelSelector").map(String::as_str).unwrap_or("")) {
                    Ok(s) => s,
                    Err(e) => return bad_request(&e),
                };
            let fields = match FieldSelector::parse(
                q.get("fieldSelector").map(String::as_str).unwrap_or(""),
            ) {
                Ok(s) => s,
                Err(e) => return bad_request(&e),
            };
            if watch {
                watch_response(server, ns.map(str::to_string), resource, labels, fields, &q)
            } else {
                list_response(&server, ns, resource, &labels, &fields)
            }
        }
        Method::POST => {
            let Some(ns) = ns else {
                return status_response(405, "MethodNotAllowed", "create needs a namespace", None);
            };
            server.count("create", resource);
            if server.throttled("create", resource) {
                return too_many_requests();
            }
            if server.forbidden("create", resource) {
                return forbidden("create", resource, ns, None);
            }
            if !lock(&server.store).namespaces.contains(ns) {
                return not_found("namespaces", ns);
            }
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            match resource {
                "pods" => create_pod(server, ns, body),
                "configmaps" => create_config_map(&server, ns, body),
                _ => status_response(
                    405,
                    "MethodNotAllowed",
                    "events are created by the server only",
                    None,
                ),
            }
        }
        _ => status_response(405, "MethodNotAllowed", "method not allowed", None),
    }
}

fn kind_of(resource: &str) -> Kind {
    match resource {
        "pods" => Kind::Pod,
        "configmaps" => Kind::ConfigMap,
        _ => Kind::Event,
    }
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v["metadata"]["labels"].clone()).unwrap_or_default()
}

fn list_response(
    server: &Shared,
    ns: Option<&str>,
    resource: &str,
    labels: &Selector,
    fields: &FieldSelector,
) -> Response<Body> {
    let store = lock(&server.store);
    let in_ns = |k: &(String, String)| ns.is_none_or(|n| k.0 == n);
    let items: Vec<Value> = match resource {
        "pods" => store
            .pods
            .iter()
            .filter(|(k, _)| in_ns(k))
            .map(|(_, v)| to_value(v))
            .collect(),
        "configmaps" => store
            .config_maps
            .iter()
            .filter(|(k, _)| in_ns(k))
            .map(|(_, v)| to_value(v))
            .collect(),
        _ => store
            .events
            .iter()
            .filter(|(k, _)| in_ns(k))
            .map(|(_, v)| to_value(v))
            .collect(),
    };
    let items: Vec<Value> = items
        .into_iter()
        .filter(|v| labels.matches(Some(&labels_of(v))) && fields.matches(v))
        .collect();
    let kind = match resource {
        "pods" => "PodList",
        "configmaps" => "ConfigMapList",
        _ => "EventList",
    };
    json_response(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": store.rv().to_string()}, "items": items}),
    )
}

fn watch_response(
    server: Shared,
    ns: Option<String>,
    resource: &str,
    labels: Selector,
    fields: FieldSelector,
    q: &BTreeMap<String, String>,
) -> Response<Body> {
    let kind = kind_of(resource);
    let from: Option<u64> = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1800);
    let (initial, mut rx) = {
        let store = lock(&server.store);
        match from {
            Some(rv) => {
                let (changes, rx) = store.since(rv);
                let initial: Vec<(u64, &'static str, Value)> = changes
                    .into_iter()
                    .filter(|c| c.kind == kind)
                    .filter(|c| ns.as_deref().is_none_or(|n| c.namespace == n))
                    .map(|c| (c.rv, c.type_, c.object))
                    .collect();
                (initial, rx)
            }
            None => {
                // "Any" version: the current objects as ADDED, then the changes.
                let (_, rx) = store.since(store.rv());
                let in_ns = |k: &(String, String)| ns.as_deref().is_none_or(|n| k.0 == n);
                let objects: Vec<Value> = match kind {
                    Kind::Pod => store
                        .pods
                        .iter()
                        .filter(|(k, _)| in_ns(k))
                        .map(|(_, v)| to_value(v))
                        .collect(),
                    Kind::ConfigMap => store
                        .config_maps
                        .iter()
                        .filter(|(k, _)| in_ns(k))
                        .map(|(_, v)| to_value(v))
                        .collect(),
                    Kind::Event => store
                        .events
                        .iter()
                        .filter(|(k, _)| in_ns(k))
                        .map(|(_, v)| to_value(v))
                        .collect(),
                };
                let rv = store.rv();
                (objects.into_iter().map(|o| (rv, "ADDED", o)).collect(), rx)
            }
        }
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(256);
    let last_initial = initial.last().map(|c| c.0).unwrap_or(0);
    let expire = server.expire_watches;
    let resource = resource.to_string();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        // Fault injection (--expire-watches): the watch's version is compacted away.
        let expiry = tokio::time::sleep(expire.unwrap_or(Duration::from_secs(1 << 30)));
        tokio::pin!(expiry);
        let gone = || {
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410})
        };
        let send = |type_: &str, object: Value| {
            let mut line =
                serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        for (_, type_, object) in initial {
            if labels.matches(Some(&labels_of(&object)))
                && fields.matches(&object)
                && tx.send(send(type_, object)).await.is_err()
            {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = &mut expiry => {
                    server.count("expired watch", &resource);
                    let _ = tx.send(send("ERROR", gone())).await;
                    return;
                }
                _ = tx.closed() => return,
                change = rx.recv() => match change {
                    Ok(c) => {
                        if c.rv <= last_initial || c.kind != kind
                            || ns.as_deref().is_some_and(|n| c.namespace != n)
                            || !labels.matches(Some(&labels_of(&c.object)))
                            || !fields.matches(&c.object)
                        {
                            continue;
                        }
                        if tx.send(send(c.type_, c.object)).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // The watcher fell behind: end with 410 Gone, as a compacted
                        // server would, so that the client re-lists.
                        let _ = tx.send(send("ERROR", gone())).await;
                        return;
                    }
                    Err(_) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(out, |mut out| async move {
        out.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), out))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
        .unwrap_or_else(|_| {
            Response::new(BodyExt::boxed_unsync(http_body_util::Full::new(
                Bytes::new(),
            )))
        })
}

fn default_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn create_pod(server: Shared, ns: &str, body: Value) -> Response<Body> {
    let mut pod: Pod = match serde_json::from_value(body) {
        Ok(p) => p,
        Err(e) => return bad_request(&format!("json: cannot decode Pod: {e}")),
    };
    if pod.metadata.name.is_none() {
        if let Some(prefix) = pod.metadata.generate_name.clone() {
            let n = lock(&server.store).new_uid();
            pod.metadata.name = Some(format!("{prefix}{}", &n[n.len() - 5..]));
        }
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    if !is_subdomain(&name) {
        return invalid("Pod", &name, "metadata.name", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'");
    }
    if let Some(other) = &pod.metadata.namespace {
        if other != ns {
            return bad_request("the namespace of the provided object does not match the namespace sent on the request");
        }
    }
    let Some(spec) = pod.spec.as_mut() else {
        return invalid("Pod", &name, "spec.containers", "Required value");
    };
    if spec.containers.is_empty() {
        return invalid("Pod", &name, "spec.containers", "Required value");
    }
    for c in &mut spec.containers {
        let Some(image) = c.image.clone().filter(|i| !i.is_empty()) else {
            return invalid("Pod", &name, "spec.containers[0].image", "Required value");
        };
        if c.image_pull_policy.is_none() {
            c.image_pull_policy = Some(default_pull_policy(&image).to_string());
        }
        if c.termination_message_path.is_none() {
            c.termination_message_path = Some("/dev/termination-log".into());
        }
    }
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.service_account_name
        .get_or_insert_with(|| "default".into());
    let pod = {
        let mut store = lock(&server.store);
        let key = (ns.to_string(), name.clone());
        if store.pods.contains_key(&key) {
            return already_exists("pods", &name);
        }
        pod.metadata.namespace = Some(ns.to_string());
        pod.metadata.uid = Some(store.new_uid());
        pod.metadata.creation_timestamp = Some(now());
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some("BestEffort".into()),
            ..PodStatus::default()
        });
        store.put_pod(pod, "ADDED")
    };
    // The garbage collector removes dependents whose owner does not exist.
    let orphaned = pod.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "ConfigMap"
            && lock(&server.store)
                .config_maps
                .get(&(ns.to_string(), o.name.clone()))
                .is_none_or(|cm| cm.metadata.uid.as_deref() != Some(o.uid.as_str()))
    });
    crate::kubelet::start(server.clone(), pod.clone());
    if orphaned {
        let server = server.clone();
        let (ns, name) = (ns.to_string(), name.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            delete_pod(&server, &ns, &name, None);
        });
    }
    json_response(StatusCode::CREATED, &to_value(&pod))
}

fn create_config_map(server: &Shared, ns: &str, body: Value) -> Response<Body> {
    let mut cm: ConfigMap = match serde_json::from_value(body) {
        Ok(c) => c,
        Err(e) => return bad_request(&format!("json: cannot decode ConfigMap: {e}")),
    };
    let name = cm.metadata.name.clone().unwrap_or_default();
    if !is_subdomain(&name) {
        return invalid("ConfigMap", &name, "metadata.name", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'");
    }
    let mut store = lock(&server.store);
    let key = (ns.to_string(), name.clone());
    if store.config_maps.contains_key(&key) {
        return already_exists("configmaps", &name);
    }
    cm.metadata.namespace = Some(ns.to_string());
    cm.metadata.uid = Some(store.new_uid());
    cm.metadata.creation_timestamp = Some(now());
    let cm = store.put_config_map(cm);
    json_response(StatusCode::CREATED, &to_value(&cm))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    propagation_policy: Option<String>,
}

/// Deletes a pod with `grace` seconds (default: the pod's own). Returns the pod as
/// the answer shows it, or `None` when there is no such pod.
pub fn delete_pod(server: &Shared, ns: &str, name: &str, grace: Option<i64>) -> Option<Pod> {
    let key = (ns.to_string(), name.to_string());
    let mut store = lock(&server.store);
    let pod = store.pods.get(&key)?.clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let grace = grace
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let on_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let signal = |g: u32| {
        if let Some(rt) = lock(&server.runtimes).get(&uid) {
            let _ = rt.delete.send(Some(g));
        }
    };
    if grace == 0 || !on_node || terminal {
        let removed = store.remove_pod(&key, Some(&uid));
        drop(store);
        signal(0);
        return removed;
    }
    let current = pod.metadata.deletion_grace_period_seconds;
    if current.is_some_and(|c| c <= grace) {
        return Some(pod);
    }
    let until = crate::store::after_secs(grace);
    let updated = store.update_pod(&key, &uid, |p| {
        p.metadata.deletion_timestamp = Some(until.clone());
        p.metadata.deletion_grace_period_seconds = Some(grace);
    });
    drop(store);
    signal(u32::try_from(grace).unwrap_or(u32::MAX));
    updated
}

#[allow(clippy::too_many_arguments)]
async fn item(
    server: Shared,
    method: Method,
    ns: &str,
    resource: &str,
    name: &str,
    q: BTreeMap<String, String>,
    req: Request<Incoming>,
) -> Response<Body> {
    if !matches!(resource, "pods" | "configmaps" | "events") {
        return status_response(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
    }
    let key = (ns.to_string(), name.to_string());
    match method {
        Method::GET => {
            server.count("get", resource);
            if server.forbidden("get", resource) {
                return forbidden("get", resource, ns, Some(name));
            }
            let store = lock(&server.store);
            let found = match resource {
                "pods" => store.pods.get(&key).map(to_value),
                "configmaps" => store.config_maps.get(&key).map(to_value),
                _ => store.events.get(&key).map(to_value),
            };
            match found {
                Some(v) => json_response(StatusCode::OK, &v),
                None => not_found(resource, name),
            }
        }
        Method::DELETE => {
            server.count("delete", resource);
            if server.throttled("delete", resource) {
                return too_many_requests();
            }
            if server.forbidden("delete", resource) {
                return forbidden("delete", resource, ns, Some(name));
            }
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            let mut opts: DeleteOptions = serde_json::from_value(body).unwrap_or_default();
            if let Some(g) = q.get("gracePeriodSeconds").and_then(|v| v.parse().ok()) {
                opts.grace_period_seconds = Some(g);
            }
            if let Some(p) = q.get("propagationPolicy") {
                opts.propagation_policy = Some(p.clone());
            }
            match resource {
                "pods" => match delete_pod(&server, ns, name, opts.grace_period_seconds) {
                    Some(pod) => json_response(StatusCode::OK, &to_value(&pod)),
                    None => not_found("pods", name),
                },
                "configmaps" => {
                    let removed = lock(&server.store).remove_config_map(&key);
                    let Some(cm) = removed else {
                        return not_found("configmaps", name);
                    };
                    if opts.propagation_policy.as_deref() != Some("Orphan") {
                        cascade(&server, ns, cm.metadata.uid.as_deref().unwrap_or_default());
                    }
                    json_response(
                        StatusCode::OK,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                "details": {"name": name, "kind": "configmaps", "uid": cm.metadata.uid}}),
                    )
                }
                _ => status_response(405, "MethodNotAllowed", "events are not deleted here", None),
            }
        }
        _ => status_response(405, "MethodNotAllowed", "method not allowed", None),
    }
}

/// The garbage collector: deletes the pods owned by `owner_uid`, each with its own
/// default grace.
fn cascade(server: &Shared, ns: &str, owner_uid: &str) {
    let owned: Vec<String> = lock(&server.store)
        .pods
        .iter()
        .filter(|((pns, _), p)| {
            pns == ns
                && p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == owner_uid)
        })
        .map(|((_, n), _)| n.clone())
        .collect();
    for name in owned {
        delete_pod(server, ns, &name, None);
    }
}

/// Makes a `Bytes` stream body.
pub fn stream_body<S>(s: S) -> Body
where
    S: futures::Stream<Item = Bytes> + Send + 'static,
{
    BodyExt::boxed_unsync(StreamBody::new(
        s.map(|b| Ok::<_, Infallible>(Frame::data(b))),
    ))
}
