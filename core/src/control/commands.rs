//! The engine's commands that change the set of instances: suspend, resume, scale
//! and reload.

use super::engine::{After, Engine};
use super::launcher_diff::LauncherChanges;
use super::state::InstanceState;
use super::{ControlError, ReloadOutcome, ScaleOutcome, Waiting};
use crate::config::Config;
use crate::plan::{build_plan, PlannedInstance};
use crate::report::InstanceReport;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;

impl Engine {
    pub(super) fn cmd_suspend(
        &mut self,
        groups: &[String],
        tasks: &mut JoinSet<InstanceReport>,
    ) -> Result<Waiting, ControlError> {
        for g in groups {
            self.known_group(g)?;
        }
        let mut waiting = Waiting {
            ids: Vec::new(),
            ended: Vec::new(),
        };
        for g in groups {
            if let Some(rt) = self.groups.get_mut(g.as_str()) {
                rt.suspended = true;
            }
            let live: Vec<u64> = self
                .members
                .iter()
                .filter(|(_, m)| *m.group == **g && m.alive && m.after != After::Remove)
                .map(|(id, _)| *id)
                .collect();
            for id in live {
                if let Some(rx) = self.stop_member(id, After::Suspend, tasks) {
                    waiting.ids.push(id);
                    waiting.ended.push(rx);
                }
            }
        }
        Ok(waiting)
    }

    pub(super) fn cmd_resume(
        &mut self,
        groups: &[String],
        tasks: &mut JoinSet<InstanceReport>,
    ) -> Result<Vec<u64>, ControlError> {
        for g in groups {
            self.known_group(g)?;
        }
        let mut ids = Vec::new();
        for g in groups {
            if let Some(rt) = self.groups.get_mut(g.as_str()) {
                rt.suspended = false;
            }
            let suspended: Vec<(u64, bool)> = self
                .members
                .iter()
                .filter(|(_, m)| *m.group == **g && m.after == After::Suspend)
                .map(|(id, m)| (*id, m.alive))
                .collect();
            for (id, alive) in suspended {
                ids.push(id);
                if alive {
                    // Still stopping: start it again once it has ended.
                    if let Some(m) = self.members.get_mut(&id) {
                        m.after = After::Restart;
                    }
                } else {
                    self.start_again(id, tasks);
                }
            }
        }
        Ok(ids)
    }

    /// Members of `group` (optionally of one placement) that stay in it, by group id.
    fn staying(&self, group: &str, placement: Option<&str>) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .members
            .iter()
            .filter(|(_, m)| {
                *m.group == *group
                    && m.after != After::Remove
                    && placement.is_none_or(|p| *m.planned.placement == *p)
            })
            .map(|(id, m)| (m.planned.group_id, *id))
            .collect();
        out.sort_unstable();
        out
    }

    /// Sends the group's member count to its instances and to `ps`.
    fn publish_count(&mut self, group: &str) -> u64 {
        let count = self.staying(group, None).len() as u64;
        if let Some(rt) = self.groups.get_mut(group) {
            rt.planned.count = count;
            rt.count
                .send_if_modified(|c| std::mem::replace(c, count) != count);
        }
        self.hub.instances(|i| i.set_group_count(group, count));
        count
    }

    /// A new member of `group` like `template`, on the least used of the placement's
    /// targets, with the next id and group id. Not started.
    fn new_member(&mut self, group: &Arc<str>, placement: &Arc<str>) -> Option<u64> {
        let templates = self.groups.get(group)?.placements.get(placement)?.clone();
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &templates {
            load.entry(t.target.address.as_str()).or_insert(0);
        }
        for m in self.members.values() {
            if m.group == *group && m.planned.placement == *placement && m.after != After::Remove {
                if let Some(n) = load.get_mut(m.planned.target.address.as_str()) {
                    *n += 1;
                }
            }
        }
        let target = templates
            .iter()
            .min_by_key(|t| load.get(t.target.address.as_str()).copied().unwrap_or(0))?;
        let group_id = self
            .staying(group, None)
            .last()
            .map_or(1, |(gid, _)| gid + 1);
        let id = self.next_id;
        let planned = PlannedInstance {
            id,
            group_id,
            ..target.clone()
        };
        self.add_member(group.clone(), planned);
        Some(id)
    }

    /// Starts new members, or keeps them suspended with their group.
    fn start_new(&mut self, ids: &[u64], tasks: &mut JoinSet<InstanceReport>) {
        for &id in ids {
            let suspended = self
                .members
                .get(&id)
                .and_then(|m| self.groups.get(&m.group))
                .is_some_and(|g| g.suspended);
            if suspended {
                if let Some(m) = self.members.get_mut(&id) {
                    m.after = After::Suspend;
                }
                self.hub
                    .instances(|i| i.set_state(id, InstanceState::Suspended));
            } else {
                self.spawn(id, tasks);
            }
        }
    }

    pub(super) fn cmd_scale(
        &mut self,
        group: &str,
        placement: Option<&str>,
        count: u64,
        tasks: &mut JoinSet<InstanceReport>,
    ) -> Result<(ScaleOutcome, Waiting), ControlError> {
        self.known_group(group)?;
        let Some((gname, rt)) = self.groups.get_key_value(group) else {
            return Err(ControlError::NotFound(format!("no group `{group}`")));
        };
        let gname = gname.clone();
        let names: Vec<Arc<str>> = rt.placements.keys().cloned().collect();
        let placement: Arc<str> = match placement {
            Some(p) => names.iter().find(|n| ***n == *p).cloned().ok_or_else(|| {
                ControlError::NotFound(format!(
                    "group `{group}` has no placement `{p}` (placements: {})",
                    names.join(", ")
                ))
            })?,
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(ControlError::Invalid(format!(
                "group `{group}` has several placements ({}); say which, e.g. {group}.{}={count}",
                names.join(", "),
                names.first().map_or("PLACEMENT", |n| &**n)
            )))
            }
        };
        let current = self.staying(group, Some(&placement));
        let mut outcome = ScaleOutcome::default();
        let mut waiting = Waiting {
            ids: Vec::new(),
            ended: Vec::new(),
        };
        let wanted = count as usize;
        if wanted < current.len() {
            for &(_, id) in current[wanted..].iter().rev() {
                if let Some(rx) = self.stop_member(id, After::Remove, tasks) {
                    waiting.ids.push(id);
                    waiting.ended.push(rx);
                }
                outcome.removed.push(id);
            }
        }
        for _ in current.len()..wanted {
            if let Some(id) = self.new_member(&gname, &placement) {
                outcome.added.push(id);
            }
        }
        outcome.count = self.publish_count(group);
        self.start_new(&outcome.added.clone(), tasks);
        Ok((outcome, waiting))
    }

    pub(super) fn cmd_reload(
        &mut self,
        mut config: Config,
        tasks: &mut JoinSet<InstanceReport>,
    ) -> Result<(ReloadOutcome, Vec<u64>, Waiting), ControlError> {
        crate::launcher::apply_service_defaults(&mut config);
        let plan = build_plan(&config, &self.parts.registry, &[]).map_err(|errors| {
            let lines: Vec<String> = errors.0.iter().map(|e| format!("  {e}")).collect();
            ControlError::Config(lines.join("\n"))
        })?;
        let mut outcome = ReloadOutcome::default();
        let launcher = LauncherChanges::between(&self.parts.launcher, &config.launcher);
        outcome.notes = launcher.notes();
        let old_launcher = self.parts.launcher.clone();
        LauncherChanges::apply(&mut self.parts.launcher, &config.launcher);
        self.live
            .set(crate::OutputSettings::of(&self.parts.launcher));
        let new_launcher = self.parts.launcher.clone();
        let mut waiting = Waiting {
            ids: Vec::new(),
            ended: Vec::new(),
        };
        let mut roll = Vec::new();
        let mut fresh = Vec::new();
        // Removed groups.
        let gone: Vec<Arc<str>> = self
            .groups
            .keys()
            .filter(|k| !plan.groups.iter().any(|g| g.name == **k))
            .cloned()
            .collect();
        for name in gone {
            let ids: Vec<u64> = self
                .staying(&name, None)
                .iter()
                .map(|(_, id)| *id)
                .collect();
            for id in ids {
                if let Some(rx) = self.stop_member(id, After::Remove, tasks) {
                    waiting.ids.push(id);
                    waiting.ended.push(rx);
                }
            }
            self.groups.remove(&name);
            outcome.removed.push(name.to_string());
        }
        for (index, group) in plan.groups.iter().enumerate() {
            let instances: Vec<PlannedInstance> = plan
                .instances
                .iter()
                .filter(|i| i.group_index == index)
                .cloned()
                .collect();
            let name = group.name.clone();
            let Some(old) = self.groups.get_mut(&name) else {
                self.add_group(group.clone(), instances.clone());
                for mut inst in instances {
                    inst.id = self.next_id;
                    fresh.push(inst.id);
                    self.add_member(name.clone(), inst);
                }
                outcome.added.push(name.to_string());
                continue;
            };
            if old.planned.config == group.config
                && old.planned.argv == group.argv
                && !LauncherChanges::affects(&old_launcher, &new_launcher, &group.config)
            {
                outcome.unchanged.push(name.to_string());
                continue;
            }
            outcome.changed.push(name.to_string());
            old.planned.config = group.config.clone();
            old.planned.argv = group.argv.clone();
            let mut placements: BTreeMap<Arc<str>, Vec<PlannedInstance>> = BTreeMap::new();
            for i in &instances {
                placements
                    .entry(i.placement.clone())
                    .or_default()
                    .push(i.clone());
            }
            old.placements = placements;
            let existing = self.staying(&name, None);
            for (k, inst) in instances.into_iter().enumerate() {
                match existing.get(k) {
                    Some(&(group_id, id)) => {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.planned = PlannedInstance {
                                id,
                                group_id,
                                ..inst
                            };
                            let p = &m.planned;
                            self.hub.instances(|i| {
                                i.move_member(id, &p.placement, &p.transport, &p.target.host)
                            });
                            if m.alive {
                                roll.push(id);
                            }
                        }
                    }
                    None => {
                        let group_id = existing.last().map_or(0, |(g, _)| *g)
                            + 1
                            + (k - existing.len()) as u64;
                        let id = self.next_id;
                        self.add_member(
                            name.clone(),
                            PlannedInstance {
                                id,
                                group_id,
                                ..inst
                            },
                        );
                        fresh.push(id);
                    }
                }
            }
            let keep = plan
                .instances
                .iter()
                .filter(|i| i.group_index == index)
                .count();
            for &(_, id) in existing.iter().skip(keep) {
                if let Some(rx) = self.stop_member(id, After::Remove, tasks) {
                    waiting.ids.push(id);
                    waiting.ended.push(rx);
                }
            }
            self.publish_count(&name);
        }
        self.config = config;
        self.start_new(&fresh, tasks);
        Ok((outcome, roll, waiting))
    }
}
