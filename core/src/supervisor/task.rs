//! The task that owns one instance for the whole run: start, watch, stop, restart.

use super::activity::{Activity, RunClock};
use super::backoff::restart_delay;
use super::control::{order_at_least, ControlState, Order};
use super::progress::{DependencyState, Reported, RunProgress};
use super::reader::{read_streams, LineHooks};
use super::render::SpecTemplate;
use super::turns::StartTurns;
use crate::config::{GroupConfig, ReadyRule, RestartPolicy};
use crate::error::error_chain;
use crate::events::{Event, InstanceLabel, StopStep};
use crate::report::{InstanceReport, Outcome};
use crate::sink::EventTx;
use crate::transport::{ExitStatus, Instance, InstanceSpec, Transport};
use distarch_protocol::{encode_master_frame, env_vars, MasterFrame};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

/// How long to wait for an instance to end after `kill` before calling it lost.
const AFTER_KILL_WAIT: Duration = Duration::from_secs(30);
/// How long writing the `stop` frame may take.
const STOP_FRAME_WRITE: Duration = Duration::from_secs(2);
/// How long output may keep draining after the worker ended, before the rest of its
/// process group is cleaned up.
const DRAIN_BEFORE_CLEANUP: Duration = Duration::from_millis(500);
/// How long output may keep draining after cleanup.
const DRAIN_AFTER_CLEANUP: Duration = Duration::from_secs(2);
/// Once the hang timeout has passed, how long pending output and a pending exit
/// still get to show before the instance is judged hung.
const HANG_CONFIRM: Duration = Duration::from_millis(200);
/// How often a `tcp` readiness rule tries to connect.
const TCP_PROBE_EVERY: Duration = Duration::from_millis(200);

/// Everything one instance task needs.
pub(crate) struct InstanceTask {
    pub(crate) spec: InstanceSpec,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) group: Arc<GroupConfig>,
    pub(crate) group_name: Arc<str>,
    pub(crate) host: Arc<str>,
    pub(crate) events: EventTx,
    pub(crate) control: watch::Receiver<ControlState>,
    pub(crate) clock: Arc<RunClock>,
    pub(crate) max_line: usize,
    /// The group's strings, expanded anew for each start.
    pub(crate) template: SpecTemplate,
    /// Every group's progress: this instance reports to its own, and waits on
    /// those its group depends on.
    pub(crate) progress: RunProgress,
    /// The group's `ready = { log = ... }` pattern, compiled once per group.
    pub(crate) ready_log: Option<Arc<regex::Regex>>,
    // control hook: the group's current size; a change is sent to the running
    // instance as a `group_count` frame and used for its next start.
    pub(crate) group_count: watch::Receiver<u64>,
    /// The group's job pool, when it is one: each start attaches to it.
    pub(crate) jobs: Option<crate::jobs::PoolHandle>,
    /// The run's turns to start (see [`StartTurns`]).
    pub(crate) turns: StartTurns,
}

/// How one start ended.
struct StartResult {
    outcome: Outcome,
    ran_for: Duration,
}

impl InstanceTask {
    fn label(&self, restart: u32) -> Arc<InstanceLabel> {
        Arc::new(InstanceLabel::new(
            self.group_name.clone(),
            self.host.clone(),
            self.spec.id,
            self.spec.group_id,
            self.spec.group_count,
            restart,
        ))
    }

    async fn emit(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    /// Runs the instance until it has ended for good; returns its report. What its
    /// transport logs through `tracing` meanwhile is labelled with the instance
    /// (see [`crate::trace`]).
    pub(crate) fn run(self) -> impl std::future::Future<Output = InstanceReport> {
        use tracing::Instrument;
        let span = crate::trace::instance_span(
            &self.group_name,
            &self.host,
            self.spec.id,
            self.spec.group_id,
            self.spec.group_count,
        );
        self.run_inner().instrument(span)
    }

    // Not an `async fn`: the body is an `async move` block, so that the task is
    // held once in the future instead of twice (as an argument and as a local).
    #[allow(clippy::manual_async_fn)] // on purpose, see above
    fn run_inner(mut self) -> impl std::future::Future<Output = InstanceReport> {
        async move {
            let mut reported = Reported::default();
            let outcome = self.wait_for_dependencies().await.err();
            let (outcome, restarts) = match outcome {
                Some(o) => (o, 0),
                None => self.run_starts(&mut reported).await,
            };
            self.progress.settle(self.spec.id);
            let success = matches!(&outcome, Outcome::Exited(s) if s.success())
                || matches!(&outcome, Outcome::Stopped { exit, .. } if exit.success());
            self.progress.update(&self.group_name, |c| {
                c.ended_unstarted += u64::from(!reported.started);
                c.ended_unready += u64::from(!reported.ready);
                if success {
                    c.completed += 1;
                } else {
                    c.ended_failed += 1;
                }
            });
            InstanceReport {
                id: self.spec.id,
                group: self.group_name.clone(),
                group_id: self.spec.group_id,
                host: self.host.clone(),
                restarts,
                outcome,
            }
        }
    }

    /// Waits until every group this one depends on reached its condition. Err when
    /// the run stops meanwhile, or a dependency can no longer be met.
    async fn wait_for_dependencies(&mut self) -> Result<(), Outcome> {
        let deps = self.group.depends_on.clone();
        for (dep, condition) in deps {
            let Some(mut counts) = self.progress.watch(&dep) else {
                continue; // build_plan checked that every dependency runs
            };
            let mut announced = false;
            loop {
                let state = counts.borrow_and_update().state(condition);
                match state {
                    DependencyState::Met => break,
                    DependencyState::Failed { lost } => {
                        let why = format!(
                            "not starting: group `{dep}` can no longer be {condition} ({lost} instance(s) ended without it)"
                        );
                        let label = self.label(0);
                        self.emit(master_log(
                            &label,
                            distarch_protocol::Level::Error,
                            why.clone(),
                        ))
                        .await;
                        return Err(Outcome::FailedToStart(why));
                    }
                    DependencyState::Waiting { have, total } => {
                        if !announced && self.spec.group_id == 1 {
                            let label = self.label(0);
                            self.emit(master_log(
                                &label,
                                distarch_protocol::Level::Info,
                                format!(
                                    "waiting for group `{dep}` to be {condition} ({have}/{total})"
                                ),
                            ))
                            .await;
                        }
                        announced = true;
                    }
                }
                tokio::select! {
                    changed = counts.changed() => if changed.is_err() { break },
                    _ = order_at_least(&mut self.control, Order::Stop) => return Err(Outcome::NotStarted),
                }
            }
        }
        Ok(())
    }

    /// Starts and restarts the instance per policy; returns how its last start
    /// ended and the number of restarts.
    async fn run_starts(&mut self, reported: &mut Reported) -> (Outcome, u32) {
        // Counted from the start this task was given (a restart by a command is not
        // a first start).
        let mut restarts = self.spec.restart;
        let mut consecutive = 0u32;
        let outcome = loop {
            if self.control.borrow().order >= Order::Stop {
                break Outcome::NotStarted;
            }
            let label = self.label(restarts);
            let result = self.start_once(label.clone(), restarts, reported).await;
            if self.control.borrow().order >= Order::Stop {
                break result.outcome;
            }
            let failed = !matches!(&result.outcome, Outcome::Exited(s) if s.success());
            let again = match self.group.restart.unwrap_or_default() {
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => failed,
                RestartPolicy::Always => true,
            };
            if !again {
                break result.outcome;
            }
            if result.ran_for >= self.group.backoff.reset_after.0 {
                consecutive = 0;
            }
            if consecutive >= self.group.max_restarts {
                self.emit(master_log(
                    &label,
                    distarch_protocol::Level::Error,
                    format!(
                        "not restarting: {} restarts in a row without a healthy run of {} (max_restarts)",
                        consecutive, self.group.backoff.reset_after
                    ),
                ))
                .await;
                break result.outcome;
            }
            consecutive += 1;
            restarts += 1;
            let delay = restart_delay(&self.group.backoff, consecutive, fastrand::f64());
            self.emit(Event::InstanceRestarting {
                instance: label,
                restart: restarts,
                delay,
            })
            .await;
            tokio::select! {
                _ = sleep(delay) => {}
                _ = order_at_least(&mut self.control, Order::Stop) => break result.outcome,
            }
        };
        (outcome, restarts)
    }

    async fn start_once(
        &mut self,
        label: Arc<InstanceLabel>,
        restart: u32,
        reported: &mut Reported,
    ) -> StartResult {
        self.spec.restart = restart;
        // control hook: a (re)start gets the group's current size.
        self.spec.group_count = *self.group_count.borrow_and_update();
        self.spec.env.insert(
            env_vars::GROUP_COUNT.to_string(),
            self.spec.group_count.to_string(),
        );
        self.template.apply(&mut self.spec);
        self.emit(Event::InstanceCreated(label.clone())).await;
        let started = Instant::now();
        let spawned = tokio::select! {
            r = self.turns.take(self.transport.spawn(&self.spec)) => r,
            _ = order_at_least(&mut self.control, Order::Stop) => {
                return StartResult { outcome: Outcome::NotStarted, ran_for: Duration::ZERO };
            }
        };
        let instance = match spawned {
            Ok(i) => i,
            Err(e) => {
                let error = error_chain(&e);
                self.emit(Event::InstanceFailedToStart {
                    instance: label,
                    error: error.clone(),
                })
                .await;
                return StartResult {
                    outcome: Outcome::FailedToStart(error),
                    ran_for: started.elapsed(),
                };
            }
        };
        if !reported.started {
            reported.started = true;
            self.progress.update(&self.group_name, |c| c.started += 1);
        }
        let outcome = self.supervise(instance, label, reported).await;
        StartResult {
            outcome,
            ran_for: started.elapsed(),
        }
    }

    async fn supervise(
        &mut self,
        mut instance: Box<dyn Instance>,
        label: Arc<InstanceLabel>,
        reported: &mut Reported,
    ) -> Outcome {
        // Started goes out before any reader runs, so that no `ready` or line of
        // this start can reach the sink ahead of it.
        self.emit(Event::InstanceStarted {
            instance: label.clone(),
            description: instance.describe(),
        })
        .await;
        let activity = Activity::new(self.clock.clone());
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let mut stdin = None;
        let mut attachment = match &self.jobs {
            Some(pool) => Some(pool.attach(self.spec.id).await),
            None => None,
        };
        if let Some(io) = instance.take_io() {
            stdin = Some(io.stdin);
            readers.push(tokio::spawn(read_streams(
                io.stdout,
                io.stderr,
                label.clone(),
                activity.clone(),
                self.events.clone(),
                LineHooks {
                    max_line: self.max_line,
                    ready_log: self.ready_log.clone(),
                    jobs: attachment.as_ref().map(|a| a.reporter()),
                },
            )));
        }

        // Only a `tcp` or `delay` rule has a probe. Boxed, so that every instance's
        // future does not carry the state of a connect for the few that use one.
        let mut probe = match &self.group.ready {
            Some(rule @ (ReadyRule::Delay(_) | ReadyRule::Tcp(_))) => {
                Some(Box::pin(ready_probe(rule.clone())))
            }
            _ => None,
        };
        let (exit, stopped_by, timed_out) = loop {
            // Re-read each time: an instance that sends its first frame gets the
            // protocol speakers' default timeout from then on.
            let hang_after = self.group.hang_timeout(activity.speaks_protocol());
            let until_hung = hang_after.map(|t| t.saturating_sub(activity.idle()));
            tokio::select! {
                r = instance.wait() => break (exit_of(r), None, false),
                _ = sleep(until_hung.unwrap_or(Duration::MAX)), if until_hung.is_some() => {
                    let after = hang_after.unwrap_or_default();
                    if activity.idle() < after {
                        continue;
                    }
                    // Output read meanwhile, or an exit not yet collected, wins.
                    tokio::select! {
                        r = instance.wait() => break (exit_of(r), None, false),
                        _ = sleep(HANG_CONFIRM) => {}
                    }
                    if activity.idle() >= after {
                        self.emit(Event::InstanceTimedOut { instance: label.clone(), after }).await;
                        // Boxed: a stop's state exists only while stopping.
                        let (exit, _) = Box::pin(self.bring_down(&mut instance, &mut stdin, StopStep::Terminate, true)).await;
                        break (exit, None, true);
                    }
                }
                _ = activity.ready_signal(), if !reported.ready => {
                    reported.ready = true;
                    self.progress.update(&self.group_name, |c| c.ready += 1);
                    self.progress.settle(self.spec.id);
                }
                () = async { if let Some(p) = probe.as_mut() { p.await } }, if probe.is_some() => {
                    probe = None;
                    if activity.mark_ready() {
                        self.emit(Event::InstanceReady(label.clone())).await;
                    }
                }
                order = order_at_least(&mut self.control, Order::Stop) => {
                    let first = order.first_step().unwrap_or(StopStep::StopFrame);
                    let speaks = activity.speaks_protocol();
                    let (exit, step) = Box::pin(self.bring_down(&mut instance, &mut stdin, first, speaks)).await;
                    break (exit, Some(step), false);
                }
                // jobs: the pool handed this start some jobs; the worker asked for them.
                Some(frames) = next_jobs(&mut attachment) => {
                    send_jobs(&mut stdin, frames, &mut attachment).await;
                }
                // control hook: tell the worker its group was scaled.
                Ok(()) = self.group_count.changed() => {
                    let count = *self.group_count.borrow_and_update();
                    self.spec.group_count = count;
                    send_frame(&mut stdin, &MasterFrame::GroupCount { count }).await;
                }
            }
        };
        // Closing stdin tells a worker's leftovers that the master is done with them.
        drop(stdin);
        drain(&mut readers, DRAIN_BEFORE_CLEANUP).await;
        instance.cleanup().await;
        // After the readers: answers read before the end count, the rest is requeued.
        if let Some(a) = attachment.take() {
            a.detach().await;
        }
        drain(&mut readers, DRAIN_AFTER_CLEANUP).await;
        for r in &readers {
            r.abort();
        }
        if !reported.ready && activity.is_ready() {
            reported.ready = true;
            self.progress.update(&self.group_name, |c| c.ready += 1);
        }
        self.emit(Event::InstanceStopped {
            instance: label,
            exit: exit.clone(),
            stopped_by,
        })
        .await;
        match (stopped_by, timed_out) {
            (_, true) => Outcome::TimedOut(exit),
            (Some(step), _) => Outcome::Stopped { exit, step },
            (None, false) => Outcome::Exited(exit),
        }
    }

    /// Escalates from `first` until the instance ends: `stop` frame → `stop_grace` →
    /// terminate → `kill_after` → kill. A plain program (`speaks` false) cannot read
    /// a `stop` frame: it gets its stdin closed and the group's `stop_signal` at
    /// once instead, then `kill_after` → kill. A stronger order arriving meanwhile
    /// (a second Ctrl-C) jumps ahead. Returns the exit and the last step taken.
    async fn bring_down(
        &mut self,
        instance: &mut Box<dyn Instance>,
        stdin: &mut Option<Box<dyn AsyncWrite + Send + Unpin>>,
        first: StopStep,
        speaks: bool,
    ) -> (ExitStatus, StopStep) {
        let mut step = first;
        loop {
            let wait_for = match step {
                StopStep::StopFrame if !speaks => {
                    *stdin = None;
                    if let Err(e) = instance.stop_with_signal(self.group.stop_signal).await {
                        let label = self.label(self.spec.restart);
                        self.emit(master_log(
                            &label,
                            distarch_protocol::Level::Warn,
                            format!("{} failed: {}", self.group.stop_signal, error_chain(&e)),
                        ))
                        .await;
                    }
                    step = StopStep::Terminate;
                    self.spec.kill_after
                }
                StopStep::StopFrame => {
                    if let Some(w) = stdin.as_mut() {
                        let frame = encode_master_frame(&MasterFrame::Stop);
                        let sent = timeout(STOP_FRAME_WRITE, async {
                            w.write_all(&frame).await?;
                            w.flush().await
                        })
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            // Nobody reads stdin any more: no point waiting for a reply.
                            *stdin = None;
                        }
                    }
                    self.spec.stop_grace
                }
                StopStep::Terminate => {
                    if let Err(e) = instance.terminate().await {
                        let label = self.label(self.spec.restart);
                        self.emit(master_log(
                            &label,
                            distarch_protocol::Level::Warn,
                            format!("terminate failed: {}", error_chain(&e)),
                        ))
                        .await;
                    }
                    self.spec.kill_after
                }
                StopStep::Kill => {
                    if let Err(e) = instance.kill().await {
                        let label = self.label(self.spec.restart);
                        self.emit(master_log(
                            &label,
                            distarch_protocol::Level::Warn,
                            format!("kill failed: {}", error_chain(&e)),
                        ))
                        .await;
                    }
                    AFTER_KILL_WAIT
                }
            };
            let current = step;
            let next_order = match current {
                StopStep::StopFrame => Order::Terminate,
                _ => Order::Kill,
            };
            tokio::select! {
                r = instance.wait() => return (exit_of(r), current),
                _ = sleep(wait_for) => {
                    step = match current {
                        StopStep::StopFrame => StopStep::Terminate,
                        StopStep::Terminate => StopStep::Kill,
                        StopStep::Kill => return (ExitStatus::Lost("did not end after kill".into()), current),
                    };
                }
                // Only a stronger order than the current step matters: at `kill`
                // there is nothing left to escalate to.
                order = order_at_least(&mut self.control, next_order), if current < StopStep::Kill => {
                    step = order.first_step().unwrap_or(StopStep::Kill).max(step);
                }
            }
        }
    }
}

/// Resolves when a `tcp` or `delay` readiness rule is met; pends forever for the
/// other rules (a `ready` frame or a `log` pattern is seen by the readers).
async fn ready_probe(rule: ReadyRule) {
    match rule {
        ReadyRule::Delay(d) => sleep(d.0).await,
        ReadyRule::Tcp(target) => {
            let address = target.address();
            loop {
                let attempt = timeout(TCP_PROBE_EVERY, tokio::net::TcpStream::connect(&address));
                if let Ok(Ok(_)) = attempt.await {
                    return;
                }
                sleep(TCP_PROBE_EVERY).await;
            }
        }
        ReadyRule::Log(_) => std::future::pending().await,
    }
}

/// Writes one frame to the worker's stdin; a stdin nobody reads any more is dropped.
async fn send_frame(stdin: &mut Option<Box<dyn AsyncWrite + Send + Unpin>>, frame: &MasterFrame) {
    if let Some(w) = stdin.as_mut() {
        let bytes = encode_master_frame(frame);
        let sent = timeout(STOP_FRAME_WRITE, async {
            w.write_all(&bytes).await?;
            w.flush().await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            *stdin = None;
        }
    }
}

/// The next frames the pool sent this start; pends forever without a pool.
async fn next_jobs(attachment: &mut Option<crate::jobs::Attachment>) -> Option<Vec<u8>> {
    match attachment {
        Some(a) => a.frames.recv().await,
        None => std::future::pending().await,
    }
}

/// How long writing jobs to a worker may block: it asked for them, so it reads
/// its stdin; one that does not for this long is cut off (its stdin closed, so it
/// ends and its jobs go back to the queue).
const JOB_WRITE: Duration = Duration::from_secs(30);

/// Writes job frames (and any others already waiting) in one write.
async fn send_jobs(
    stdin: &mut Option<Box<dyn AsyncWrite + Send + Unpin>>,
    mut frames: Vec<u8>,
    attachment: &mut Option<crate::jobs::Attachment>,
) {
    if let Some(a) = attachment.as_mut() {
        while let Ok(more) = a.frames.try_recv() {
            frames.extend_from_slice(&more);
        }
    }
    if let Some(w) = stdin.as_mut() {
        let sent = timeout(JOB_WRITE, async {
            w.write_all(&frames).await?;
            w.flush().await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            *stdin = None;
        }
    }
}

fn exit_of(r: Result<ExitStatus, crate::error::InstanceError>) -> ExitStatus {
    r.unwrap_or_else(|e| ExitStatus::Lost(error_chain(&e)))
}

async fn drain(readers: &mut [JoinHandle<()>], limit: Duration) {
    let _ = timeout(limit, async {
        for r in readers.iter_mut() {
            if !r.is_finished() {
                let _ = r.await;
            }
        }
    })
    .await;
}

/// A log line from the master about one instance.
pub(crate) fn master_log(
    label: &Arc<InstanceLabel>,
    level: distarch_protocol::Level,
    message: String,
) -> Event {
    let mut fields = serde_json::Map::new();
    fields.insert("source".into(), serde_json::Value::String("master".into()));
    Event::Log(crate::events::LogRecord {
        time: std::time::SystemTime::now(),
        instance: Some(label.clone()),
        level,
        message,
        fields: Some(fields),
        stream: None,
        truncated: false,
    })
}
