//! The [`Launcher`]: builds the plan, starts one task per instance, enforces the
//! launcher-wide limits and signals, and returns a [`RunReport`].

use crate::config::ReadyRule;
use crate::config::{Config, GroupConfig, LauncherConfig, RestartPolicy};
use crate::control::{Command, Control, Engine, EngineParts, Tap};
use crate::error::ConfigErrors;
use crate::events::{Event, LogRecord, StopReason};
use crate::plan::{build_plan_limited, Plan, DEFAULT_MAX_INSTANCES};
use crate::plan::{PlannedGroup, PlannedInstance};
use crate::registry::TransportRegistry;
use crate::report::{InstanceReport, RunReport};
use crate::sink::{pump, EventSink, EventTx};
use crate::supervisor::activity::RunClock;
use crate::supervisor::control::{order_at_least, Order, StopHandle};
use crate::supervisor::progress::RunProgress;
use crate::supervisor::render::SpecTemplate;
use crate::supervisor::task::InstanceTask;
use crate::transport::{InstanceSpec, Transport};
use distarch_protocol::{env_vars, Level, PROTOCOL_VERSION};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio::time::sleep;

/// A run, ready to start: configuration checked, ids given out.
pub struct Launcher {
    config: Config,
    registry: TransportRegistry,
    plan: Plan,
    run_id: String,
    handle_signals: bool,
    stop: StopHandle,
    // control hook: the run's control handle and the receiving end of its commands.
    control: Control,
    commands: tokio::sync::mpsc::Receiver<Command>,
    master_log: Option<crate::trace::MasterLog>,
}

/// Builds a [`Launcher`] from a loaded [`Config`] or in code.
#[derive(Default)]
pub struct LauncherBuilder {
    config: Config,
    registry: TransportRegistry,
    only: Vec<String>,
    run_id: Option<String>,
    handle_signals: bool,
    max_instances: Option<u64>,
    master_log: Option<crate::trace::MasterLog>,
}

impl LauncherBuilder {
    /// Starts from a whole configuration (replaces groups and launcher settings).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the launcher-wide settings.
    pub fn launcher(mut self, launcher: LauncherConfig) -> Self {
        self.config.launcher = launcher;
        self
    }

    /// Adds (or replaces) a group.
    pub fn group(mut self, name: impl Into<String>, group: GroupConfig) -> Self {
        self.config.groups.insert(name.into(), group);
        self
    }

    /// Registers a transport.
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.registry.register(transport);
        self
    }

    /// Uses these transports (replaces any registered before).
    pub fn registry(mut self, registry: TransportRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Runs only these groups (ids are given out among them).
    pub fn only_groups(mut self, groups: impl IntoIterator<Item = String>) -> Self {
        self.only = groups.into_iter().collect();
        self
    }

    /// Uses this run id instead of a random one.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Bounds the number of instances the run may plan (default
    /// [`DEFAULT_MAX_INSTANCES`]).
    pub fn max_instances(mut self, max: u64) -> Self {
        self.max_instances = Some(max);
        self
    }

    /// Handles SIGINT/SIGTERM: the first stops everything cleanly, a second SIGINT
    /// kills everything now.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.handle_signals = yes;
        self
    }

    /// Sends the records of a [`crate::trace::tracing_layer`] through the run's
    /// events, in order with everything else, while the run runs.
    pub fn master_log(mut self, log: crate::trace::MasterLog) -> Self {
        self.master_log = Some(log);
        self
    }

    /// Checks everything and gives out ids. Errors list every problem with its key.
    pub fn build(mut self) -> Result<Launcher, ConfigErrors> {
        apply_service_defaults(&mut self.config);
        let limit = self.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        self.registry.resolve_config(&self.config);
        let plan = build_plan_limited(&self.config, &self.registry, &self.only, limit)?;
        let (stop, _) = StopHandle::new();
        let run_id = self.run_id.unwrap_or_else(new_run_id);
        let (control, commands) = Engine::channel(&self.config, stop.clone(), &run_id);
        Ok(Launcher {
            config: self.config,
            registry: self.registry,
            plan,
            run_id,
            handle_signals: self.handle_signals,
            stop,
            control,
            commands,
            master_log: self.master_log,
        })
    }
}

/// Gives every group without a `restart` policy its default: `always` in service
/// mode, else `never`.
pub(crate) fn apply_service_defaults(config: &mut Config) {
    let default = if config.launcher.service {
        RestartPolicy::Always
    } else {
        RestartPolicy::Never
    };
    for group in config.groups.values_mut() {
        // A job pool's instance that failed comes back by default: its jobs went
        // back to the queue, and the pool needs the hands.
        let default = match group.jobs {
            Some(_) if default == RestartPolicy::Never => RestartPolicy::OnFailure,
            _ => default,
        };
        group.restart.get_or_insert(default);
    }
}

/// A short random run id: 8 lowercase hex digits.
pub fn new_run_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

impl Launcher {
    /// A builder.
    pub fn builder() -> LauncherBuilder {
        LauncherBuilder::default()
    }

    /// The plan: which ids go where.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A handle to stop the run from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// A handle to see and steer the run while it runs (snapshot, logs, stop,
    /// suspend, resume, scale, restart, reload).
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    fn spec_for(&self, index: usize) -> InstanceSpec {
        let inst = &self.plan.instances[index];
        let group = self.plan.group_of(inst);
        instance_spec(&self.run_id, &self.config.launcher, group, inst)
    }
}

/// The spec of one instance of `group` (also used by the control engine for the
/// instances it starts later).
/// The group's strings of one instance (expanded at each start) and its group's
/// compiled `ready = { log = ... }` pattern (`compiled`, when the caller has it).
pub(crate) fn task_strings(
    group: &PlannedGroup,
    inst: &PlannedInstance,
    compiled: Option<Option<Arc<regex::Regex>>>,
) -> (SpecTemplate, Option<Arc<regex::Regex>>) {
    let template = SpecTemplate::new(
        group.argv.clone(),
        group.config.env.clone(),
        group.config.workdir.clone(),
        inst.params.clone(),
    );
    let ready_log = compiled.unwrap_or_else(|| ready_pattern(&group.config));
    (template, ready_log)
}

/// The group's `ready = { log = ... }` pattern, compiled (build_plan checked it).
fn ready_pattern(group: &GroupConfig) -> Option<Arc<regex::Regex>> {
    match &group.ready {
        Some(ReadyRule::Log(p)) => regex::Regex::new(p).ok().map(Arc::new),
        _ => None,
    }
}

pub(crate) fn instance_spec(
    run_id: &str,
    l: &LauncherConfig,
    group: &PlannedGroup,
    inst: &PlannedInstance,
) -> InstanceSpec {
    {
        let g = &group.config;
        let run_id = run_id.to_string();
        let mut env: BTreeMap<String, String> = g.env.clone();
        for (k, v) in [
            (env_vars::PROTOCOL, PROTOCOL_VERSION.to_string()),
            (env_vars::RUN_ID, run_id.clone()),
            (env_vars::ID, inst.id.to_string()),
            (env_vars::GROUP, group.name.to_string()),
            (env_vars::GROUP_ID, inst.group_id.to_string()),
            (env_vars::GROUP_COUNT, group.count.to_string()),
            (env_vars::HOST, inst.target.host.clone()),
            (env_vars::RESTART, "0".to_string()),
        ] {
            env.insert(k.to_string(), v);
        }
        InstanceSpec {
            run_id,
            group: group.name.to_string(),
            placement: inst.placement.to_string(),
            id: inst.id,
            group_id: inst.group_id,
            group_count: group.count,
            target: inst.target.address.clone(),
            host: inst.target.host.clone(),
            restart: 0,
            command: group.argv.as_ref().clone(),
            env,
            workdir: g.workdir.clone(),
            priority: g.priority,
            prepared: inst.prepared.clone(),
            stop_grace: g.stop_grace.unwrap_or(l.stop_grace).0,
            kill_after: g.kill_after.unwrap_or(l.kill_after).0,
        }
    }
}

impl Launcher {
    /// Runs every instance until each has ended for good, sending every event to
    /// `sink` (on a thread of its own), and returns the report.
    pub async fn run(mut self, sink: impl EventSink) -> RunReport {
        let started = Instant::now();
        let (events, rx) = EventTx::channel();
        // control hook: the tap keeps the control's state and log buffers.
        let tap = Tap {
            hub: self.control.hub.clone(),
            inner: Box::new(sink),
        };
        let sink_thread = std::thread::Builder::new()
            .name("distarch-events".into())
            .spawn(move || pump(rx, Box::new(tap)));
        let (finish_log, master_log) =
            forward_master_log(self.master_log.take(), events.clone()).await;
        let clock = RunClock::new();
        let progress = RunProgress::new(self.plan.groups.iter().map(|g| (g.name.clone(), g.count)))
            .with_ids(self.plan.instances.iter().map(|i| i.id));
        // jobs: start the pools first, so that every instance can attach.
        let (pools, pool_errors) = self.start_pools(&events).await;
        // control hook: the engine owns the run's dynamic set of instances.
        let (_, no_commands) = tokio::sync::mpsc::channel(1);
        let commands = std::mem::replace(&mut self.commands, no_commands);
        let turns = crate::supervisor::turns::StartTurns::new();
        let mut engine = Engine::new(
            &self.config,
            &self.plan,
            &self.control,
            commands,
            EngineParts {
                run_id: self.run_id.clone(),
                launcher: self.config.launcher.clone(),
                registry: self.registry.clone(),
                events: events.clone(),
                clock: clock.clone(),
                progress: progress.clone(),
                pools: pools
                    .iter()
                    .map(|(g, p)| (g.clone(), p.handle.clone()))
                    .collect(),
                turns: turns.clone(),
            },
        );
        let _ = events
            .send(Event::RunStarting {
                run_id: self.run_id.clone(),
                instances: self.plan.instances.len(),
            })
            .await;

        let ready_logs: BTreeMap<&str, Option<Arc<regex::Regex>>> = self
            .plan
            .groups
            .iter()
            .map(|g| (&*g.name, ready_pattern(&g.config)))
            .collect();
        let mut tasks = JoinSet::new();
        for (index, inst) in self.plan.instances.iter().enumerate() {
            let group = self.plan.group_of(inst);
            let Some(transport) = self.registry.get(&inst.transport).cloned() else {
                continue; // build_plan checked every transport name
            };
            let spec = self.spec_for(index);
            let (template, ready_log) =
                task_strings(group, inst, ready_logs.get(&*group.name).cloned());
            let task = InstanceTask {
                template,
                progress: progress.clone(),
                ready_log,
                spec,
                transport,
                group: group.config.clone(),
                group_name: group.name.clone(),
                host: Arc::from(inst.target.host.as_str()),
                events: events.clone(),
                control: engine.member_started(inst.id), // control hook
                clock: clock.clone(),
                max_line: self.config.launcher.max_line_bytes,
                group_count: engine.group_count(&group.name), // control hook
                jobs: pools.get(&group.name).map(|p| p.handle.clone()),
                turns: turns.clone(),
            };
            tasks.spawn(task.run());
        }
        let _ = events
            .send(Event::RunStarted {
                run_id: self.run_id.clone(),
            })
            .await;

        let reports = self
            .supervise_run(&mut tasks, &events, &clock, &progress, &mut engine)
            .await;
        drop(engine);
        for transport in self.registry.all() {
            transport.shutdown().await;
        }
        let mut jobs = pool_errors;
        for (_, pool) in pools {
            jobs.push(pool.finish().await);
        }
        // The records logged until now go out before the run's last line.
        drop(finish_log);
        if let Some(task) = master_log {
            let _ = task.await;
        }
        let instances = crate::control::last_reports(reports);
        let report = RunReport {
            run_id: self.run_id.clone(),
            instances,
            stop_reason: self.stop.state().reason,
            duration: started.elapsed(),
            jobs,
        };
        let _ = events
            .send(Event::RunStopped {
                run_id: self.run_id.clone(),
                exit_code: report.exit_code(),
            })
            .await;
        drop(events);
        if let Ok(handle) = sink_thread {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        report
    }

    /// Starts the pool of every group with `jobs`. A pool that cannot start (its
    /// journal or output cannot be opened) is reported, and the run is stopped.
    async fn start_pools(
        &self,
        events: &EventTx,
    ) -> (
        BTreeMap<Arc<str>, crate::jobs::RunningPool>,
        Vec<crate::jobs::PoolReport>,
    ) {
        let mut pools = BTreeMap::new();
        let mut failed = Vec::new();
        for group in &self.plan.groups {
            let Some(jobs) = &group.config.jobs else {
                continue;
            };
            let control = self.control.clone();
            let name = group.name.clone();
            let stop_group = Box::new(move || {
                tokio::spawn(async move {
                    let _ = control
                        .stop(vec![crate::control::Selector::Group(name.to_string())])
                        .await;
                });
            });
            match crate::jobs::start_pool(group.name.clone(), jobs, events.clone(), stop_group) {
                Ok(pool) => {
                    self.control.hub.add_jobs(pool.counters.clone());
                    pools.insert(group.name.clone(), pool);
                }
                Err(e) => {
                    let _ = events
                        .send(master_line(
                            Level::Error,
                            format!("jobs [{}]: {e}", group.name),
                        ))
                        .await;
                    self.stop.escalate(Order::Stop, StopReason::Requested);
                    failed.push(crate::jobs::PoolReport {
                        group: group.name.to_string(),
                        stats: crate::jobs::JobCounters::new(&group.name).stats(),
                        complete: false,
                        error: Some(e),
                    });
                }
            }
        }
        (pools, failed)
    }

    async fn supervise_run(
        &self,
        tasks: &mut JoinSet<InstanceReport>,
        events: &EventTx,
        clock: &Arc<RunClock>,
        progress: &RunProgress,
        engine: &mut Engine,
    ) -> Vec<InstanceReport> {
        let l = &self.config.launcher;
        let max_running = l.max_running_time.non_zero();
        let global_timeout = l.timeout.non_zero();
        let deadline = max_running.map(|d| tokio::time::Instant::now() + d);
        let ready_deadline = l
            .ready_timeout
            .non_zero()
            .map(|d| tokio::time::Instant::now() + d);
        let mut ready_checked = false;
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut paused_seen = Duration::ZERO;
        let mut stopping_since: Option<Instant> = None;
        let mut reminded = Instant::now();
        let mut signals = crate::signals::Signals::new(self.handle_signals);
        let mut control = self.stop.subscribe();
        let mut announced = Order::Run;
        let mut reports = Vec::new();
        loop {
            // control hook: an empty set of tasks ends the run unless the engine holds it.
            if tasks.is_empty() && !engine.holds_run() {
                break;
            }
            let idle = clock.idle();
            let until_timeout = global_timeout.map(|t| t.saturating_sub(idle));
            tokio::select! {
                joined = tasks.join_next(), if !tasks.is_empty() => match joined {
                    Some(Ok(report)) => reports.push(engine.task_ended(report, tasks)),
                    Some(Err(e)) => {
                        let _ = events.send(master_line(Level::Error, format!("an instance task failed: {e}"))).await;
                    }
                    None => {}
                },
                // control hook: commands from Control handles.
                command = engine.next_command() => engine.apply(command, tasks),
                _ = sleep_until_opt(deadline), if deadline.is_some() && announced == Order::Run => {
                    self.stop.escalate(Order::Stop, StopReason::MaxRunningTime);
                }
                _ = sleep(until_timeout.unwrap_or(Duration::MAX)), if until_timeout.is_some() && announced < Order::Terminate => {
                    if let Some(t) = global_timeout {
                        if clock.idle() >= t {
                            self.stop.escalate(Order::Terminate, StopReason::Timeout);
                        }
                    }
                }
                _ = sleep_until_opt(ready_deadline), if ready_deadline.is_some() && !ready_checked && announced == Order::Run => {
                    ready_checked = true;
                    let unready = progress.unready();
                    if !unready.is_empty() {
                        let after = l.ready_timeout;
                        let _ = events.send(master_line(Level::Error, format!(
                            "{} instance(s) did not become ready within {after} (ready_timeout): {}",
                            unready.len(), self.describe_ids(&unready),
                        ))).await;
                        self.stop.escalate(Order::Stop, StopReason::NotReady);
                    }
                }
                _ = housekeeping.tick() => {
                    let paused = clock.paused();
                    if paused.saturating_sub(paused_seen) >= PAUSE_WORTH_TELLING {
                        let _ = events.send(master_line(Level::Warn, format!(
                            "the master could not run for {:.1}s (stopped or starved); that time does not count towards hang timeouts",
                            (paused - paused_seen).as_secs_f64(),
                        ))).await;
                        paused_seen = paused;
                    }
                    if let Some(since) = stopping_since {
                        if reminded.elapsed() >= STOP_REMINDER && announced < Order::Kill && !tasks.is_empty() {
                            reminded = Instant::now();
                            let _ = events.send(master_line(Level::Warn, format!(
                                "still waiting for {} instance(s) to end ({}s so far){}",
                                tasks.len(),
                                since.elapsed().as_secs(),
                                self.kill_hint(),
                            ))).await;
                        }
                    }
                }
                signal = signals.next() => {
                    match signal {
                        crate::signals::Received::Hangup => {
                            // The CLI reloads the configuration on SIGHUP (control
                            // plane); here it only must not be a hard kill.
                            let _ = events.send(master_line(Level::Info,
                                "SIGHUP received: not a stop (stop the run with Ctrl-C or SIGTERM)".to_string(),
                            )).await;
                        }
                        crate::signals::Received::Interrupt if announced >= Order::Stop => {
                            self.stop.escalate(Order::Kill, StopReason::Interrupted);
                        }
                        crate::signals::Received::Interrupt => {
                            self.stop.escalate(Order::Stop, StopReason::Interrupted);
                        }
                        crate::signals::Received::Terminate => {
                            self.stop.escalate(Order::Stop, StopReason::Terminated);
                        }
                    }
                }
                order = order_at_least(&mut control, next_order(announced)), if announced < Order::Kill => {
                    announced = order;
                    let state = self.stop.state();
                    engine.global_order(state); // control hook
                    let reason = state.reason.unwrap_or(StopReason::Requested);
                    let _ = events.send(Event::RunStopping { reason, forced: order >= Order::Terminate }).await;
                    if order < Order::Kill && !tasks.is_empty() {
                        stopping_since.get_or_insert_with(Instant::now);
                        reminded = Instant::now();
                        let _ = events.send(master_line(Level::Warn, format!(
                            "waiting for {} instance(s) to end, at most {}s{}",
                            tasks.len(),
                            self.longest_stop(order).as_secs(),
                            self.kill_hint(),
                        ))).await;
                    }
                }
            }
        }
        reports
    }
}

/// Forwards the records of `log` into the run's events until the returned sender
/// is dropped; then forwards those already waiting and ends. Those logged before
/// the run are sent first, before anything else of the run.
async fn forward_master_log(
    log: Option<crate::trace::MasterLog>,
    events: EventTx,
) -> (
    tokio::sync::oneshot::Sender<()>,
    Option<tokio::task::JoinHandle<()>>,
) {
    let (finish, mut finished) = tokio::sync::oneshot::channel::<()>();
    let Some(mut log) = log else {
        return (finish, None);
    };
    while let Some(event) = log.try_next() {
        let _ = events.send(event).await;
    }
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                record = log.next() => match record {
                    Some(event) => { let _ = events.send(event).await; }
                    None => return,
                },
                _ = &mut finished => break,
            }
        }
        while let Some(event) = log.try_next() {
            let _ = events.send(event).await;
        }
    });
    (finish, Some(task))
}

/// How often the launcher looks at pauses and the progress of a stop.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// A pause of the master at least this long is reported.
const PAUSE_WORTH_TELLING: Duration = Duration::from_secs(2);
/// While stopping, how often the launcher says what it still waits for.
const STOP_REMINDER: Duration = Duration::from_secs(5);

impl Launcher {
    /// The longest a stop from `order` may take: protocol speakers get the stop
    /// frame and their grace, then everyone `kill_after`; the kill is immediate.
    fn longest_stop(&self, order: Order) -> Duration {
        let l = &self.config.launcher;
        self.plan
            .groups
            .iter()
            .map(|g| {
                let grace = g.config.stop_grace.unwrap_or(l.stop_grace).0;
                let kill_after = g.config.kill_after.unwrap_or(l.kill_after).0;
                match order {
                    Order::Run | Order::Stop => grace + kill_after,
                    Order::Terminate => kill_after,
                    Order::Kill => Duration::ZERO,
                }
            })
            .max()
            .unwrap_or_default()
    }

    /// "; press Ctrl-C again to kill them now" when the launcher handles signals.
    fn kill_hint(&self) -> &'static str {
        if self.handle_signals {
            "; press Ctrl-C again to kill them now"
        } else {
            ""
        }
    }

    /// `id 3, 4 (group web), 9 (group db)`-style list of instance ids.
    fn describe_ids(&self, ids: &[u64]) -> String {
        let mut by_group: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for inst in self.plan.instances.iter().filter(|i| ids.contains(&i.id)) {
            by_group
                .entry(&self.plan.group_of(inst).name)
                .or_default()
                .push(inst.id.to_string());
        }
        by_group
            .into_iter()
            .map(|(g, ids)| format!("group {g}: id {}", ids.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn next_order(current: Order) -> Order {
    match current {
        Order::Run => Order::Stop,
        Order::Stop => Order::Terminate,
        _ => Order::Kill,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A log line of the master's own.
pub(crate) fn master_line(level: Level, message: String) -> Event {
    Event::Log(LogRecord::master(level, message))
}
