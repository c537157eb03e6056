//! One watch per run and namespace, shared by all its pods: a `kube_runtime`
//! watcher on the run's label selector (list, then watch from the list's
//! resourceVersion, re-listing when the server says the version is gone), whose
//! events are handed to the instance that owns each pod. No polling: the number of
//! requests does not grow with the time pods run.

use crate::errors::{describe, Call};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the master knows of one pod.
#[derive(Debug, Clone, Default)]
pub struct PodState {
    /// The latest version of the pod seen, if any.
    pub pod: Option<Arc<Pod>>,
    /// The pod object is gone.
    pub deleted: bool,
    /// The watch fails for a reason that will not go away by itself (RBAC, missing
    /// namespace); the text says which.
    pub watch_error: Option<String>,
}

/// How long a watch that has worked may be refused (401/403/404) before the
/// refusal is taken as permanent.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

type Subscribers = Arc<Mutex<HashMap<String, watch::Sender<PodState>>>>;

/// The shared watch of one run's pods in one namespace.
pub struct PodWatch {
    subscribers: Subscribers,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for PodWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodWatch").finish_non_exhaustive()
    }
}

impl PodWatch {
    /// Starts watching the pods matching `selector`.
    pub fn start(api: Api<Pod>, selector: String, namespace: String, server: String) -> Self {
        let subscribers: Subscribers = Arc::default();
        let task = tokio::spawn(run(api, selector, namespace, server, subscribers.clone()));
        PodWatch { subscribers, task }
    }

    /// Follows the pod `name` (call before creating it, so no event is missed).
    pub fn subscribe(&self, name: &str) -> watch::Receiver<PodState> {
        let (tx, rx) = watch::channel(PodState::default());
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.insert(name.to_string(), tx);
        }
        rx
    }

    /// Stops following the pod `name`.
    pub fn unsubscribe(&self, name: &str) {
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.remove(name);
        }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn publish(subscribers: &Subscribers, pod: Pod, deleted: bool) {
    let Some(name) = pod.metadata.name.clone() else {
        return;
    };
    if let Ok(subs) = subscribers.lock() {
        if let Some(tx) = subs.get(&name) {
            tx.send_modify(|s| {
                s.pod = Some(Arc::new(pod));
                s.deleted = s.deleted || deleted;
                s.watch_error = None;
            });
        }
    }
}

async fn run(
    api: Api<Pod>,
    selector: String,
    namespace: String,
    server: String,
    subscribers: Subscribers,
) {
    let config = watcher::Config::default().labels(&selector);
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listed: HashSet<String> = HashSet::new();
    // Once the watch has worked, a refusal is first taken as transient: an API
    // server that just restarted answers 403 until its RBAC caches are synced.
    let mut worked = false;
    let mut failing_since: Option<std::time::Instant> = None;
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            failing_since = None;
        }
        // Only an event of the watch itself says that it worked: a list that
        // works says nothing of the `watch` verb (refused at once when RBAC
        // grants `list` but not `watch`).
        if matches!(event, Ok(Event::Apply(_) | Event::Delete(_))) {
            worked = true;
        }
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pod)) => {
                if let Some(n) = &pod.metadata.name {
                    listed.insert(n.clone());
                }
                publish(&subscribers, pod, false);
            }
            Ok(Event::InitDone) => {
                // After a re-list, a pod we had seen that is not listed any more was
                // deleted while the watch was down.
                if let Ok(subs) = subscribers.lock() {
                    for (name, tx) in subs.iter() {
                        if !listed.contains(name) && tx.borrow().pod.is_some() {
                            tx.send_modify(|s| s.deleted = true);
                        }
                    }
                }
            }
            Ok(Event::Apply(pod)) => publish(&subscribers, pod, false),
            Ok(Event::Delete(pod)) => publish(&subscribers, pod, true),
            Err(e) => {
                let (verb, source) = match &e {
                    watcher::Error::InitialListFailed(s) => ("list", Some(s)),
                    watcher::Error::WatchStartFailed(s) | watcher::Error::WatchFailed(s) => {
                        ("watch", Some(s))
                    }
                    _ => ("watch", None),
                };
                let refused = matches!(source, Some(kube::Error::Api(s)) if matches!(s.code, 401 | 403 | 404));
                let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                let permanent = refused && (!worked || since.elapsed() >= REFUSAL_GRACE);
                tracing::warn!(error = %e, "pod watch failed; retrying");
                if let (true, Some(source)) = (permanent, source) {
                    let text = describe(
                        Call {
                            verb,
                            resource: "pods",
                            namespace: &namespace,
                            server: &server,
                        },
                        source,
                    );
                    if let Ok(subs) = subscribers.lock() {
                        for tx in subs.values() {
                            tx.send_modify(|s| s.watch_error = Some(text.clone()));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use serde_json::json;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn pod(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "resourceVersion": "5", "labels": {"distarch.run": "r"}},
               "spec": {"containers": [{"name": "worker", "image": "w"}]},
               "status": {"phase": "Running"}})
    }

    /// The watch of run `r`'s pods in namespace `default`, through a fake API
    /// server.
    fn watch_through<S>(service: S) -> PodWatch
    where
        S: tower::Service<
                http::Request<kube::client::Body>,
                Response = http::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>,
                Error = Infallible,
            > + Send
            + Clone
            + 'static,
        S::Future: Send + 'static,
    {
        let client = kube::Client::new(service, "default");
        PodWatch::start(
            Api::namespaced(client, "default"),
            "distarch.run=r".into(),
            "default".into(),
            "fake".into(),
        )
    }

    /// Waits (at most `within`) for a state of pod `p1` that `pick` takes.
    async fn first_state<T>(
        w: &PodWatch,
        within: Duration,
        pick: impl Fn(&PodState) -> Option<T>,
    ) -> Option<T> {
        let mut rx = w.subscribe("p1");
        tokio::time::timeout(within, async {
            loop {
                if let Some(found) = pick(&rx.borrow_and_update()) {
                    return found;
                }
                rx.changed().await.unwrap();
            }
        })
        .await
        .ok()
    }

    /// RBAC grants `list` but not `watch`: the list works, every watch is
    /// refused (403). That is said at once, not after the grace given to a watch
    /// that has worked.
    #[tokio::test]
    async fn a_watch_refused_after_a_list_that_worked_is_said_at_once() {
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| async move {
            let q = req.uri().query().unwrap_or("").to_string();
            let response = if q.contains("watch=true") {
                let refused = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "pods is forbidden: User \"u\" cannot watch resource \"pods\"",
                    "reason": "Forbidden", "code": 403});
                http::Response::builder()
                    .status(403)
                    .body(Full::new(Bytes::from(refused.to_string())).boxed())
                    .unwrap()
            } else {
                let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": []});
                http::Response::new(Full::new(Bytes::from(list.to_string())).boxed())
            };
            Ok::<_, Infallible>(response)
        });
        let w = watch_through(service);
        let error = first_state(&w, Duration::from_secs(10), |s| s.watch_error.clone())
            .await
            .expect("the refusal must be said within seconds");
        assert!(
            error.contains("may not watch pods in namespace \"default\""),
            "{error}"
        );
    }

    /// The first list has the pod; the watch from it says the version expired
    /// (410); the re-list no longer has the pod: it was deleted meanwhile.
    #[tokio::test]
    async fn a_pod_missing_from_a_relist_is_deleted() {
        let lists = Arc::new(AtomicUsize::new(0));
        let l = lists.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let l = l.clone();
            async move {
                let q = req.uri().query().unwrap_or("").to_string();
                let body = if q.contains("watch=true") {
                    let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
                    format!("{gone}\n")
                } else {
                    let items = if l.fetch_add(1, Ordering::SeqCst) == 0 {
                        vec![pod("p1")]
                    } else {
                        vec![]
                    };
                    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": items}).to_string()
                };
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body)).boxed()))
            }
        });
        let w = watch_through(service);
        let deleted = first_state(&w, Duration::from_secs(20), |s| {
            s.deleted.then_some(s.pod.is_some())
        })
        .await
        .expect("the re-list must mark the pod deleted");
        assert!(deleted, "the pod was seen before it went");
        assert!(
            lists.load(Ordering::SeqCst) >= 2,
            "a 410 must lead to a re-list"
        );
    }
}
