//! Loading a [`Config`] from its layers with figment: built-in defaults < config file
//! < `DISTARCH_*` environment variables < command-line overrides.

use super::messages::describe;
use super::model::Config;
use super::read::{check_text, read_config_file, Format as FileFormat};
use crate::error::{ConfigError, ConfigErrors};
use figment::providers::{Env, Format, Json, Toml, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use std::path::{Path, PathBuf};

/// Name of the config file read from the current directory when none is given.
pub const DEFAULT_CONFIG_FILE: &str = "distarch.toml";

/// Prefix of environment variables that override configuration keys.
pub const ENV_CONFIG_PREFIX: &str = "DISTARCH_";

/// Variables distarch gives to workers, and `DISTARCH_MAX_INSTANCES` (a flag of the
/// command, not a key); they are never read as configuration, so that a master
/// started from inside a worker does not trip over them.
const WORKER_VARIABLES: &[&str] = &[
    "max_instances",
    "protocol",
    "run_id",
    "id",
    "group",
    "group_id",
    "group_count",
    "host",
    "restart",
    "params",
];

/// Where the configuration layers come from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// A config file (`-c FILE`); when `None`, `distarch.toml` in the current
    /// directory is read if it exists.
    pub file: Option<PathBuf>,
    /// Directory in which to look for `distarch.toml` when `file` is `None`
    /// (default: the current directory).
    pub dir: Option<PathBuf>,
    /// Skip the `DISTARCH_*` environment layer.
    pub ignore_env: bool,
    /// Command-line overrides, `(dotted.key, value)`, applied last, in order. A value is
    /// read as a TOML value when it parses as one (`5`, `true`, `["a", "b"]`,
    /// `{ a = 1 }`), otherwise as a plain string.
    pub overrides: Vec<(String, String)>,
    /// Dedicated command-line flags, `(flag, dotted.key, value)` such as
    /// `("--timeout", "launcher.timeout", "\"5m\"")`, applied after `overrides`, in
    /// order; errors in their values name the flag.
    pub flag_overrides: Vec<(String, String, String)>,
}

/// A configuration together with the layers it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The merged, deserialized configuration.
    pub config: Config,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    figment: Figment,
}

impl LoadedConfig {
    /// Describes where the value at a dotted key path came from: the file, the
    /// environment variable, the flag. `None` when unknown (a default).
    pub fn origin_of(&self, path: &str) -> Option<String> {
        // The deepest key that has metadata says where this part of the tree came from.
        let mut key = path.to_string();
        loop {
            if let Some(md) = self.figment.find_metadata(&key) {
                return Some(describe_metadata(md, &key));
            }
            match key.rfind('.') {
                Some(pos) => key.truncate(pos),
                None => return None,
            }
        }
    }

    /// Fills in the origin of every error from the layers.
    pub fn locate(&self, errors: ConfigErrors) -> ConfigErrors {
        ConfigErrors(
            errors
                .0
                .into_iter()
                .map(|e| {
                    let origin = self.origin_of(&e.path);
                    e.with_origin(origin)
                })
                .collect(),
        )
    }
}

fn describe_metadata(md: &Metadata, key: &str) -> String {
    match &md.source {
        Some(Source::File(path)) => path.display().to_string(),
        Some(Source::Custom(text)) => text.clone(),
        _ if md.name.contains("environment") => format!(
            "environment variable {ENV_CONFIG_PREFIX}{}",
            key.replace('.', "__").to_ascii_uppercase()
        ),
        _ => md.name.to_string(),
    }
}

/// Loads and merges the layers. Errors name the key and where its value came from.
pub fn load(sources: &ConfigSources) -> Result<LoadedConfig, ConfigErrors> {
    let mut figment = Figment::new();
    let file = match &sources.file {
        Some(path) => Some(path.clone()),
        None => {
            let dir = sources.dir.clone().unwrap_or_else(|| PathBuf::from("."));
            let candidate = dir.join(DEFAULT_CONFIG_FILE);
            // A directory or a dangling link of that name is reported, not skipped.
            candidate.symlink_metadata().is_ok().then_some(candidate)
        }
    };
    if let Some(path) = &file {
        figment = merge_file(figment, path)?;
    }
    if !sources.ignore_env {
        let env = Env::prefixed(ENV_CONFIG_PREFIX)
            .filter(|key| !WORKER_VARIABLES.contains(&key.as_str().to_ascii_lowercase().as_str()))
            .map(|key| env_key_path(key.as_str()).into())
            // Last: each `filter`/`map` turns lowercasing back on.
            .lowercase(false);
        figment = figment.merge(env);
    }
    for (key, value) in &sources.overrides {
        figment = figment.merge(FlagOverride::new(key, value, None)?);
    }
    for (flag, key, value) in &sources.flag_overrides {
        figment = figment.merge(FlagOverride::new(key, value, Some(flag))?);
    }
    let config: Config = figment.extract().map_err(|e| figment_errors(&figment, e))?;
    Ok(LoadedConfig {
        config,
        file,
        figment,
    })
}

/// The key path an environment variable (without its prefix) sets: `__` separates
/// levels, and levels are lowercased (`GROUPS__FIRST__INSTANCES` is
/// `groups.first.instances`), except below `env` and `params`, whose keys are the
/// user's own and keep their case (`GROUPS__G__ENV__RUST_LOG` sets `RUST_LOG`).
fn env_key_path(raw: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut verbatim = false;
    for part in raw.split("__") {
        if verbatim {
            out.push(part.to_string());
            continue;
        }
        let lower = part.to_ascii_lowercase();
        verbatim = out.len() >= 2 && (lower == "env" || lower == "params");
        out.push(lower);
    }
    out.join(".")
}

fn merge_file(figment: Figment, path: &Path) -> Result<Figment, ConfigErrors> {
    let file_error = |message: String| ConfigErrors::from(ConfigError::new("", message));
    let text = read_config_file(path).map_err(file_error)?;
    let Some(format) = FileFormat::of(path) else {
        return Err(file_error(format!(
            "config file `{}` must end in .toml, .yaml, .yml or .json",
            path.display()
        )));
    };
    check_text(format, &text).map_err(|e| file_error(format!("{}: {e}", path.display())))?;
    Ok(match format {
        FileFormat::Toml => figment.merge(Toml::file_exact(path)),
        FileFormat::Yaml => figment.merge(Yaml::file_exact(path)),
        FileFormat::Json => figment.merge(Json::file_exact(path)),
    })
}

/// Turns figment's errors (one or several) into ours, keeping key and origin.
fn figment_errors(figment: &Figment, error: figment::Error) -> ConfigErrors {
    let mut out = Vec::new();
    for e in error {
        let path = e.path.join(".");
        let message = describe(&path, &e.kind);
        let origin = e
            .metadata
            .as_ref()
            .map(|md| describe_metadata(md, &path))
            .or_else(|| {
                // Missing fields carry no metadata: say which layer defined the parent.
                figment
                    .find_metadata(&path)
                    .map(|md| describe_metadata(md, &path))
            });
        out.push(ConfigError {
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path
            },
            message,
            origin,
        });
    }
    ConfigErrors(out)
}

/// One `--set key=value` layer.
struct FlagOverride {
    key: String,
    value: Value,
    /// The dedicated flag (`--timeout`) when it was not `--set`.
    flag: Option<String>,
}

impl FlagOverride {
    fn new(key: &str, raw: &str, flag: Option<&String>) -> Result<Self, ConfigErrors> {
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ConfigError::new(
                key,
                format!(
                    "`--set {key}={raw}`: the key must be a dotted path such as launcher.timeout"
                ),
            )
            .into());
        }
        let value = parse_flag_value(raw);
        Ok(FlagOverride {
            key: key.to_string(),
            value,
            flag: flag.cloned(),
        })
    }
}

/// Reads a flag value as TOML when it is one, else as a string.
fn parse_flag_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    if let Ok(mut table) = doc.parse::<toml::Table>() {
        if let Some(v) = table.remove("v") {
            if let Ok(value) = Value::serialize(v) {
                return value;
            }
        }
    }
    Value::from(raw.to_string())
}

impl Provider for FlagOverride {
    fn metadata(&self) -> Metadata {
        Metadata::from(
            "command-line flag",
            Source::Custom(match &self.flag {
                Some(flag) => format!("command-line flag {flag}"),
                None => format!("command-line flag --set {}", self.key),
            }),
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        match figment::util::nest(&self.key, self.value.clone()) {
            Value::Dict(_, dict) => Ok(Profile::Default.collect(dict)),
            _ => Err(figment::Error::from(format!("invalid key `{}`", self.key))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const BASE: &str = r#"
[launcher]
stop_grace = "2s"
[groups.first]
command = ["./w"]
instances = 2
placements.here = { transport = "local" }
"#;

    #[test]
    fn layers_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "c.toml", BASE);
        let loaded = load(&ConfigSources {
            file: Some(file.clone()),
            ignore_env: true,
            overrides: vec![("groups.first.instances".into(), "5".into())],
            ..Default::default()
        })
        .unwrap();
        let g = &loaded.config.groups["first"];
        assert_eq!(g.instances, Some(5));
        assert_eq!(loaded.config.launcher.stop_grace.0.as_secs(), 2);
        assert_eq!(
            loaded.origin_of("groups.first.instances").as_deref(),
            Some("command-line flag --set groups.first.instances")
        );
        assert_eq!(
            loaded.origin_of("launcher.stop_grace"),
            Some(file.display().to_string())
        );
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "c.toml", &format!("{BASE}\nbogus = 1\n"));
        let err = load(&ConfigSources {
            file: Some(file.clone()),
            ignore_env: true,
            ..Default::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("groups.first"), "{text}");
        assert!(text.contains("bogus"), "{text}");
        assert!(text.contains(&file.display().to_string()), "{text}");
    }

    #[test]
    fn bad_duration_names_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "c.toml",
            &BASE.replace("\"2s\"", "\"2 parsecs\""),
        );
        let err = load(&ConfigSources {
            file: Some(file),
            ignore_env: true,
            ..Default::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("launcher.stop_grace"), "{text}");
        assert!(text.contains("invalid duration `2 parsecs`"), "{text}");
    }

    #[test]
    fn env_keys_below_env_and_params_keep_their_case() {
        assert_eq!(
            env_key_path("GROUPS__G__ENV__RUST_LOG"),
            "groups.g.env.RUST_LOG"
        );
        assert_eq!(
            env_key_path("GROUPS__First__PARAMS__MaxRows"),
            "groups.first.params.MaxRows"
        );
        assert_eq!(
            env_key_path("GROUPS__G__PLACEMENTS__BOX__ENV__A_B"),
            "groups.g.placements.box.env.A_B"
        );
        assert_eq!(env_key_path("LAUNCHER__TIMEOUT"), "launcher.timeout");
        // `env` as a group name is a name, not the env table.
        assert_eq!(
            env_key_path("GROUPS__ENV__INSTANCES"),
            "groups.env.instances"
        );
    }

    #[test]
    fn a_dedicated_flag_is_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "c.toml", BASE);
        let err = load(&ConfigSources {
            file: Some(file),
            ignore_env: true,
            flag_overrides: vec![(
                "--timeout".into(),
                "launcher.timeout".into(),
                "\"soon\"".into(),
            )],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.ends_with("(from command-line flag --timeout)"), "{err}");
    }
}
