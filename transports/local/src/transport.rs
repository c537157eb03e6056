//! The local [`Transport`]: one process (group) per instance, each in a cgroup of
//! its own when cgroup v2 is writable.

use crate::cgroup::{self, InstanceCgroup, RunCgroup};
use crate::limits::Throttle;
use crate::settings::{self, Resolved};
use crate::unix::ChildSetup;
use crate::{reaper, unix};
use async_trait::async_trait;
use distarch_core::{
    config::StopSignal, ConfigError, ConfigErrors, ExitStatus, GcReport, GcRequest, Instance,
    InstanceError, InstanceIo, InstanceSpec, PlacementPlan, PlacementRef, Prepared, SpawnError,
    Target, Transport,
};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::OwnedSemaphorePermit;

/// Starts instances as local processes.
#[derive(Debug, Clone, Default)]
pub struct LocalTransport {
    name: String,
    state: Arc<State>,
}

/// What the transport's clones share: the run's cgroup and the start throttle.
#[derive(Debug, Default)]
struct State {
    /// `(run id, its cgroup or None when cgroups are not usable)`.
    run: Mutex<Option<(String, Option<Arc<RunCgroup>>)>>,
    throttle: OnceLock<Throttle>,
}

impl LocalTransport {
    /// The transport, registered as `local`.
    pub fn new() -> Self {
        Self::named("local")
    }

    /// The same transport under another name (e.g. to wrap it).
    pub fn named(name: impl Into<String>) -> Self {
        LocalTransport {
            name: name.into(),
            state: Arc::default(),
        }
    }

    /// The run's cgroup, made at the first start of the run; `None` (said once)
    /// when cgroup v2 is not usable here.
    fn run_cgroup(&self, run_id: &str) -> Option<Arc<RunCgroup>> {
        let Ok(mut run) = self.state.run.lock() else {
            return None;
        };
        if let Some((id, cg)) = run.as_ref() {
            if id == run_id {
                return cg.clone();
            }
        }
        let made = cgroup::detect().and_then(|h| {
            RunCgroup::create(&h, run_id)
                .map_err(|e| format!("cannot make a cgroup under {}: {e}", h.base.display()))
        });
        let cg = match made {
            Ok(cg) => {
                reaper::register_cgroup(&cg.dir, true);
                Some(Arc::new(cg))
            }
            Err(why) => {
                tracing::warn!(
                    "local: cgroup v2 is not usable ({why}); instances \
                     run in process groups only, so what a worker starts with setsid or a \
                     double fork may outlive it"
                );
                None
            }
        };
        *run = Some((run_id.to_string(), cg.clone()));
        cg
    }

    /// Starts one local instance, for transports that wrap this one: the
    /// placement's settings belong to the wrapper and are not read (no limits,
    /// no user; the run's cgroup when there is one).
    pub fn start(&self, spec: &InstanceSpec) -> Result<LocalInstance, SpawnError> {
        self.start_resolved(spec, &Resolved::default())
    }

    /// Starts one instance of a `local` placement, with the settings its plan
    /// prepared.
    fn start_local(&self, spec: &InstanceSpec) -> Result<LocalInstance, SpawnError> {
        self.start_resolved(spec, spec.settings::<Resolved>()?)
    }

    fn start_resolved(
        &self,
        spec: &InstanceSpec,
        settings: &Resolved,
    ) -> Result<LocalInstance, SpawnError> {
        let Some((program, args)) = spec.command.split_first() else {
            return Err(SpawnError::new("the command is empty"));
        };
        let run = self.run_cgroup(&spec.run_id);
        let cgroup = match &run {
            // Without limits, and unless asked, the worker stays in the run's
            // cgroup: an instance cgroup costs a mkdir, a move and an rmdir of
            // about 0.1-0.2 ms each (they wait for RCU), on every start.
            Some(_) if !settings.instance_cgroup => None,
            Some(run) => Some(
                run.instance(&spec.group, spec.id, spec.restart, &settings.limits)
                    .map_err(|e| SpawnError::with_source("cannot make the instance's cgroup", e))?,
            ),
            None if settings.limits != Default::default() => {
                return Err(SpawnError::new(
                    "memory, cpus and pids_limit need cgroup v2, which is not usable here",
                ))
            }
            None => None,
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(&spec.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &spec.workdir {
            command.current_dir(dir);
        }
        if let Some((uid, gid)) = settings.ids {
            command.uid(uid).gid(gid);
        }
        // The parent-death signal and the nice value need code between fork and
        // exec, which forces a full fork() of the master instead of the cheap
        // vfork-style spawn (measured: 2x slower starts at 1000 instances; that is
        // also why the worker is moved into its cgroup after the spawn). While the reaper runs, it already kills
        // every worker group (or the run's cgroup) the moment the master dies, so
        // the parent-death signal is only asked for without it.
        let setup = ChildSetup {
            parent_death: !reaper::is_alive(),
            nice: spec.priority,
            default_signals: unix::ignores_stop_signals(),
        };
        if setup.parent_death || setup.nice.is_some() || setup.default_signals {
            unix::set_child_setup(&mut command, setup);
        }
        let mut child = command.spawn().map_err(|e| {
            let cwd = match &spec.workdir {
                Some(d) => d.display().to_string(),
                None => std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| "?".into()),
            };
            SpawnError::with_source(format!("cannot start `{program}` (in {cwd})"), e)
        })?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        if let (Some(run), Some(cg)) = (&run, &cgroup) {
            // Until here the worker sits in the master's leaf of the run's cgroup,
            // where the reaper finds it too if the master dies right now.
            if let Err(e) = run.adopt(cg, pid) {
                let _ = unix::signal_group(pid, libc::SIGKILL);
                return Err(SpawnError::with_source(
                    format!("cannot move pid {pid} into {}", cg.path().display()),
                    e,
                ));
            }
        }
        if run.is_none() {
            reaper::register(pid, true);
        }
        let io = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(stdin), Some(stdout), Some(stderr)) => Some(InstanceIo {
                stdin: Box::new(stdin),
                stdout: Box::new(stdout),
                stderr: Some(Box::new(stderr)),
            }),
            _ => None,
        };
        Ok(LocalInstance {
            child,
            pgid: pid,
            io,
            registered: run.is_none(),
            cleaned: false,
            cgroup,
            _slot: None,
        })
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        let resolved = settings::resolve(placement.settings).map_err(|errors| {
            ConfigErrors(
                errors
                    .into_iter()
                    .map(|(key, message)| {
                        let path = if key.is_empty() {
                            placement.path()
                        } else {
                            format!("{}.{key}", placement.path())
                        };
                        ConfigError::new(path, message)
                    })
                    .collect(),
            )
        })?;
        let target = Target {
            address: "local".into(),
            host: resolved.host.clone(),
            instances: placement.instances,
        };
        Ok(PlacementPlan::new(vec![target], Prepared::new(resolved)))
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let slot = self
            .state
            .throttle
            .get_or_init(Throttle::from_limit)
            .slot()
            .await;
        let mut instance = self.start_local(spec)?;
        instance._slot = slot;
        Ok(Box::new(instance))
    }

    /// Kills and removes the run cgroups of gone masters on this machine.
    async fn gc(&self, request: &GcRequest<'_>) -> GcReport {
        let mut report = GcReport::default();
        for line in cgroup::gc(request.dry_run) {
            report.info(line);
        }
        report
    }

    async fn shutdown(&self) {
        let run = self.state.run.lock().ok().and_then(|mut r| r.take());
        if let Some((_, Some(cg))) = run {
            if cg.finish() {
                reaper::register_cgroup(&cg.dir, false);
            }
        }
    }
}

/// A running local process group.
#[derive(Debug)]
pub struct LocalInstance {
    child: Child,
    pgid: i32,
    io: Option<InstanceIo>,
    /// The process group is registered with the reaper (no cgroup).
    registered: bool,
    /// `cleanup` ran: nothing of the instance is left.
    cleaned: bool,
    cgroup: Option<InstanceCgroup>,
    /// The open-file slot this instance holds while it lives.
    _slot: Option<OwnedSemaphorePermit>,
}

impl LocalInstance {
    /// The process id of the worker (also its process group id).
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    fn signal(&self, signal: i32, what: &str) -> Result<(), InstanceError> {
        unix::signal_group(self.pgid, signal).map_err(|e| {
            InstanceError::with_source(format!("cannot {what} process group {}", self.pgid), e)
        })
    }
}

#[async_trait]
impl Instance for LocalInstance {
    fn take_io(&mut self) -> Option<InstanceIo> {
        self.io.take()
    }

    fn describe(&self) -> String {
        format!("pid {}", self.pgid)
    }

    async fn terminate(&mut self) -> Result<(), InstanceError> {
        self.signal(libc::SIGTERM, "terminate")?;
        // Processes of the instance that left its process group (setsid, double
        // fork) get the signal too; those in the group already had it.
        if let Some(cg) = &self.cgroup {
            for pid in cg.pids() {
                if unix::pgid_of(pid).is_some_and(|g| g != self.pgid) {
                    let _ = unix::signal_pid(pid, libc::SIGTERM);
                }
            }
        }
        Ok(())
    }

    async fn kill(&mut self) -> Result<(), InstanceError> {
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill();
        }
        self.signal(libc::SIGKILL, "kill")
    }

    async fn stop_with_signal(&mut self, signal: StopSignal) -> Result<(), InstanceError> {
        self.signal(signal.number(), "signal")
    }

    async fn wait(&mut self) -> Result<ExitStatus, InstanceError> {
        let status = self.child.wait().await.map_err(|e| {
            InstanceError::with_source(format!("cannot wait for pid {}", self.pgid), e)
        })?;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Exited(code),
            (None, Some(sig)) => ExitStatus::Signaled(sig),
            (None, None) => ExitStatus::Lost("no exit code and no signal".into()),
        })
    }

    async fn cleanup(&mut self) {
        // The worker has ended: whatever it left (in its group, or anywhere in its
        // cgroup) goes too, so that a restart never runs beside leftovers.
        let _ = unix::signal_group(self.pgid, libc::SIGKILL);
        if let Some(cg) = self.cgroup.take() {
            if cg.populated() {
                let _ = cg.kill();
                for _ in 0..500 {
                    if !cg.populated() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            // Still busy: the run's cgroup goes as a whole at the end.
            let _ = cg.remove();
        }
        if self.registered {
            reaper::register(self.pgid, false);
            self.registered = false;
        }
        self.cleaned = true;
    }
}

impl Drop for LocalInstance {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill();
            let _ = cg.remove();
        }
        if !self.cleaned {
            let _ = unix::signal_group(self.pgid, libc::SIGKILL);
        }
        if self.registered {
            reaper::register(self.pgid, false);
        }
    }
}
