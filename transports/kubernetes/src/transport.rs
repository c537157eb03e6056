//! The `kubernetes` transport: plan targets from placements, start one pod per
//! instance, tie the pods of a run to one owner object.

use crate::client::{connect, Cluster, ClusterKey};
use crate::errors::{is_conflict, spawn_error, Call};
use crate::instance::{delete_params, PodInstance};
use crate::labels;
use crate::pod::{
    build_pod, owner_config_map, owner_name, owner_reference, pod_name, MasterIdentity,
};
use crate::settings::{KubernetesSettings, OutputSource};
use crate::start::{attach_stdio, wait_started};
use crate::watch::PodWatch;
use async_trait::async_trait;
use distarch_core::{
    ConfigErrors, Instance, InstanceSpec, PlacementPlan, PlacementRef, Prepared, SpawnError,
    Target, Transport,
};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PostParams;
use kube::{Api, Client};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

/// The transport name placements use.
pub const NAME: &str = "kubernetes";

/// Runs instances as pods. One client per cluster (kubeconfig + context), one
/// owner object and one pod watch per run and namespace.
pub struct KubernetesTransport {
    clusters: Mutex<HashMap<ClusterKey, Arc<Cluster>>>,
    scopes: Mutex<HashMap<ScopeKey, Arc<RunScope>>>,
    fixed: Option<Arc<Cluster>>,
    master: MasterIdentity,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScopeKey {
    cluster: ClusterKey,
    namespace: String,
    run: String,
}

/// What a run has in one namespace of one cluster.
struct RunScope {
    pods: Api<Pod>,
    config_maps: Api<ConfigMap>,
    events: Api<Event>,
    namespace: String,
    server: String,
    run: String,
    owner: OnceCell<OwnerReference>,
    watch: Arc<PodWatch>,
}

impl Default for KubernetesTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl KubernetesTransport {
    /// A transport that finds clusters as kubectl does.
    pub fn new() -> Self {
        KubernetesTransport {
            clusters: Mutex::default(),
            scopes: Mutex::default(),
            fixed: None,
            master: MasterIdentity::current(),
        }
    }

    /// A transport that sends every request through `client` (tests, or a library
    /// user with a client of their own); `server` names it in messages.
    pub fn with_client(client: Client, server: impl Into<String>) -> Self {
        let default_namespace = client.default_namespace().to_string();
        KubernetesTransport {
            clusters: Mutex::default(),
            scopes: Mutex::default(),
            fixed: Some(Arc::new(Cluster {
                client,
                default_namespace,
                server: server.into(),
                context: "custom".to_string(),
            })),
            master: MasterIdentity::current(),
        }
    }

    /// Replaces the master identity written on owner objects (tests).
    pub fn with_master(mut self, master: MasterIdentity) -> Self {
        self.master = master;
        self
    }

    async fn cluster(&self, settings: &KubernetesSettings) -> Result<Arc<Cluster>, SpawnError> {
        if let Some(c) = &self.fixed {
            return Ok(c.clone());
        }
        let key = ClusterKey::of(settings);
        let mut clusters = self.clusters.lock().await;
        if let Some(c) = clusters.get(&key) {
            return Ok(c.clone());
        }
        let cluster = connect(&key, settings.api_qps, settings.api_burst)
            .await
            .map_err(|e| SpawnError::with_source(e.message.clone(), e))?;
        let cluster = Arc::new(cluster);
        clusters.insert(key, cluster.clone());
        Ok(cluster)
    }

    async fn scope(
        &self,
        settings: &KubernetesSettings,
        run: &str,
    ) -> Result<Arc<RunScope>, SpawnError> {
        let cluster = self.cluster(settings).await?;
        let namespace = settings
            .namespace_or(&cluster.default_namespace)
            .to_string();
        let key = ScopeKey {
            cluster: ClusterKey::of(settings),
            namespace: namespace.clone(),
            run: run.to_string(),
        };
        let mut scopes = self.scopes.lock().await;
        if let Some(s) = scopes.get(&key) {
            return Ok(s.clone());
        }
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
        let watch = PodWatch::start(
            pods.clone(),
            labels::run_selector(run),
            namespace.clone(),
            cluster.server.clone(),
        );
        let scope = Arc::new(RunScope {
            config_maps: Api::namespaced(cluster.client.clone(), &namespace),
            events: Api::namespaced(cluster.client.clone(), &namespace),
            pods,
            namespace,
            server: cluster.server.clone(),
            run: run.to_string(),
            owner: OnceCell::new(),
            watch: Arc::new(watch),
        });
        scopes.insert(key, scope.clone());
        Ok(scope)
    }
}

impl RunScope {
    fn call<'a>(&'a self, verb: &'a str, resource: &'a str) -> Call<'a> {
        Call {
            verb,
            resource,
            namespace: &self.namespace,
            server: &self.server,
        }
    }

    /// The run's owner object, created at the first spawn.
    async fn owner(&self, master: &MasterIdentity) -> Result<OwnerReference, SpawnError> {
        self.owner
            .get_or_try_init(|| async {
                let cm = owner_config_map(&self.run, master);
                let created = match self.config_maps.create(&PostParams::default(), &cm).await {
                    Ok(c) => c,
                    Err(e) if is_conflict(&e) => self
                        .config_maps
                        .get(&owner_name(&self.run))
                        .await
                        .map_err(|e| spawn_error(self.call("get", "configmaps"), e))?,
                    Err(e) => return Err(spawn_error(self.call("create", "configmaps"), e)),
                };
                Ok(owner_reference(&created))
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl Transport for KubernetesTransport {
    fn name(&self) -> &str {
        NAME
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        let settings = KubernetesSettings::from_placement(placement)?;
        let context = settings.context.clone().unwrap_or_default();
        let namespace = settings.namespace.clone().unwrap_or_default();
        let host = match (settings.context.as_deref(), settings.namespace.as_deref()) {
            (Some(c), Some(n)) => format!("{c}/{n}"),
            (None, Some(n)) => n.to_string(),
            (Some(c), None) => c.to_string(),
            (None, None) => "kubernetes".to_string(),
        };
        let target = Target {
            address: format!("{context}/{namespace}"),
            host,
            instances: placement.instances,
        };
        Ok(PlacementPlan::new(vec![target], Prepared::new(settings)))
    }

    /// Deletes the owner objects and pods of gone runs in every namespace the
    /// configuration's kubernetes placements name (else the current context's).
    async fn gc(&self, request: &distarch_core::GcRequest<'_>) -> distarch_core::GcReport {
        crate::gc::gc_config(request.config, request.dry_run).await
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let settings = spec.settings::<KubernetesSettings>()?;
        let scope = self.scope(settings, &spec.run_id).await?;
        let owner = scope.owner(&self.master).await?;
        let name = pod_name(spec);
        let mut state = scope.watch.subscribe(&name);
        let pod = build_pod(spec, settings, Some(owner));
        if let Err(e) = scope.pods.create(&PostParams::default(), &pod).await {
            scope.watch.unsubscribe(&name);
            return Err(spawn_error(scope.call("create", "pods"), e));
        }
        // If this start is abandoned half-way (the run is stopping and drops this
        // future), the pod must not stay behind.
        let mut guard = PodGuard {
            api: Some(scope.pods.clone()),
            name: name.clone(),
            watch: scope.watch.clone(),
        };
        let fail = |message: String| async {
            guard_delete(&scope.pods, &name).await;
            scope.watch.unsubscribe(&name);
            SpawnError::new(message)
        };
        let running = match wait_started(
            &scope.events,
            &name,
            &scope.namespace,
            &mut state,
            settings,
        )
        .await
        {
            Ok(running) => running,
            Err(message) => {
                guard.api = None;
                return Err(fail(message).await);
            }
        };
        let (io, attached, log_done) = match attach_stdio(
            &scope.pods,
            &name,
            state.clone(),
            running,
            settings.output == OutputSource::Attach,
        )
        .await
        {
            Ok(x) => x,
            Err((call, e)) => {
                guard.api = None;
                let message = crate::errors::describe(scope.call(call.0, call.1), &e);
                return Err(fail(format!("pod {}/{}: {message}", scope.namespace, name)).await);
            }
        };
        guard.api = None;
        Ok(Box::new(PodInstance::new(
            scope.pods.clone(),
            name,
            scope.namespace.clone(),
            scope.server.clone(),
            state,
            scope.watch.clone(),
            io,
            attached,
            log_done,
            spec.kill_after,
        )))
    }

    async fn shutdown(&self) {
        let scopes: Vec<Arc<RunScope>> = self.scopes.lock().await.drain().map(|(_, s)| s).collect();
        for scope in scopes {
            if scope.owner.get().is_some() {
                // Deleting the owner cascades to any pod still there.
                if let Err(e) = scope
                    .config_maps
                    .delete(&owner_name(&scope.run), &delete_params(0))
                    .await
                {
                    if !crate::errors::is_not_found(&e) {
                        tracing::warn!(error = %e, "could not delete the run's owner object");
                    }
                }
            }
        }
    }
}

async fn guard_delete(pods: &Api<Pod>, name: &str) {
    let _ = pods.delete(name, &delete_params(0)).await;
}

/// Deletes a pod whose start was abandoned (the spawn future dropped) unless
/// disarmed by taking `api`.
struct PodGuard {
    api: Option<Api<Pod>>,
    name: String,
    watch: Arc<PodWatch>,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            self.watch.unsubscribe(&self.name);
            let name = std::mem::take(&mut self.name);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { guard_delete(&api, &name).await });
            }
        }
    }
}
