//! The Pod (and owner ConfigMap) objects distarch creates, built from an
//! [`InstanceSpec`] and the placement's settings. Pure functions: the request-level
//! tests check their output field by field.

use crate::labels;
use crate::settings::{to_label_value, to_object_name, KubernetesSettings};
use distarch_core::InstanceSpec;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, LocalObjectReference, Pod, PodSpec, ResourceRequirements,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// Name of the single container of every pod.
pub const CONTAINER_NAME: &str = "worker";

/// The pod name of an instance start: the instance's object name, plus `-r<N>` for
/// the N-th restart (a restarted instance gets a fresh pod).
pub fn pod_name(spec: &InstanceSpec) -> String {
    let base = to_object_name(&spec.object_name());
    if spec.restart == 0 {
        base
    } else {
        format!("{base}-r{}", spec.restart)
    }
}

/// The owner object of a run: one ConfigMap per run and namespace, owning every pod
/// of the run, so that deleting it deletes them all.
pub fn owner_name(run_id: &str) -> String {
    to_object_name(&format!("distarch-{run_id}"))
}

/// Who the master is, recorded on the owner object so that `distarch gc` can tell
/// whether the run is gone (core's identity, the same for every transport).
pub use distarch_core::owner::MasterIdentity;

/// The per-run owner ConfigMap.
pub fn owner_config_map(run_id: &str, master: &MasterIdentity) -> ConfigMap {
    let mut labels = BTreeMap::new();
    labels.insert(labels::RUN.to_string(), to_label_value(run_id));
    labels.insert(labels::NAME.to_string(), "distarch".to_string());
    labels.insert(labels::INSTANCE.to_string(), to_label_value(run_id));
    labels.insert(
        labels::COMPONENT.to_string(),
        labels::COMPONENT_OWNER.to_string(),
    );
    labels.insert(labels::MANAGED_BY.to_string(), labels::MANAGER.to_string());
    // The identity goes whole into the data; host, pid and start time also into
    // labels (as label values), for `kubectl get -l`.
    labels.insert(
        labels::MASTER_HOST.to_string(),
        to_label_value(&master.host),
    );
    labels.insert(labels::MASTER_PID.to_string(), master.pid.to_string());
    labels.insert(labels::MASTER_START.to_string(), master.start.to_string());
    let mut data = master.to_map();
    data.insert("run".to_string(), run_id.to_string());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(owner_name(run_id)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// The owner reference every pod of a run carries.
pub fn owner_reference(owner: &ConfigMap) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "ConfigMap".to_string(),
        name: owner.metadata.name.clone().unwrap_or_default(),
        uid: owner.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}

/// The labels of an instance's pod: distarch's own, the recommended
/// `app.kubernetes.io/*` ones, and the placement's extra labels.
pub fn pod_labels(spec: &InstanceSpec, settings: &KubernetesSettings) -> BTreeMap<String, String> {
    let mut l = settings.labels.clone();
    l.insert(labels::RUN.to_string(), to_label_value(&spec.run_id));
    l.insert(labels::GROUP.to_string(), to_label_value(&spec.group));
    l.insert(labels::ID.to_string(), spec.id.to_string());
    l.insert(labels::RESTART.to_string(), spec.restart.to_string());
    l.insert(labels::NAME.to_string(), "distarch".to_string());
    l.insert(labels::INSTANCE.to_string(), to_label_value(&spec.run_id));
    l.insert(labels::COMPONENT.to_string(), to_label_value(&spec.group));
    l.insert(labels::MANAGED_BY.to_string(), labels::MANAGER.to_string());
    l
}

/// The pod of one instance start.
pub fn build_pod(
    spec: &InstanceSpec,
    settings: &KubernetesSettings,
    owner: Option<OwnerReference>,
) -> Pod {
    let command = settings
        .command
        .clone()
        .unwrap_or_else(|| spec.command.clone());
    let env: Vec<EnvVar> = spec
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    let resources = settings.resources.as_ref().map(|r| ResourceRequirements {
        requests: quantities(&r.requests),
        limits: quantities(&r.limits),
        ..ResourceRequirements::default()
    });
    let tolerations: Vec<Toleration> = settings
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: t.key.clone(),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect();
    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.map(|p| p.as_str().to_string()),
        command: if command.is_empty() {
            None
        } else {
            Some(command)
        },
        env: if env.is_empty() { None } else { Some(env) },
        working_dir: spec.workdir.as_ref().map(|d| d.display().to_string()),
        resources,
        stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        ..Container::default()
    };
    // Kubernetes counts the grace in whole seconds; round up so that a sub-second
    // kill_after still gets the polite SIGTERM first.
    let grace = spec.kill_after.as_secs() + u64::from(spec.kill_after.subsec_nanos() > 0);
    let mut annotations = settings.annotations.clone();
    annotations.insert(labels::ANNOTATION_GROUP.to_string(), spec.group.clone());
    annotations.insert(
        labels::ANNOTATION_PLACEMENT.to_string(),
        spec.placement.clone(),
    );
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(spec)),
            labels: Some(pod_labels(spec, settings)),
            annotations: Some(annotations),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".to_string()),
            termination_grace_period_seconds: Some(i64::try_from(grace).unwrap_or(i64::MAX)),
            node_selector: if settings.node_selector.is_empty() {
                None
            } else {
                Some(settings.node_selector.clone())
            },
            tolerations: if tolerations.is_empty() {
                None
            } else {
                Some(tolerations)
            },
            service_account_name: settings.service_account.clone(),
            image_pull_secrets: if settings.image_pull_secrets.is_empty() {
                None
            } else {
                Some(
                    settings
                        .image_pull_secrets
                        .iter()
                        .map(|n| LocalObjectReference { name: n.clone() })
                        .collect(),
                )
            },
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn quantities(
    m: &std::collections::BTreeMap<String, String>,
) -> Option<BTreeMap<String, Quantity>> {
    if m.is_empty() {
        None
    } else {
        Some(
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect(),
        )
    }
}
