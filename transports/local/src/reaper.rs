//! The reaper: a tiny process forked at start-up that cleans up after the master
//! the moment the master is gone, however it went (SIGKILL and OOM kill included).
//!
//! It is named [`PROCESS_NAME`], not `distarch`, so `killall -9 distarch` (which
//! matches the process name) takes the master and leaves the reaper to do its job;
//! it asks the OOM killer to spare it. The master tells it, one line each, on a pipe:
//!
//! - `+PGID` / `-PGID`: a worker process group started / is gone (used when cgroups
//!   are not available);
//! - `c+DIR` / `c-DIR`: the run's cgroup was made / was removed by the master;
//! - `G` / `D`: run `distarch gc` (given at install) if the master dies / do not;
//! - an empty line: a ping.
//!
//! When the pipe reaches end-of-file (the kernel closes the master's end when the
//! master exits, whatever the cause), the reaper SIGKILLs every registered group,
//! kills and removes every registered cgroup (`cgroup.kill`: every descendant,
//! double-forked or not), runs the gc when armed (so containers and pods of a dead
//! master go within seconds), and exits.

use crate::{cgroup, unix};
use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The reaper's process name (what `ps` shows and `killall` matches).
pub const PROCESS_NAME: &CStr = c"distarch-watch";

struct Reaper {
    pipe: Mutex<File>,
    pid: i32,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

/// Forks the reaper. Call it first thing in `main`, before any thread (and so
/// before any async runtime) exists; later calls do nothing. Without it, workers
/// still die with the master (parent-death signal) but their own children may not.
pub fn install_reaper() -> io::Result<()> {
    install_reaper_with_gc(Vec::new())
}

/// [`install_reaper`], and when the master dies while the gc is armed (see
/// [`arm_gc`]), the reaper replaces itself with this binary run with `gc_args`
/// (e.g. `["distarch", "gc", "-c", "distarch.toml"]`; the first is the name).
pub fn install_reaper_with_gc(gc_args: Vec<String>) -> io::Result<()> {
    if REAPER.get().is_some() {
        return Ok(());
    }
    let gc: Vec<CString> = gc_args
        .into_iter()
        .filter_map(|a| CString::new(a).ok())
        .collect();
    let forked = unix::fork_reaper(move |fd| reaper_main(fd, &gc))?;
    let pid = forked.pid;
    let _ = REAPER.set(Reaper {
        pipe: Mutex::new(File::from(forked.write_fd)),
        pid,
    });
    // Notice a reaper that dies alone (killed by hand, by the OOM killer): say so
    // once, since from then on a killed master may leave workers behind.
    let _ = std::thread::Builder::new()
        .name("reaper-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            unix::wait_child(pid);
            tracing::warn!(
                "the reaper process (pid {pid}) is gone; workers \
                 started from now on get the parent-death signal, but what they start \
                 may outlive a killed master"
            );
        });
    Ok(())
}

/// The reaper's process id, when it was installed.
pub fn reaper_pid() -> Option<u32> {
    REAPER.get().map(|r| r.pid as u32)
}

/// From now on, a master that dies makes the reaper run the gc given at install.
pub fn arm_gc() {
    send(b"G\n");
}

/// The master is ending normally: no gc is needed if it exits now.
pub fn disarm_gc() {
    send(b"D\n");
}

/// Tells the reaper about a process group (`add`) or that it is gone.
pub(crate) fn register(pgid: i32, add: bool) {
    let line = format!("{}{pgid}\n", if add { '+' } else { '-' });
    send(line.as_bytes());
}

/// Tells the reaper about the run's cgroup (`add`) or that it is gone.
pub(crate) fn register_cgroup(dir: &std::path::Path, add: bool) {
    let line = format!("c{}{}\n", if add { '+' } else { '-' }, dir.display());
    send(line.as_bytes());
}

/// True when the reaper is installed and still reading its pipe: then it alone
/// guarantees that no worker group outlives the master, and workers can be started
/// without a `fork()` of the master (see the transport). Costs one tiny write.
pub(crate) fn is_alive() -> bool {
    REAPER.get().is_some() && send(b"\n")
}

/// Writes to the reaper's pipe; false when there is no reaper or it is gone.
fn send(bytes: &[u8]) -> bool {
    let Some(reaper) = REAPER.get() else {
        return false;
    };
    match reaper.pipe.lock() {
        // A few bytes to a pipe the reaper drains continuously: this does not block
        // for long. A write error (EPIPE) means the reaper is gone.
        Ok(mut pipe) => pipe.write_all(bytes).is_ok(),
        Err(_) => false,
    }
}

fn reaper_main(read_fd: OwnedFd, gc: &[CString]) {
    let mut groups: HashSet<i32> = HashSet::new();
    let mut cgroups: HashSet<PathBuf> = HashSet::new();
    let mut gc_armed = false;
    let reader = BufReader::new(File::from(read_fd));
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if let Some(dir) = line.strip_prefix("c+") {
            cgroups.insert(PathBuf::from(dir));
            continue;
        }
        if let Some(dir) = line.strip_prefix("c-") {
            cgroups.remove(&PathBuf::from(dir));
            continue;
        }
        match line.as_str() {
            "G" => gc_armed = true,
            "D" => gc_armed = false,
            _ => {}
        }
        let (op, num) = line.split_at(line.len().min(1));
        let Ok(pgid) = num.trim().parse::<i32>() else {
            continue;
        };
        match op {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    for pgid in groups {
        let _ = unix::signal_group(pgid, libc::SIGKILL);
    }
    for dir in cgroups {
        cgroup::kill_tree(&dir, Duration::from_secs(5));
    }
    if gc_armed && gc.len() > 1 {
        let _ = unix::exec_self(gc);
    }
}
