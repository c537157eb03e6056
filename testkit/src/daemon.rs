//! What the daemons the harness starts (dockerd, the Kubernetes components) have in
//! common: each runs in a process group of its own with its output appended to a
//! log file in its temp dir; stopping one sends SIGTERM, waits, then SIGKILLs it and
//! whatever is left of its group; the mounts it may leave below its temp dir are
//! unmounted lazily; one instance is shared by the tests of a binary that run at
//! the same time.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Starts `program` with `args`, stdin closed, stdout and stderr appended to `log`,
/// in a process group of its own.
pub(crate) fn spawn_logged<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    log: &Path,
) -> std::io::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
}

/// Sends `signal` (`-TERM`, `-KILL`) to `pid`, quietly.
pub(crate) fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops a process started by [`spawn_logged`]: SIGTERM, up to `limit` to exit,
/// then SIGKILL; and SIGKILL to whatever is left of its process group.
pub(crate) fn stop_group(child: &mut Child, limit: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        kill(child.id(), "-TERM");
        let stopped = crate::wait_until(limit, || matches!(child.try_wait(), Ok(Some(_))));
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
    for pid in group_members(child.id()) {
        kill(pid, "-KILL");
    }
}

/// Live processes whose process group is `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    crate::procs::processes()
        .into_iter()
        .filter(|p| p.pgid == pgid && !p.zombie)
        .map(|p| p.pid)
        .collect()
}

/// Mount points at or below `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points
}

/// Unmounts (lazily) every mount at or below `dir`, which would otherwise keep it
/// from being deleted.
pub(crate) fn unmount_under(dir: &Path) {
    for point in mounts_under(dir) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&point)
            .stderr(Stdio::null())
            .status();
    }
}

/// The last `n` lines of the file at `path` (empty if it cannot be read).
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The instance in `slot` if one is still in use, else a new one from `start`;
/// it is stopped (dropped) when the last `Arc` goes.
pub(crate) fn shared<T>(slot: &Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = slot.upgrade() {
        return t;
    }
    let t = Arc::new(start());
    *slot = Arc::downgrade(&t);
    t
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
