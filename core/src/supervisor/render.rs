//! Per-start rendering of an instance's command, environment, working directory
//! and params: the group's strings with `{id}`, `{restart}`, ... expanded (see
//! [`crate::template`]), and `DISTARCH_RESTART` / `DISTARCH_PARAMS` set.

use crate::template::{self, InstanceValues};
use crate::transport::InstanceSpec;
use distarch_protocol::env_vars;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The group's strings for one instance, before expansion.
#[derive(Debug, Clone)]
pub(crate) struct SpecTemplate {
    argv: Arc<Vec<String>>,
    env: BTreeMap<String, String>,
    workdir: Option<PathBuf>,
    params: Arc<Map<String, Value>>,
    /// False when no string holds a brace: nothing to expand, ever.
    templated: bool,
}

impl SpecTemplate {
    pub(crate) fn new(
        argv: Arc<Vec<String>>,
        env: BTreeMap<String, String>,
        workdir: Option<PathBuf>,
        params: Arc<Map<String, Value>>,
    ) -> Self {
        let templated = argv.iter().any(|a| template::has_braces(a))
            || env.values().any(|v| template::has_braces(v))
            || workdir
                .as_ref()
                .is_some_and(|w| template::has_braces(&w.to_string_lossy()))
            || params.values().any(template::json_has_braces);
        SpecTemplate {
            argv,
            env,
            workdir,
            params,
            templated,
        }
    }

    /// Fills `spec` for a start with `spec.restart` restarts before it: command,
    /// the group's env over the `DISTARCH_*` variables already there, workdir,
    /// `DISTARCH_PARAMS` and `DISTARCH_RESTART`.
    pub(crate) fn apply(&self, spec: &mut InstanceSpec) {
        spec.env
            .insert(env_vars::RESTART.to_string(), spec.restart.to_string());
        let first = !spec.env.contains_key(env_vars::PARAMS);
        if !self.templated && !first {
            return;
        }
        let host = spec.host.clone();
        let run_id = spec.run_id.clone();
        let values = InstanceValues {
            id: spec.id,
            group_id: spec.group_id,
            group_count: spec.group_count,
            host: &host,
            run_id: &run_id,
            restart: spec.restart,
        };
        spec.command = self
            .argv
            .iter()
            .map(|a| template::expand(a, &values))
            .collect();
        for (k, v) in &self.env {
            spec.env.insert(k.clone(), template::expand(v, &values));
        }
        spec.workdir = self
            .workdir
            .as_ref()
            .map(|w| PathBuf::from(template::expand(&w.to_string_lossy(), &values)));
        let params = if self.templated {
            template::expand_json(&self.params, &values)
        } else {
            self.params.as_ref().clone()
        };
        spec.env.insert(
            env_vars::PARAMS.to_string(),
            Value::Object(params).to_string(),
        );
    }
}
