//! The local [`Transport`]: one process (group) per instance.

use crate::settings::LocalSettings;
use crate::{reaper, unix};
use async_trait::async_trait;
use distarch_core::{
    config::StopSignal, ConfigError, ExitStatus, Instance, InstanceError, InstanceIo, InstanceSpec,
    PlacementRef, SpawnError, Target, Transport,
};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Starts instances as local processes.
#[derive(Debug, Clone, Default)]
pub struct LocalTransport {
    name: String,
}

impl LocalTransport {
    /// The transport, registered as `local`.
    pub fn new() -> Self {
        Self::named("local")
    }

    /// The same transport under another name (e.g. to wrap it).
    pub fn named(name: impl Into<String>) -> Self {
        LocalTransport { name: name.into() }
    }

    /// Starts one local instance (also usable by transports that wrap this one).
    pub fn start(&self, spec: &InstanceSpec) -> Result<LocalInstance, SpawnError> {
        let Some((program, args)) = spec.command.split_first() else {
            return Err(SpawnError::new("the command is empty"));
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
        // The parent-death signal and the nice value need code between fork and exec,
        // which forces a full fork() of the master (measured: ~1.3 ms of kernel time
        // per instance, 2-4x slower starts at 1000 instances) instead of the cheap
        // vfork-style spawn. While the reaper runs, it already kills every worker
        // group the moment the master dies, so that cost is only paid without it, or
        // when a nice value is asked for.
        if spec.priority.is_some() || !reaper::is_alive() {
            unix::set_child_setup(&mut command, spec.priority);
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
        reaper::register(pid, true);
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
            registered: true,
        })
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<Vec<Target>, ConfigError> {
        let settings: LocalSettings = placement.parse_settings()?;
        Ok(vec![Target {
            address: "local".into(),
            host: settings.host.unwrap_or_else(|| "localhost".into()),
            instances: placement.instances,
        }])
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        Ok(Box::new(self.start(spec)?))
    }
}

/// A running local process group.
#[derive(Debug)]
pub struct LocalInstance {
    child: Child,
    pgid: i32,
    io: Option<InstanceIo>,
    registered: bool,
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
        self.signal(libc::SIGTERM, "terminate")
    }

    async fn kill(&mut self) -> Result<(), InstanceError> {
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
        // The worker has ended: whatever it left in its group goes too, so that a
        // restart never runs beside leftovers of the previous start.
        let _ = unix::signal_group(self.pgid, libc::SIGKILL);
        if self.registered {
            reaper::register(self.pgid, false);
            self.registered = false;
        }
    }
}

impl Drop for LocalInstance {
    fn drop(&mut self) {
        if self.registered {
            let _ = unix::signal_group(self.pgid, libc::SIGKILL);
            reaper::register(self.pgid, false);
        }
    }
}
