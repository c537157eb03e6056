//! The settings of a `kubernetes` placement.

use distarch_core::{ConfigError, ConfigErrors, HumanDuration, PlacementRef};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default client-side rate limit: requests per second to the API server.
pub const DEFAULT_API_QPS: f64 = 50.0;
/// Default client-side burst: requests allowed at once before the rate applies.
pub const DEFAULT_API_BURST: u32 = 100;
/// Default time a pod may stay unschedulable before the start fails.
pub const DEFAULT_PENDING_TIMEOUT: HumanDuration = HumanDuration::from_secs(60);
/// Default time a pod may take to start its container (image pull included).
pub const DEFAULT_START_TIMEOUT: HumanDuration = HumanDuration::from_secs(300);

/// The settings of a `kubernetes` placement (everything but `transport` and
/// `instances`). Unknown keys are errors.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// Namespace of the pods; default: the context's namespace, else `default`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kubeconfig context; default: the current context.
    #[serde(default)]
    pub context: Option<String>,
    /// Kubeconfig file; default: `KUBECONFIG`, else `~/.kube/config`, else the
    /// in-cluster service account.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Use the in-cluster service-account configuration even if a kubeconfig exists.
    #[serde(default)]
    pub in_cluster: bool,
    /// Container image of the worker (required).
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; default: the cluster's default.
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    /// Replaces the group's command inside the pod (argv list).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Resource requests and limits of the container.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Node labels the pod must be scheduled on.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pod (Kubernetes field names).
    #[serde(default)]
    pub tolerations: Vec<TolerationSetting>,
    /// Service account the pod runs as.
    #[serde(default)]
    pub service_account: Option<String>,
    /// Names of secrets used to pull the image.
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
    /// Extra pod labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Client-side rate limit, requests per second.
    #[serde(default = "default_qps")]
    pub api_qps: f64,
    /// Client-side burst size.
    #[serde(default = "default_burst")]
    pub api_burst: u32,
    /// Where the worker's output is read from.
    #[serde(default)]
    pub output: OutputSource,
    /// How long a pod may stay unschedulable before its start fails.
    #[serde(default = "default_pending_timeout")]
    pub pending_timeout: HumanDuration,
    /// How long a pod may take to get its container running.
    #[serde(default = "default_start_timeout")]
    pub start_timeout: HumanDuration,
}

fn default_qps() -> f64 {
    DEFAULT_API_QPS
}
fn default_burst() -> u32 {
    DEFAULT_API_BURST
}
fn default_pending_timeout() -> HumanDuration {
    DEFAULT_PENDING_TIMEOUT
}
fn default_start_timeout() -> HumanDuration {
    DEFAULT_START_TIMEOUT
}

/// The container's image pull policy.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Where the master reads the worker's output.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputSource {
    /// The container log, followed from its first byte (nothing is lost before the
    /// attach; stdout and stderr arrive merged, as one stream).
    #[default]
    Logs,
    /// The attach stream: stdout and stderr apart; output written before the
    /// attach connected is taken from the log (merged, as stdout).
    Attach,
}

/// Resource requests and limits (quantities as Kubernetes writes them: `500m`, `1Gi`).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Requests per resource name (`cpu`, `memory`, ...).
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// Limits per resource name.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// One toleration, with the Kubernetes field names.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TolerationSetting {
    /// Taint key.
    #[serde(default)]
    pub key: Option<String>,
    /// `Exists` or `Equal`.
    #[serde(default)]
    pub operator: Option<String>,
    /// Taint value.
    #[serde(default)]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    #[serde(default)]
    pub effect: Option<String>,
    /// How long a `NoExecute` taint is tolerated.
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}

impl KubernetesSettings {
    /// Parses and checks a placement's settings; reports every problem, each
    /// naming its key.
    pub fn from_placement(placement: &PlacementRef<'_>) -> Result<Self, ConfigErrors> {
        let settings: KubernetesSettings = placement.parse_settings()?;
        let path = placement.path();
        let errors: Vec<ConfigError> = settings
            .check()
            .into_iter()
            .map(|e| e.under(&path))
            .collect();
        ConfigErrors::or_value(errors, settings)
    }

    /// Checks values that serde cannot (names, numbers); every problem, with keys
    /// relative to the placement.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.image.trim().is_empty() {
            errors.push(ConfigError::new("image", "must not be empty"));
        }
        if let Some(ns) = &self.namespace {
            if !is_dns_label(ns) {
                errors.push(ConfigError::new(
                    "namespace",
                    format!("{ns:?} is not a valid namespace name (lowercase letters, digits and '-', at most 63)"),
                ));
            }
        }
        if let Some(cmd) = &self.command {
            if cmd.is_empty() {
                errors.push(ConfigError::new("command", "must not be an empty list"));
            }
        }
        if !(self.api_qps.is_finite() && self.api_qps > 0.0) {
            errors.push(ConfigError::new("api_qps", "must be a number above 0"));
        }
        if self.api_burst == 0 {
            errors.push(ConfigError::new("api_burst", "must be at least 1"));
        }
        for key in self.labels.keys().chain(self.annotations.keys()) {
            if key.starts_with("distarch.") || key.starts_with("app.kubernetes.io/") {
                let which = if self.labels.contains_key(key) {
                    "labels"
                } else {
                    "annotations"
                };
                errors.push(ConfigError::new(
                    format!("{which}.{key}"),
                    "is set by distarch itself and cannot be overridden",
                ));
            }
        }
        for (key, value) in &self.labels {
            if !is_label_value(value) {
                errors.push(ConfigError::new(
                    format!("labels.{key}"),
                    format!("{value:?} is not a valid label value (at most 63 of [A-Za-z0-9_.-])"),
                ));
            }
        }
        errors
    }

    /// Namespace to use, given the client's default.
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(default)
    }
}

/// True for an RFC 1123 DNS label (namespace names).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// True for a valid label value.
pub fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && (s.is_empty()
            || (s.as_bytes()[0].is_ascii_alphanumeric()
                && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()))
}

/// Turns any text into a valid label value (invalid characters become `-`, cut to
/// 63, trimmed of non-alphanumeric ends).
pub fn to_label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Turns any text into a DNS-1123 subdomain usable as a pod name (lowercase, `-`
/// for anything else, at most 253 characters).
pub fn to_object_name(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<KubernetesSettings, ConfigError> {
        let map = v.as_object().cloned().unwrap_or_default();
        let p = PlacementRef {
            group: "g",
            name: "p",
            instances: 1,
            settings: &map,
        };
        KubernetesSettings::from_placement(&p).map_err(|mut e| e.0.remove(0))
    }

    #[test]
    fn minimal_settings_get_defaults() {
        let s = parse(json!({"image": "worker:1"})).unwrap();
        assert_eq!(s.image, "worker:1");
        assert_eq!(s.api_qps, DEFAULT_API_QPS);
        assert_eq!(s.api_burst, DEFAULT_API_BURST);
        assert_eq!(s.output, OutputSource::Logs);
        assert!(s.namespace.is_none());
    }

    #[test]
    fn unknown_key_is_named_with_the_placement_path() {
        let e = parse(json!({"image": "w", "namespce": "x"})).unwrap_err();
        assert!(e.path.contains("groups.g.placements.p"), "{e}");
        assert!(e.message.contains("namespce"), "{e}");
    }

    #[test]
    fn missing_image_is_an_error() {
        let e = parse(json!({"namespace": "x"})).unwrap_err();
        assert!(e.message.contains("image"), "{e}");
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let e = parse(json!({"image": "w", "namespace": "Bad_NS"})).unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.namespace");
        let e = parse(json!({"image": "w", "api_qps": 0})).unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.api_qps");
        let e = parse(json!({"image": "w", "labels": {"distarch.run": "x"}})).unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.labels.distarch.run");
        let e = parse(json!({"image": "w", "image_pull_policy": "Sometimes"})).unwrap_err();
        assert!(e.message.contains("Sometimes"), "{e}");
    }

    #[test]
    fn full_settings_parse() {
        let s = parse(json!({
            "image": "w", "namespace": "jobs", "context": "prod", "kubeconfig": "/k",
            "image_pull_policy": "Never", "command": ["/w", "--x"],
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
            "node_selector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}],
            "service_account": "runner", "image_pull_secrets": ["reg"],
            "labels": {"team": "a"}, "annotations": {"note": "hello world"},
            "api_qps": 5.5, "api_burst": 7, "output": "attach",
            "pending_timeout": "10s", "start_timeout": "1m"
        }))
        .unwrap();
        assert_eq!(s.image_pull_policy, Some(PullPolicy::Never));
        assert_eq!(s.tolerations[0].toleration_seconds, Some(5));
        assert_eq!(s.output, OutputSource::Attach);
        assert_eq!(s.pending_timeout.0, std::time::Duration::from_secs(10));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(to_object_name("distarch-AB_c-1"), "distarch-ab-c-1");
        assert_eq!(to_label_value("host.example/x"), "host.example-x");
        assert!(is_label_value(&to_label_value("--a b--")));
    }
}
