//! The control engine: lives in the launcher's loop, owns the run's dynamic set of
//! instance tasks (the launcher spawns the first ones, the engine the later ones),
//! and carries out [`Command`]s. Its answers are immediate; what takes time
//! (instances ending) is waited for by the [`super::Control`] that asked.

use super::hub::Hub;
use super::state::{InstanceState, Member};
use super::{Command, Control, ControlError, Selector, Waiting};
use crate::config::{Config, LauncherConfig};
use crate::launcher::instance_spec;
use crate::plan::{PlannedGroup, PlannedInstance};
use crate::registry::TransportRegistry;
use crate::report::InstanceReport;
use crate::sink::EventTx;
use crate::supervisor::activity::RunClock;
use crate::supervisor::control::{ControlState, Order};
use crate::supervisor::task::InstanceTask;
use crate::supervisor::StopHandle;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// Commands waiting for the loop.
const COMMAND_QUEUE: usize = 64;

/// What happens when a member's task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    /// Nothing: it stays listed as ended.
    Stay,
    /// It is forgotten (scaled down, group removed).
    Remove,
    /// It is kept stopped until `resume`.
    Suspend,
    /// It is started again, same id.
    Restart,
}

/// One instance the engine knows, running or not.
pub(super) struct MemberRt {
    pub(super) planned: PlannedInstance,
    pub(super) group: Arc<str>,
    pub(super) order: watch::Sender<ControlState>,
    pub(super) alive: bool,
    pub(super) after: After,
    pub(super) waiters: Vec<oneshot::Sender<()>>,
    pub(super) restarts: u32,
}

/// One group as it runs now.
pub(super) struct GroupRt {
    pub(super) planned: PlannedGroup,
    pub(super) count: watch::Sender<u64>,
    pub(super) suspended: bool,
    /// Placement name → its planned instances (transport, prepared settings,
    /// targets), templates for new instances.
    pub(super) placements: BTreeMap<Arc<str>, Vec<PlannedInstance>>,
}

/// What the engine needs from the launcher to start instances.
pub(crate) struct EngineParts {
    pub(crate) run_id: String,
    pub(crate) launcher: LauncherConfig,
    pub(crate) registry: TransportRegistry,
    pub(crate) events: EventTx,
    pub(crate) clock: Arc<RunClock>,
    /// Every group's progress, for readiness and `depends_on`.
    pub(crate) progress: crate::supervisor::progress::RunProgress,
    /// The job pools, by group name.
    pub(crate) pools: BTreeMap<Arc<str>, crate::jobs::PoolHandle>,
    /// The run's turns to start.
    pub(crate) turns: crate::supervisor::turns::StartTurns,
}

/// See the module documentation.
pub(crate) struct Engine {
    pub(super) hub: Arc<Hub>,
    commands: mpsc::Receiver<Command>,
    pub(super) parts: EngineParts,
    pub(super) groups: BTreeMap<Arc<str>, GroupRt>,
    pub(super) members: BTreeMap<u64, MemberRt>,
    pub(super) next_id: u64,
    pub(super) global: ControlState,
    /// The configuration as last applied (for reload diffs).
    pub(super) config: Config,
    /// The output settings a reload applies at once.
    pub(super) live: crate::LiveOutput,
}

impl Engine {
    /// The [`Control`] of a run about to be built, and the receiving end of its
    /// commands (for [`Engine::new`]).
    pub(crate) fn channel(
        config: &Config,
        stop: StopHandle,
        run_id: &str,
    ) -> (Control, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let control = Control {
            hub: Arc::new(Hub::new(config.launcher.control.log_buffer)),
            commands: tx,
            stop,
            run_id: Arc::from(run_id),
            rolling_delay: config.launcher.control.rolling_delay.0,
            live: crate::LiveOutput::new(crate::OutputSettings::of(&config.launcher)),
        };
        (control, rx)
    }

    /// The engine of the planned run.
    pub(crate) fn new(
        config: &Config,
        plan: &crate::plan::Plan,
        control: &Control,
        commands: mpsc::Receiver<Command>,
        parts: EngineParts,
    ) -> Engine {
        let mut engine = Engine {
            hub: control.hub.clone(),
            commands,
            parts,
            groups: BTreeMap::new(),
            members: BTreeMap::new(),
            next_id: 1,
            global: control.stop.state(),
            config: config.clone(),
            live: control.live.clone(),
        };
        for group in &plan.groups {
            engine.add_group(group.clone(), Vec::new());
        }
        for inst in &plan.instances {
            let group = plan.group_of(inst).name.clone();
            if let Some(g) = engine.groups.get_mut(&group) {
                g.placements
                    .entry(inst.placement.clone())
                    .or_default()
                    .push(inst.clone());
            }
            engine.add_member(group, inst.clone());
        }
        engine
    }

    pub(super) fn add_group(&mut self, planned: PlannedGroup, instances: Vec<PlannedInstance>) {
        self.parts
            .progress
            .add_group(planned.name.clone(), planned.count);
        let (count, _) = watch::channel(planned.count);
        let mut placements: BTreeMap<Arc<str>, Vec<PlannedInstance>> = BTreeMap::new();
        for i in instances {
            placements.entry(i.placement.clone()).or_default().push(i);
        }
        self.groups.insert(
            planned.name.clone(),
            GroupRt {
                planned,
                count,
                suspended: false,
                placements,
            },
        );
    }

    pub(super) fn add_member(&mut self, group: Arc<str>, planned: PlannedInstance) {
        let (order, _) = watch::channel(ControlState {
            order: Order::Run,
            reason: None,
        });
        let count = self.groups.get(&group).map_or(0, |g| g.planned.count);
        self.hub.instances(|i| {
            i.add(
                Member {
                    id: planned.id,
                    group: group.to_string(),
                    group_id: planned.group_id,
                    group_count: count,
                    placement: planned.placement.to_string(),
                    transport: planned.transport.to_string(),
                    host: planned.target.host.clone(),
                },
                0,
            )
        });
        self.next_id = self.next_id.max(planned.id + 1);
        self.members.insert(
            planned.id,
            MemberRt {
                planned,
                group,
                order,
                alive: false,
                after: After::Stay,
                waiters: Vec::new(),
                restarts: 0,
            },
        );
    }

    /// Hook for the launcher: the order channel of instance `id`, whose task the
    /// launcher is starting now.
    pub(crate) fn member_started(&mut self, id: u64) -> watch::Receiver<ControlState> {
        match self.members.get_mut(&id) {
            Some(m) => {
                m.alive = true;
                m.order.subscribe()
            }
            None => watch::channel(self.global).1,
        }
    }

    /// Hook for the launcher: the group-count channel of a group.
    pub(crate) fn group_count(&self, group: &str) -> watch::Receiver<u64> {
        match self.groups.get(group) {
            Some(g) => g.count.subscribe(),
            None => watch::channel(0).1,
        }
    }

    /// Starts the task of member `id` (not running now).
    pub(super) fn spawn(&mut self, id: u64, tasks: &mut JoinSet<InstanceReport>) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let Some(g) = self.groups.get(&m.group) else {
            return;
        };
        let Some(transport) = self.parts.registry.get(&m.planned.transport).cloned() else {
            return;
        };
        // `send_replace`: the old task's receiver is gone, and `send` would not
        // store the value without receivers.
        m.order.send_replace(ControlState {
            order: self.global.order,
            reason: self.global.reason,
        });
        m.alive = true;
        m.after = After::Stay;
        let (template, ready_log) = crate::launcher::task_strings(&g.planned, &m.planned, None);
        let mut spec = instance_spec(
            &self.parts.run_id,
            &self.parts.launcher,
            &g.planned,
            &m.planned,
        );
        // A start by a command (restart, resume) counts on: DISTARCH_RESTART, the
        // label and the container or pod name say how many starts came before.
        spec.restart = m.restarts;
        let task = InstanceTask {
            template,
            progress: self.parts.progress.clone(),
            ready_log,
            spec,
            transport,
            group: g.planned.config.clone(),
            group_name: g.planned.name.clone(),
            host: Arc::from(m.planned.target.host.as_str()),
            events: self.parts.events.clone(),
            control: m.order.subscribe(),
            clock: self.parts.clock.clone(),
            max_line: self.parts.launcher.max_line_bytes,
            group_count: g.count.subscribe(),
            jobs: self.parts.pools.get(&g.planned.name).cloned(),
            turns: self.parts.turns.clone(),
        };
        self.hub
            .instances(|i| i.set_state(id, InstanceState::Pending));
        tasks.spawn(task.run());
    }

    /// Starts member `id` (ended) again as its next restart: a restart or resume
    /// by a command counts like one by the policy.
    pub(super) fn start_again(&mut self, id: u64, tasks: &mut JoinSet<InstanceReport>) {
        if let Some(m) = self.members.get_mut(&id) {
            m.restarts += 1;
            let restarts = m.restarts;
            self.hub.instances(|i| i.bump_restarts(id, restarts));
        }
        self.spawn(id, tasks);
    }

    /// Asks member `id` to stop; `after` says what then. Returns a receiver that
    /// fires once its task has ended (at once when it is not running).
    pub(super) fn stop_member(
        &mut self,
        id: u64,
        after: After,
        tasks: &mut JoinSet<InstanceReport>,
    ) -> Option<oneshot::Receiver<()>> {
        let m = self.members.get_mut(&id)?;
        let (tx, rx) = oneshot::channel();
        if m.alive {
            m.after = after;
            m.waiters.push(tx);
            m.order.send_modify(|s| {
                if s.order < Order::Stop {
                    s.order = Order::Stop;
                }
            });
            self.hub
                .instances(|i| i.set_state(id, InstanceState::Stopping));
        } else {
            let _ = tx.send(());
            self.after_end(id, after, tasks);
        }
        Some(rx)
    }

    /// Hook for the launcher: a task ended. Returns the report to keep.
    pub(crate) fn task_ended(
        &mut self,
        report: InstanceReport,
        tasks: &mut JoinSet<InstanceReport>,
    ) -> InstanceReport {
        let id = report.id;
        if let Some(m) = self.members.get_mut(&id) {
            m.alive = false;
            // The task counts on from the restarts it was started with.
            m.restarts = m.restarts.max(report.restarts);
            for w in m.waiters.drain(..) {
                let _ = w.send(());
            }
            let after = std::mem::replace(&mut m.after, After::Stay);
            self.after_end(id, after, tasks);
        }
        report
    }

    pub(super) fn after_end(&mut self, id: u64, after: After, tasks: &mut JoinSet<InstanceReport>) {
        if let Some(m) = self.members.get_mut(&id) {
            m.after = After::Stay;
        }
        match after {
            After::Stay => {}
            After::Remove => {
                self.members.remove(&id);
                self.hub.instances(|i| i.remove(id));
                self.hub.forget_logs(id);
            }
            After::Suspend => {
                if let Some(m) = self.members.get_mut(&id) {
                    m.after = After::Suspend;
                }
                self.hub
                    .instances(|i| i.set_state(id, InstanceState::Suspended));
            }
            After::Restart if self.global.order == Order::Run => self.start_again(id, tasks),
            After::Restart => {}
        }
    }

    /// Hook for the launcher: the run-wide order changed (stop, terminate, kill).
    pub(crate) fn global_order(&mut self, state: ControlState) {
        self.global = state;
        for m in self.members.values() {
            m.order.send_modify(|s| {
                if state.order > s.order {
                    s.order = state.order;
                    s.reason = state.reason;
                }
            });
        }
    }

    /// Hook for the launcher: true while the run must go on although no task runs
    /// (service mode, suspended groups), until it is told to stop.
    pub(crate) fn holds_run(&self) -> bool {
        self.global.order == Order::Run
            && (self.parts.launcher.service
                || self.members.values().any(|m| m.after == After::Suspend))
    }

    /// Hook for the launcher: the next command.
    pub(crate) async fn next_command(&mut self) -> Command {
        match self.commands.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    /// Hook for the launcher: carries out a command.
    pub(crate) fn apply(&mut self, command: Command, tasks: &mut JoinSet<InstanceReport>) {
        let stopping = self.global.order != Order::Run;
        macro_rules! answer {
            ($reply:expr, $result:expr) => {{
                let _ = $reply.send(if stopping {
                    Err(ControlError::Stopping)
                } else {
                    $result
                });
            }};
        }
        match command {
            Command::Stop(sel, reply) => answer!(reply, self.cmd_stop(&sel, tasks)),
            Command::Suspend(groups, reply) => answer!(reply, self.cmd_suspend(&groups, tasks)),
            Command::Resume(groups, reply) => answer!(reply, self.cmd_resume(&groups, tasks)),
            Command::Scale {
                group,
                placement,
                count,
                reply,
            } => answer!(
                reply,
                self.cmd_scale(&group, placement.as_deref(), count, tasks)
            ),
            Command::Restart(sel, reply) => answer!(reply, self.cmd_restart(&sel, tasks)),
            Command::Resolve(sel, reply) => answer!(reply, self.resolve(&sel)),
            Command::Reload(config, reply) => answer!(reply, self.cmd_reload(*config, tasks)),
        }
    }

    /// The ids `selectors` name (every member when empty), in id order.
    pub(super) fn resolve(&self, selectors: &[Selector]) -> Result<Vec<u64>, ControlError> {
        if selectors.is_empty() {
            return Ok(self.members.keys().copied().collect());
        }
        let mut ids = Vec::new();
        for s in selectors {
            match s {
                Selector::Id(id) if self.members.contains_key(id) => ids.push(*id),
                Selector::Id(id) => {
                    return Err(ControlError::NotFound(format!("no instance with id {id}")))
                }
                Selector::Group(g) => {
                    self.known_group(g)?;
                    ids.extend(
                        self.members
                            .iter()
                            .filter(|(_, m)| *m.group == **g)
                            .map(|(id, _)| *id),
                    );
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    pub(super) fn known_group(&self, name: &str) -> Result<(), ControlError> {
        if self.groups.contains_key(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.groups.keys().map(|k| &**k).collect();
        Err(ControlError::NotFound(format!(
            "no group `{name}` in this run (groups: {})",
            known.join(", ")
        )))
    }

    fn cmd_stop(
        &mut self,
        selectors: &[Selector],
        tasks: &mut JoinSet<InstanceReport>,
    ) -> Result<Waiting, ControlError> {
        let ids = self.resolve(selectors)?;
        let mut ended = Vec::new();
        for &id in &ids {
            let suspended = self
                .members
                .get(&id)
                .is_some_and(|m| m.after == After::Suspend);
            if let Some(rx) = self.stop_member(id, After::Stay, tasks) {
                ended.push(rx);
            }
            if suspended {
                self.hub
                    .instances(|i| i.set_state(id, InstanceState::Ended));
            }
        }
        Ok(Waiting { ids, ended })
    }

    fn cmd_restart(
        &mut self,
        selectors: &[Selector],
        tasks: &mut JoinSet<InstanceReport>,
    ) -> Result<Waiting, ControlError> {
        let ids = self.resolve(selectors)?;
        let mut ended = Vec::new();
        for &id in &ids {
            if let Some(rx) = self.stop_member(id, After::Restart, tasks) {
                ended.push(rx);
            }
        }
        Ok(Waiting { ids, ended })
    }
}

/// The last report of each id (an instance restarted by a command reports again).
pub(crate) fn last_reports(reports: Vec<InstanceReport>) -> Vec<InstanceReport> {
    let mut by_id: BTreeMap<u64, InstanceReport> = BTreeMap::new();
    for r in reports {
        by_id.insert(r.id, r);
    }
    by_id.into_values().collect()
}
