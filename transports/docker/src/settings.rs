//! Settings of a docker placement, and their checks.

use distarch_core::{CommandLine, ConfigError, ConfigErrors, PlacementRef};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Label keys that distarch sets itself; a placement's `labels` may not use them.
pub const RESERVED_LABEL_PREFIX: &str = "distarch.";

/// `{ transport = "docker", image = "...", instances = N, ... }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSettings {
    /// Image to run (required), e.g. `"worker:1"`.
    pub image: String,
    /// When to pull the image: `never`, `missing` (default) or `always`.
    #[serde(default)]
    pub pull: PullPolicy,
    /// Engine address (`unix:///path`, `tcp://host:port`, `https://host:port`); default
    /// `DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    #[serde(default)]
    pub host: Option<String>,
    /// Label of the engine in log prefixes and `DISTARCH_HOST` (default: `docker`
    /// for a unix socket, the host name for a remote engine).
    #[serde(default)]
    pub label: Option<String>,
    /// Folder with `ca.pem`, `cert.pem`, `key.pem` for a TLS engine; default
    /// `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set.
    #[serde(default)]
    pub cert_path: Option<PathBuf>,
    /// Container command instead of the group's command (`[]`: the image's own `CMD`).
    #[serde(default)]
    pub command: Option<CommandLine>,
    /// Entrypoint instead of the image's (`[]` or `""`: none).
    #[serde(default)]
    pub entrypoint: Option<CommandLine>,
    /// Working directory inside the container (default: the group's `workdir`, else
    /// the image's).
    #[serde(default)]
    pub workdir: Option<String>,
    /// User (`name`, `uid`, `uid:gid`) the worker runs as.
    #[serde(default)]
    pub user: Option<String>,
    /// Network mode: `none`, `host`, `bridge`, or a network name.
    #[serde(default)]
    pub network: Option<String>,
    /// Bind mounts and volumes in the `docker run -v` form `SOURCE:TARGET[:ro]`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Mounts in the structured form.
    #[serde(default)]
    pub mounts: Vec<MountSetting>,
    /// Memory limit: bytes, or a number with `k`, `m`, `g` (1024-based), e.g. `"64m"`.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// CPU limit in cores, e.g. `0.5`.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Largest number of processes in the container.
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// Extra environment variables for the container (over the group's `env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Extra container labels (keys starting with `distarch.` are reserved).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Run a tiny init (`docker run --init`) as PID 1 that forwards signals to the
    /// worker and reaps zombies (default true). Without it the worker is PID 1,
    /// which the kernel shields from SIGTERM unless it handles it.
    #[serde(default = "default_true")]
    pub init: bool,
    /// Run the container's command line under a small watcher (needs `/bin/sh` in
    /// the image) so that the container ends when the master's attach goes away,
    /// even for a program that never reads stdin (default true).
    #[serde(default = "default_true")]
    pub end_with_master: bool,
    /// Remove the container once it has ended (default true).
    #[serde(default = "default_true")]
    pub auto_remove: bool,
}

fn default_true() -> bool {
    true
}

/// When the image is pulled from its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Never: a missing image is an error.
    Never,
    /// When the engine does not have it.
    #[default]
    Missing,
    /// Once per run and engine, before the first container starts.
    Always,
}

/// One entry of `mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSetting {
    /// `bind` (default), `volume` or `tmpfs`.
    #[serde(default, rename = "type")]
    pub kind: MountKind,
    /// Host path (bind) or volume name (volume); unused for tmpfs.
    #[serde(default)]
    pub source: Option<String>,
    /// Absolute path inside the container.
    pub target: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Kind of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    #[default]
    Bind,
    /// A named volume.
    Volume,
    /// A memory file system.
    Tmpfs,
}

/// A size in bytes, written as a number or a string such as `"64m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub i64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) if n > 0 => Ok(ByteSize(n)),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "memory must be positive, not {n}"
            ))),
            Raw::Text(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `123`, `64k`, `64m`, `1g`, `1.5g` (optionally with a trailing `b`, any case).
pub fn parse_size(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid size `{text}`: expected a number with k, m or g, e.g. \"64m\"");
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (number, unit) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1i64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        Some(_) => (t, 1),
        None => return Err(bad()),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let bytes = value * unit as f64;
    if !(bytes >= 1.0 && bytes < i64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as i64)
}

impl DockerSettings {
    /// Parses and checks a placement's settings; every error names the key. The
    /// one place settings are read: `plan` and `spawn` both come here.
    pub fn from_placement(placement: &PlacementRef<'_>) -> Result<Self, ConfigErrors> {
        let settings: DockerSettings = placement.parse_settings()?;
        let errors: Vec<ConfigError> = settings
            .check()
            .into_iter()
            .map(|(key, message)| ConfigError::new(format!("{}.{key}", placement.path()), message))
            .collect();
        ConfigErrors::or_value(errors, settings)
    }

    /// Checks values that deserialization cannot; returns every problem, each with
    /// its key.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let mut push = |key: &'static str, r: Result<(), String>| {
            if let Err(m) = r {
                errors.push((key, m));
            }
        };
        if self.image.trim().is_empty() {
            push("image", Err("must name an image".into()));
        }
        if let Some(host) = &self.host {
            push("host", crate::engine::check_address(host));
        }
        if self.label.as_deref().is_some_and(|l| l.trim().is_empty()) {
            push("label", Err("must not be empty".into()));
        }
        if let Some(cpus) = self.cpus {
            if !(cpus > 0.0 && cpus <= 4096.0) {
                push(
                    "cpus",
                    Err(format!("must be a positive number of cores, not {cpus}")),
                );
            }
        }
        if let Some(p) = self.pids_limit {
            if p < 1 {
                push("pids_limit", Err(format!("must be at least 1, not {p}")));
            }
        }
        for v in &self.volumes {
            push("volumes", parse_volume(v).map(|_| ()));
        }
        for m in &self.mounts {
            push("mounts", check_mount(m));
        }
        for key in self.labels.keys() {
            if key.starts_with(RESERVED_LABEL_PREFIX) {
                push(
                    "labels",
                    Err(format!("`{key}`: labels starting with `{RESERVED_LABEL_PREFIX}` are set by distarch")),
                );
            }
        }
        for (key, value) in &self.env {
            push("env", distarch_core::config::check_env_var(key, value));
        }
        if let Some(c) = &self.command {
            push("command", c.argv().map(|_| ()));
        }
        if let Some(e) = &self.entrypoint {
            push("entrypoint", e.argv().map(|_| ()));
        }
        errors
    }
}

/// Splits `SOURCE:TARGET[:OPTIONS]` and checks that the target is absolute.
pub fn parse_volume(text: &str) -> Result<(String, String, Option<String>), String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [s, t] => (*s, *t, None),
        [s, t, o] => (*s, *t, Some(o.to_string())),
        _ => {
            return Err(format!(
                "`{text}`: expected SOURCE:TARGET or SOURCE:TARGET:OPTIONS"
            ))
        }
    };
    if source.is_empty() {
        return Err(format!("`{text}`: the source is empty"));
    }
    if !target.starts_with('/') {
        return Err(format!(
            "`{text}`: the target `{target}` must be an absolute path"
        ));
    }
    if let Some(o) = &options {
        for opt in o.split(',') {
            if !matches!(
                opt,
                "ro" | "rw"
                    | "z"
                    | "Z"
                    | "shared"
                    | "slave"
                    | "private"
                    | "rshared"
                    | "rslave"
                    | "rprivate"
                    | "nocopy"
            ) {
                return Err(format!("`{text}`: unknown volume option `{opt}`"));
            }
        }
    }
    Ok((source.to_string(), target.to_string(), options))
}

fn check_mount(m: &MountSetting) -> Result<(), String> {
    if !m.target.starts_with('/') {
        return Err(format!("target `{}` must be an absolute path", m.target));
    }
    match (m.kind, &m.source) {
        (MountKind::Bind, Some(s)) if !s.starts_with('/') => Err(format!(
            "bind source `{s}` (for {}) must be an absolute host path",
            m.target
        )),
        (MountKind::Bind, None) => Err(format!("bind mount of {} needs a `source`", m.target)),
        (MountKind::Tmpfs, Some(_)) => {
            Err(format!("tmpfs mount of {} takes no `source`", m.target))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<DockerSettings, ConfigError> {
        let map = value.as_object().cloned().unwrap_or_default();
        let p = PlacementRef {
            group: "g",
            name: "p",
            instances: 1,
            settings: &map,
        };
        DockerSettings::from_placement(&p).map_err(|mut e| e.0.remove(0))
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1m").is_err());
    }

    #[test]
    fn defaults() {
        let s = parse(json!({"image": "w:1"})).unwrap();
        assert_eq!(s.pull, PullPolicy::Missing);
        assert!(s.auto_remove);
        assert_eq!(s.host, None);
    }

    #[test]
    fn full() {
        let s = parse(json!({
            "image": "w:1", "pull": "never", "host": "tcp://10.0.0.1:2375",
            "command": ["/w", "x"], "entrypoint": "", "workdir": "/tmp", "user": "1000:1000",
            "network": "none", "volumes": ["/data:/data:ro"],
            "mounts": [{"type": "tmpfs", "target": "/scratch"}],
            "memory": "64m", "cpus": 0.5, "pids_limit": 100, "labels": {"team": "a"},
            "auto_remove": false, "env": {"A": "1"}
        }))
        .unwrap();
        assert_eq!(s.memory, Some(ByteSize(64 << 20)));
        assert_eq!(s.pull, PullPolicy::Never);
        assert!(!s.auto_remove);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse(json!({"image": "w", "imagee": 1})).unwrap_err();
        assert!(e.path.contains("groups.g.placements.p"), "{e}");
        assert!(e.message.contains("imagee"), "{e}");
        let e = parse(json!({"image": "w", "memory": "lots"})).unwrap_err();
        assert!(e.message.contains("lots"), "{e}");
        let e = parse(json!({"image": "w", "volumes": ["/a:relative"]})).unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.volumes");
        let e = parse(json!({"image": "w", "labels": {"distarch.run": "x"}})).unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.labels");
        let e = parse(json!({"image": "w", "host": "ftp://x"})).unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.host");
        let e = parse(json!({"image": "w", "pull": "sometimes"})).unwrap_err();
        assert!(e.message.contains("sometimes"), "{e}");
        let e = parse(json!({"image": "w", "cpus": 0})).unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.cpus");
        let e = parse(json!({"image": "w", "mounts": [{"source": "rel", "target": "/x"}]}))
            .unwrap_err();
        assert_eq!(e.path, "groups.g.placements.p.mounts");
        for env in [
            json!({"DISTARCH_ID=9": "z"}),
            json!({"DISTARCH_ID": "9"}),
            json!({"": "x"}),
            json!({"A=B": "x"}),
            json!({"A\0": "x"}),
            json!({"A": "x\0y"}),
        ] {
            let e = parse(json!({"image": "w", "env": env})).unwrap_err();
            assert_eq!(e.path, "groups.g.placements.p.env", "{env}: {e}");
        }
        let e = parse(json!({"image": "w", "env": {"DISTARCH_ID": "9"}})).unwrap_err();
        assert!(e.message.contains("set by distarch"), "{e}");
        let e = parse(json!({})).unwrap_err();
        assert!(e.message.contains("image"), "{e}");
    }
}
