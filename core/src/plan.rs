//! The placement plan: which instance ids go where, computed and checked before
//! anything starts.

use crate::config::{Config, GroupConfig, PlacementConfig};
use crate::error::{ConfigError, ConfigErrors};
use crate::registry::TransportRegistry;
use crate::transport::{PlacementRef, Target};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A group as it will run.
#[derive(Debug, Clone)]
pub struct PlannedGroup {
    /// Group name.
    pub name: Arc<str>,
    /// Its configuration.
    pub config: Arc<GroupConfig>,
    /// The command as an argv.
    pub argv: Arc<Vec<String>>,
    /// Number of instances in the group.
    pub count: u64,
}

/// One instance as it will run.
#[derive(Debug, Clone)]
pub struct PlannedInstance {
    /// Global id, 1-based across the run, in group order.
    pub id: u64,
    /// Index into [`Plan::groups`].
    pub group_index: usize,
    /// 1-based index within the group.
    pub group_id: u64,
    /// Placement name.
    pub placement: Arc<str>,
    /// Transport name.
    pub transport: Arc<str>,
    /// Where it goes.
    pub target: Arc<Target>,
    /// The placement's transport-specific settings.
    pub settings: Arc<Map<String, Value>>,
    /// The group's params with the placement's merged over them (placeholders not
    /// yet expanded).
    pub params: Arc<Map<String, Value>>,
}

/// Every instance of a run, in id order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Groups in id order.
    pub groups: Vec<PlannedGroup>,
    /// Instances in id order.
    pub instances: Vec<PlannedInstance>,
}

impl Plan {
    /// The group an instance belongs to.
    pub fn group_of(&self, instance: &PlannedInstance) -> &PlannedGroup {
        &self.groups[instance.group_index]
    }
}

/// Name of the placement a group gets when it lists none.
pub const IMPLICIT_PLACEMENT: &str = "local";

/// Checks the configuration against the registered transports and gives out ids:
/// groups by (`order`, name), placements by name, targets in the transport's order.
/// `only` restricts the run to the named groups (ids are given out among them).
/// Every problem found is reported, each with its key path.
pub fn build_plan(
    config: &Config,
    registry: &TransportRegistry,
    only: &[String],
) -> Result<Plan, ConfigErrors> {
    let mut errors = Vec::new();
    for name in only {
        if !config.groups.contains_key(name) {
            let known: Vec<&str> = config.groups.keys().map(String::as_str).collect();
            errors.push(ConfigError::new(
                format!("groups.{name}"),
                format!("no such group (known: {})", known.join(", ")),
            ));
        }
    }
    if config.groups.is_empty() {
        errors.push(ConfigError::new(
            "groups",
            "no group is configured (add a [groups.NAME] table with a command)",
        ));
    }
    let mut ordered: Vec<(&String, &GroupConfig)> = config
        .groups
        .iter()
        .filter(|(name, _)| only.is_empty() || only.contains(name))
        .collect();
    ordered.sort_by(|a, b| a.1.order.cmp(&b.1.order).then_with(|| a.0.cmp(b.0)));

    crate::checks::check_dependencies(config, only, &mut errors);
    let mut plan = Plan::default();
    let mut next_id = 1u64;
    for (name, group) in ordered {
        let path = format!("groups.{name}");
        validate_group(&path, group, &mut errors);
        crate::checks::check_group(&path, group, &mut errors);
        // A bad command is reported, and the placements are still checked.
        let argv = match group.command.argv() {
            Ok(argv) if argv.is_empty() || argv[0].is_empty() => {
                errors.push(ConfigError::new(
                    format!("{path}.command"),
                    "the command is empty",
                ));
                Vec::new()
            }
            Ok(argv) => argv,
            Err(e) => {
                errors.push(ConfigError::new(format!("{path}.command"), e));
                Vec::new()
            }
        };
        let placements: Vec<(String, PlacementConfig)> = if group.placements.is_empty() {
            vec![(
                IMPLICIT_PLACEMENT.to_string(),
                PlacementConfig {
                    transport: "local".into(),
                    instances: None,
                    params: Map::new(),
                    settings: Map::new(),
                },
            )]
        } else {
            group
                .placements
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let group_index = plan.groups.len();
        let mut members = Vec::new();
        for (pname, placement) in &placements {
            let ppath = format!("{path}.placements.{pname}");
            let instances = match placement.instances.or(group.instances) {
                Some(0) => {
                    errors.push(ConfigError::new(
                        format!("{ppath}.instances"),
                        "instances must be at least 1",
                    ));
                    continue;
                }
                Some(n) => n,
                None => {
                    errors.push(ConfigError::new(
                        format!("{ppath}.instances"),
                        "instances is not set (set it on the placement or on the group)",
                    ));
                    continue;
                }
            };
            let Some(transport) = registry.get(&placement.transport) else {
                errors.push(ConfigError::new(
                    format!("{ppath}.transport"),
                    format!(
                        "unknown transport `{}` (available: {})",
                        placement.transport,
                        registry.names().join(", ")
                    ),
                ));
                continue;
            };
            let pref = PlacementRef {
                group: name,
                name: pname,
                instances,
                settings: &placement.settings,
            };
            let targets = match transport.plan(&pref) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let settings = Arc::new(placement.settings.clone());
            let mut params = group.params.clone();
            params.extend(placement.params.clone());
            let params = Arc::new(params);
            let pname: Arc<str> = Arc::from(pname.as_str());
            let tname: Arc<str> = Arc::from(placement.transport.as_str());
            for target in targets {
                let target = Arc::new(target);
                for _ in 0..target.instances {
                    members.push(PlannedInstance {
                        id: 0,
                        group_index,
                        group_id: 0,
                        placement: pname.clone(),
                        transport: tname.clone(),
                        target: target.clone(),
                        settings: settings.clone(),
                        params: params.clone(),
                    });
                }
            }
        }
        let count = members.len() as u64;
        for (i, mut m) in members.into_iter().enumerate() {
            m.id = next_id;
            m.group_id = i as u64 + 1;
            next_id += 1;
            plan.instances.push(m);
        }
        plan.groups.push(PlannedGroup {
            name: Arc::from(name.as_str()),
            config: Arc::new(group.clone()),
            argv: Arc::new(argv),
            count,
        });
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn validate_group(path: &str, group: &GroupConfig, errors: &mut Vec<ConfigError>) {
    if let Some(p) = group.priority {
        if !(-20..=19).contains(&p) {
            errors.push(ConfigError::new(
                format!("{path}.priority"),
                format!("priority {p} is out of range (a nice value from -20 to 19)"),
            ));
        }
    }
    let b = &group.backoff;
    if !(b.factor >= 1.0 && b.factor.is_finite()) {
        errors.push(ConfigError::new(
            format!("{path}.backoff.factor"),
            format!("factor {} must be a number of at least 1", b.factor),
        ));
    }
    if !(0.0..=1.0).contains(&b.jitter) {
        errors.push(ConfigError::new(
            format!("{path}.backoff.jitter"),
            format!("jitter {} must be between 0 and 1", b.jitter),
        ));
    }
    if b.initial.0 > b.max.0 {
        errors.push(ConfigError::new(
            format!("{path}.backoff"),
            format!("initial ({}) is larger than max ({})", b.initial, b.max),
        ));
    }
    for (key, value) in &group.env {
        if let Err(message) = crate::config::check_env_var(key, value) {
            errors.push(ConfigError::new(format!("{path}.env"), message));
        }
    }
}
