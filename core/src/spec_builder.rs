//! [`SpecBuilder`]: an [`InstanceSpec`] for starting one instance outside a launch
//! (a transport's own tests, tools, benchmarks), with the defaults of a one-instance
//! group and settings prepared by the transport's own [`Transport::plan`].

use crate::error::{ConfigError, ConfigErrors};
use crate::transport::{InstanceSpec, PlacementRef, Prepared, Transport};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Builds an [`InstanceSpec`]; start with [`InstanceSpec::builder`].
///
/// Defaults: run `test`, group `g`, placement `p`, instance 1 of 1, no restart, no
/// environment, workdir or priority, 10 s stop grace and kill delay, target
/// `local` labelled `localhost`, nothing prepared.
#[derive(Debug, Clone)]
pub struct SpecBuilder {
    spec: InstanceSpec,
}

impl InstanceSpec {
    /// A builder for a spec that runs `command` (program and arguments).
    pub fn builder<S: Into<String>>(command: impl IntoIterator<Item = S>) -> SpecBuilder {
        SpecBuilder {
            spec: InstanceSpec {
                run_id: "test".into(),
                group: "g".into(),
                placement: "p".into(),
                id: 1,
                group_id: 1,
                group_count: 1,
                target: "local".into(),
                host: "localhost".into(),
                restart: 0,
                command: command.into_iter().map(Into::into).collect(),
                env: Default::default(),
                workdir: None,
                priority: None,
                prepared: Prepared::default(),
                stop_grace: Duration::from_secs(10),
                kill_after: Duration::from_secs(10),
            },
        }
    }
}

impl SpecBuilder {
    /// The run id.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.spec.run_id = run_id.into();
        self
    }

    /// The group and placement names.
    pub fn names(mut self, group: impl Into<String>, placement: impl Into<String>) -> Self {
        self.spec.group = group.into();
        self.spec.placement = placement.into();
        self
    }

    /// The global id (also the index in the group, in a group of that many).
    pub fn id(mut self, id: u64) -> Self {
        self.spec.id = id;
        self.spec.group_id = id;
        self.spec.group_count = self.spec.group_count.max(id);
        self
    }

    /// The target address (and its label), e.g. one host of an ssh placement; with
    /// [`SpecBuilder::plan`], the planned target of that address is used.
    pub fn target(mut self, address: impl Into<String>) -> Self {
        let address = address.into();
        self.spec.host = address.clone();
        self.spec.target = address;
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.env.insert(key.into(), value.into());
        self
    }

    /// The working directory.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spec.workdir = Some(dir.into());
        self
    }

    /// The scheduling priority (nice value).
    pub fn priority(mut self, nice: i32) -> Self {
        self.spec.priority = Some(nice);
        self
    }

    /// The stop grace and the kill delay.
    pub fn stop_times(mut self, grace: Duration, kill_after: Duration) -> Self {
        self.spec.stop_grace = grace;
        self.spec.kill_after = kill_after;
        self
    }

    /// The spec as built, with nothing prepared (for transports without settings).
    pub fn build(self) -> InstanceSpec {
        self.spec
    }

    /// Plans a one-instance placement of `transport` with `settings` (a JSON object),
    /// as a launch would, and returns the spec on its target: the one whose address
    /// was given with [`SpecBuilder::target`], else the first.
    pub fn plan(
        self,
        transport: &dyn Transport,
        settings: &Value,
    ) -> Result<InstanceSpec, ConfigErrors> {
        let mut spec = self.spec;
        let empty = Map::new();
        let placement = PlacementRef {
            group: &spec.group,
            name: &spec.placement,
            instances: 1,
            settings: settings.as_object().unwrap_or(&empty),
        };
        if !settings.is_object() {
            return Err(ConfigError::new(placement.path(), "settings must be a table").into());
        }
        let planned = transport.plan(&placement)?;
        let target = planned
            .targets
            .iter()
            .find(|t| t.address == spec.target)
            .or_else(|| planned.targets.first())
            .ok_or_else(|| ConfigError::new(placement.path(), "the plan has no target"))?;
        spec.target = target.address.clone();
        spec.host = target.host.clone();
        spec.prepared = planned.prepared;
        Ok(spec)
    }
}
