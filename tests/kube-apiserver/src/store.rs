//! The object store: pods, config maps and events by namespace and name, one
//! global resourceVersion counter, and the history of changes that watches replay
//! from a resourceVersion (kept whole: this server never compacts).

use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::broadcast;

/// The kinds this server stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pods.
    Pod,
    /// ConfigMaps.
    ConfigMap,
    /// Events.
    Event,
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion after the change.
    pub rv: u64,
    /// Kind of the object.
    pub kind: Kind,
    /// Namespace of the object.
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub type_: &'static str,
    /// The object as it was after the change (before, for `DELETED`).
    pub object: Value,
}

/// Key of a namespaced object.
pub type Key = (String, String);

/// Everything the server stores.
pub struct Store {
    rv: u64,
    uid: u64,
    /// Namespaces that exist.
    pub namespaces: BTreeSet<String>,
    /// Pods.
    pub pods: BTreeMap<Key, Pod>,
    /// ConfigMaps.
    pub config_maps: BTreeMap<Key, ConfigMap>,
    /// Events.
    pub events: BTreeMap<Key, Event>,
    history: Vec<Change>,
    changes: broadcast::Sender<Change>,
}

/// Now, as a Kubernetes time.
pub fn now() -> Time {
    after_secs(0)
}

/// `secs` seconds from now, as a Kubernetes time.
pub fn after_secs(secs: i64) -> Time {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0).saturating_add(secs);
    let nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    Time(Timestamp::new(secs, nanos).unwrap_or(Timestamp::UNIX_EPOCH))
}

impl Store {
    /// An empty store with these namespaces.
    pub fn new(namespaces: impl IntoIterator<Item = String>) -> Self {
        let (changes, _) = broadcast::channel(4096);
        Store {
            rv: 1,
            uid: 0,
            namespaces: namespaces.into_iter().collect(),
            pods: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            events: BTreeMap::new(),
            history: Vec::new(),
            changes,
        }
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// A fresh uid.
    pub fn new_uid(&mut self) -> String {
        self.uid += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid)
    }

    /// Changes after `after` (filtered by the caller) and a receiver for the next
    /// ones, taken under the same lock so that nothing falls between.
    pub fn since(&self, after: u64) -> (Vec<Change>, broadcast::Receiver<Change>) {
        let start = self.history.partition_point(|c| c.rv <= after);
        (self.history[start..].to_vec(), self.changes.subscribe())
    }

    fn record(&mut self, kind: Kind, namespace: &str, type_: &'static str, object: Value) {
        let change = Change {
            rv: self.rv,
            kind,
            namespace: namespace.to_string(),
            type_,
            object,
        };
        self.history.push(change.clone());
        let _ = self.changes.send(change);
    }

    fn bump(&mut self, meta: &mut ObjectMeta) {
        self.rv += 1;
        meta.resource_version = Some(self.rv.to_string());
    }

    /// Stores a new or changed pod and records the change.
    pub fn put_pod(&mut self, mut pod: Pod, type_: &'static str) -> Pod {
        self.bump(&mut pod.metadata);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.record(Kind::Pod, &ns, type_, to_value(&pod));
        self.pods.insert((ns, name), pod.clone());
        pod
    }

    /// Changes the pod `key` if it is still the one with `uid`; returns the new version.
    pub fn update_pod(&mut self, key: &Key, uid: &str, f: impl FnOnce(&mut Pod)) -> Option<Pod> {
        let mut pod = self.pods.get(key)?.clone();
        if pod.metadata.uid.as_deref() != Some(uid) {
            return None;
        }
        f(&mut pod);
        Some(self.put_pod(pod, "MODIFIED"))
    }

    /// Removes the pod `key` (if it is the one with `uid`, when given).
    pub fn remove_pod(&mut self, key: &Key, uid: Option<&str>) -> Option<Pod> {
        let current = self.pods.get(key)?;
        if uid.is_some() && current.metadata.uid.as_deref() != uid {
            return None;
        }
        let mut pod = self.pods.remove(key)?;
        self.bump(&mut pod.metadata);
        self.record(Kind::Pod, &key.0, "DELETED", to_value(&pod));
        Some(pod)
    }

    /// Stores a new config map.
    pub fn put_config_map(&mut self, mut cm: ConfigMap) -> ConfigMap {
        self.bump(&mut cm.metadata);
        let ns = cm.metadata.namespace.clone().unwrap_or_default();
        let name = cm.metadata.name.clone().unwrap_or_default();
        self.record(Kind::ConfigMap, &ns, "ADDED", to_value(&cm));
        self.config_maps.insert((ns, name), cm.clone());
        cm
    }

    /// Removes a config map.
    pub fn remove_config_map(&mut self, key: &Key) -> Option<ConfigMap> {
        let mut cm = self.config_maps.remove(key)?;
        self.bump(&mut cm.metadata);
        self.record(Kind::ConfigMap, &key.0, "DELETED", to_value(&cm));
        Some(cm)
    }

    /// Records an event about a pod, as the kubelet or the scheduler would.
    pub fn pod_event(&mut self, pod: &Pod, type_: &str, reason: &str, message: &str, source: &str) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        self.uid += 1;
        let name = format!("{pod_name}.{:016x}", self.uid);
        let mut event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: Some(format!("ev-{}", self.uid)),
                creation_timestamp: Some(now()),
                ..ObjectMeta::default()
            },
            involved_object: k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            type_: Some(type_.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some(source.into()),
                host: None,
            }),
            first_timestamp: Some(now()),
            last_timestamp: Some(now()),
            count: Some(1),
            ..Event::default()
        };
        self.bump(&mut event.metadata);
        self.record(Kind::Event, &ns, "ADDED", to_value(&event));
        self.events.insert((ns, name), event);
    }
}

/// Serializes a k8s-openapi object (with its apiVersion and kind).
pub fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}
