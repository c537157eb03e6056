//! Building kube clients the way kubectl finds its cluster: an explicit kubeconfig,
//! else `KUBECONFIG` / `~/.kube/config`, else the in-cluster service account; with
//! the placement's context and a client-side rate limit.

use crate::ratelimit::RateLimitLayer;
use crate::settings::KubernetesSettings;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;
use std::sync::Once;

/// A connected cluster: a client and what the user needs to recognise it.
#[derive(Clone)]
pub struct Cluster {
    /// The client (rate limited).
    pub client: Client,
    /// The namespace of the context (or `default`).
    pub default_namespace: String,
    /// The API server URL, for messages.
    pub server: String,
    /// The context name used, for messages.
    pub context: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// What selects a cluster client; placements with the same key share one client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterKey {
    /// Explicit kubeconfig path.
    pub kubeconfig: Option<PathBuf>,
    /// Context name.
    pub context: Option<String>,
    /// Forced in-cluster configuration.
    pub in_cluster: bool,
}

impl ClusterKey {
    /// The key of a placement's settings.
    pub fn of(settings: &KubernetesSettings) -> Self {
        ClusterKey {
            kubeconfig: settings.kubeconfig.clone(),
            context: settings.context.clone(),
            in_cluster: settings.in_cluster,
        }
    }
}

/// The cluster configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClusterError {
    /// What failed, with the file or context concerned.
    pub message: String,
    /// The cause.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ClusterError {
    fn new(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ClusterError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Installs rustls' ring provider as the process default, once. kube's rustls
/// stack needs one; several providers in the tree would make rustls refuse to pick.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means another provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Loads the kube configuration for `key`.
pub async fn load_config(key: &ClusterKey) -> Result<(Config, String), ClusterError> {
    install_crypto_provider();
    if key.in_cluster {
        let config = Config::incluster().map_err(|e| {
            ClusterError::new(
                "cannot load the in-cluster service-account configuration",
                e,
            )
        })?;
        return Ok((config, "in-cluster".to_string()));
    }
    let options = KubeConfigOptions {
        context: key.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kubeconfig = match &key.kubeconfig {
        Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| {
            ClusterError::new(format!("cannot read kubeconfig {}", path.display()), e)
        })?),
        None => match Kubeconfig::from_env() {
            Ok(Some(k)) => Some(k),
            Ok(None) => Kubeconfig::read().ok(),
            Err(e) => {
                return Err(ClusterError::new(
                    "cannot read the kubeconfig named by KUBECONFIG",
                    e,
                ))
            }
        },
    };
    match kubeconfig {
        Some(kc) => {
            let context = key
                .context
                .clone()
                .or_else(|| kc.current_context.clone())
                .unwrap_or_else(|| "(none)".to_string());
            let where_ = key
                .kubeconfig
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "KUBECONFIG / ~/.kube/config".to_string());
            let config = Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| {
                    ClusterError::new(
                        format!("cannot use context {context:?} of kubeconfig {where_}"),
                        e,
                    )
                })?;
            Ok((config, context))
        }
        None => {
            let config = Config::incluster().map_err(|e| {
                ClusterError::new(
                    "no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a cluster",
                    e,
                )
            })?;
            Ok((config, "in-cluster".to_string()))
        }
    }
}

/// Connects (lazily: no request is made here) to the cluster of `key`.
pub async fn connect(key: &ClusterKey, qps: f64, burst: u32) -> Result<Cluster, ClusterError> {
    let (config, context) = load_config(key).await?;
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let builder = ClientBuilder::try_from(config)
        .map_err(|e| ClusterError::new(format!("cannot build a client for {server}"), e))?;
    let client = builder.with_layer(&RateLimitLayer::new(qps, burst)).build();
    Ok(Cluster {
        client,
        default_namespace,
        server,
        context,
    })
}
