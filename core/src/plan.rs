//! The placement plan: which instance ids go where, computed and checked before
//! anything starts.

use crate::config::messages::unknown_key;
use crate::config::{Config, GroupConfig, PlacementConfig};
use crate::error::{ConfigError, ConfigErrors};
use crate::registry::TransportRegistry;
use crate::transport::{PlacementRef, Prepared, Target, Transport};
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
    /// The placement's settings as its transport prepared them.
    pub prepared: Prepared,
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

/// Most instances one run may plan unless raised ([`build_plan_limited`]; the
/// `distarch` command's `--max-instances` / `DISTARCH_MAX_INSTANCES`). A guard
/// against typos such as `instances = 1000000000`, which would otherwise take all
/// the machine's memory before anything is printed.
pub const DEFAULT_MAX_INSTANCES: u64 = 100_000;

/// Longest single argument or environment entry (`KEY=value`) Linux accepts in an
/// exec (MAX_ARG_STRLEN, 32 pages of 4 KiB).
pub const MAX_ARG_BYTES: usize = 128 * 1024;

/// Budget for the command line and environment of one instance together: Linux's
/// ARG_MAX is a quarter of the stack limit, 2 MiB with the usual 8 MiB stack.
pub const MAX_EXEC_BYTES: usize = 2 * 1024 * 1024;

/// The keys every placement accepts besides its transport's own settings.
pub const PLACEMENT_KEYS: &[&str] = &["transport", "instances", "params"];

/// Checks the configuration against the registered transports and gives out ids:
/// groups by (`order`, name), placements by name, targets in the transport's order.
/// `only` restricts the run to the named groups (ids are given out among them).
/// Every problem found is reported, each with its key path.
pub fn build_plan(
    config: &Config,
    registry: &TransportRegistry,
    only: &[String],
) -> Result<Plan, ConfigErrors> {
    build_plan_limited(config, registry, only, DEFAULT_MAX_INSTANCES)
}

/// [`build_plan`] with another bound than [`DEFAULT_MAX_INSTANCES`] on the number of
/// instances: a plan above it is an error found before the instances are listed.
pub fn build_plan_limited(
    config: &Config,
    registry: &TransportRegistry,
    only: &[String],
    max_instances: u64,
) -> Result<Plan, ConfigErrors> {
    let mut errors = Vec::new();
    if config.launcher.max_line_bytes == 0 {
        errors.push(ConfigError::new(
            "launcher.max_line_bytes",
            "must be at least 1 (it is the longest line read from a worker, in bytes)",
        ));
    }
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
    // Instances planned so far; once over the bound, nothing more is listed.
    let mut total = 0u64;
    let mut over_limit = false;
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
        check_exec_size(&path, group, &argv, &mut errors);
        let implicit = group.placements.is_empty();
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
            // Where `instances` is read from: the placement, else the group (the
            // only place when the group lists no placements).
            let ipath = if implicit || placement.instances.is_none() {
                format!("{path}.instances")
            } else {
                format!("{ppath}.instances")
            };
            let transport = registry.get(&placement.transport);
            if let Some(t) = transport {
                if let Some(keys) = t.settings_keys() {
                    if check_placement_keys(
                        &ppath,
                        &placement.transport,
                        placement,
                        keys,
                        &mut errors,
                    ) {
                        continue;
                    }
                }
            }
            let instances = match placement.instances.or(group.instances) {
                Some(0) => {
                    errors.push(ConfigError::new(ipath, "instances must be at least 1"));
                    continue;
                }
                Some(n) => n,
                None => {
                    let placement_text = if implicit {
                        "on the group (it has no placements, so it runs local processes)"
                    } else {
                        "on the placement or on the group"
                    };
                    let mut e = ConfigError::new(
                        format!("{ppath}.instances"),
                        format!("instances is not set (set it {placement_text})"),
                    );
                    if implicit {
                        e.path = ipath;
                    }
                    // A misspelt `instances` in the settings says more than "not set".
                    if let Some(t) = transport {
                        let probe = PlacementRef {
                            group: name,
                            name: pname,
                            instances: 1,
                            settings: &placement.settings,
                        };
                        if let Err(te) = t.plan(&probe) {
                            let better: Vec<ConfigError> =
                                te.0.iter()
                                    .filter_map(|e| {
                                        reword_unknown_key(e, &placement.transport, t.as_ref())
                                    })
                                    .collect();
                            if !better.is_empty() {
                                errors.extend(better);
                                continue;
                            }
                        }
                    }
                    errors.push(e);
                    continue;
                }
            };
            let Some(transport) = transport else {
                errors.push(ConfigError::new(
                    format!("{ppath}.transport"),
                    match registry.unresolved(&placement.transport) {
                        Some(why) => why.to_string(),
                        None => format!(
                            "unknown transport `{}` (available: {})",
                            placement.transport,
                            registry.names().join(", ")
                        ),
                    },
                ));
                continue;
            };
            let pref = PlacementRef {
                group: name,
                name: pname,
                instances,
                settings: &placement.settings,
            };
            let placement_plan = match transport.plan(&pref) {
                Ok(p) => p,
                Err(e) => {
                    errors.extend(e.0.into_iter().map(|e| {
                        reword_unknown_key(&e, &placement.transport, transport.as_ref())
                            .unwrap_or(e)
                    }));
                    continue;
                }
            };
            let (targets, prepared) = (placement_plan.targets, placement_plan.prepared);
            let planned: u64 = targets.iter().map(|t| u64::from(t.instances)).sum();
            total = total.saturating_add(planned);
            if total > max_instances {
                if !over_limit {
                    errors.push(ConfigError::new(
                        ipath,
                        format!(
                            "this run would have more than {max_instances} instances \
                             ({total} so far); that is the limit of one run: lower \
                             `instances`, or raise the limit (distarch --max-instances)"
                        ),
                    ));
                }
                over_limit = true;
            }
            if over_limit {
                continue;
            }
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
                        prepared: prepared.clone(),
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
    ConfigErrors::or_value(errors, plan)
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
    if let Some(jobs) = &group.jobs {
        jobs.validate(&format!("{path}.jobs"), errors);
    }
}

/// Checks the settings keys of a placement against what its transport declares;
/// true when an unknown key was reported.
fn check_placement_keys(
    ppath: &str,
    transport: &str,
    placement: &PlacementConfig,
    keys: &[&str],
    errors: &mut Vec<ConfigError>,
) -> bool {
    let known: Vec<&str> = PLACEMENT_KEYS.iter().chain(keys).copied().collect();
    let mut found = false;
    for key in placement.settings.keys() {
        if !known.contains(&key.as_str()) {
            let what = format!("a placement with transport `{transport}`");
            errors.push(ConfigError::new(ppath, unknown_key(key, &what, &known)));
            found = true;
        }
    }
    found
}

/// A transport's "unknown field" error (serde's wording, listing only the
/// transport's own keys) said again with every key the placement accepts and the
/// closest one. `None` when the error is about something else.
fn reword_unknown_key(
    error: &ConfigError,
    transport_name: &str,
    transport: &dyn Transport,
) -> Option<ConfigError> {
    let rest = error.message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let declared: Vec<String> = match transport.settings_keys() {
        Some(keys) => keys.iter().map(|k| k.to_string()).collect(),
        None => rest
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    };
    let known: Vec<&str> = PLACEMENT_KEYS
        .iter()
        .copied()
        .chain(declared.iter().map(String::as_str))
        .collect();
    let what = format!("a placement with transport `{transport_name}`");
    Some(ConfigError {
        path: error.path.clone(),
        message: unknown_key(field, &what, &known),
        origin: error.origin.clone(),
    })
}

/// Checks that the command, the environment and `DISTARCH_PARAMS` fit in what one
/// exec accepts ([`MAX_ARG_BYTES`] each, [`MAX_EXEC_BYTES`] together), so that
/// `validate` rejects what would fail every instance at start.
fn check_exec_size(
    path: &str,
    group: &GroupConfig,
    argv: &[String],
    errors: &mut Vec<ConfigError>,
) {
    let params = serde_json::to_string(&group.params).unwrap_or_default();
    let params_entry = "DISTARCH_PARAMS=".len() + params.len();
    if params_entry >= MAX_ARG_BYTES {
        errors.push(ConfigError::new(
            format!("{path}.params"),
            format!(
                "params are {} bytes as JSON; an environment variable holds at most {} \
                 (pass large data as a file instead)",
                params.len(),
                MAX_ARG_BYTES - 1 - "DISTARCH_PARAMS=".len()
            ),
        ));
    }
    for (i, arg) in argv.iter().enumerate() {
        if arg.len() >= MAX_ARG_BYTES {
            errors.push(ConfigError::new(
                format!("{path}.command"),
                format!(
                    "argument {i} is {} bytes; one argument holds at most {}",
                    arg.len(),
                    MAX_ARG_BYTES - 1
                ),
            ));
        }
        if arg.contains('\0') {
            errors.push(ConfigError::new(
                format!("{path}.command"),
                format!("argument {i} holds a NUL byte, which no argument can carry"),
            ));
        }
    }
    for (key, value) in &group.env {
        let entry = key.len() + 1 + value.len();
        if entry >= MAX_ARG_BYTES {
            errors.push(ConfigError::new(
                format!("{path}.env.{key}"),
                format!(
                    "`{key}=...` is {entry} bytes; one environment entry holds at most {}",
                    MAX_ARG_BYTES - 1
                ),
            ));
        }
    }
    // Each string also costs its NUL and a pointer.
    let cost = |len: usize| len + 1 + std::mem::size_of::<usize>();
    let total: usize = argv.iter().map(|a| cost(a.len())).sum::<usize>()
        + group
            .env
            .iter()
            .map(|(k, v)| cost(k.len() + 1 + v.len()))
            .sum::<usize>()
        + cost(params_entry);
    if total >= MAX_EXEC_BYTES {
        errors.push(ConfigError::new(
            path,
            format!(
                "command, env and params together are {total} bytes; one program start \
                 accepts at most {MAX_EXEC_BYTES} (Linux ARG_MAX)"
            ),
        ));
    }
}
