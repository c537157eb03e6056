//! Finding processes by a token in their command line, to prove nothing was left
//! behind.

use std::path::Path;
use std::time::Duration;

/// A token unique to this test process and call, to put in workers' arguments.
pub fn unique_token(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "dtok-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One process, as `/proc/PID/stat` shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Parent's pid.
    pub ppid: u32,
    /// Process group id.
    pub pgid: u32,
    /// `comm` name (what `killall` matches).
    pub name: String,
    /// Ended but not reaped.
    pub zombie: bool,
}

impl Proc {
    /// The command line, arguments joined by spaces (empty for kernel threads and
    /// processes already gone).
    pub fn cmdline(&self) -> String {
        let raw = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim_end()
            .to_string()
    }

    /// The current directory, if it can be read.
    pub fn cwd(&self) -> Option<std::path::PathBuf> {
        std::fs::read_link(format!("/proc/{}/cwd", self.pid)).ok()
    }
}

/// Every process of the machine, as one snapshot of `/proc` (the one scanner the
/// test kit has).
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (left, rest) = stat.rsplit_once(')')?;
            let name = left.split_once('(')?.1.to_string();
            // Fields after the name: state, ppid, pgrp, ...
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(Proc {
                pid,
                ppid: fields.get(1)?.parse().ok()?,
                pgid: fields.get(2)?.parse().ok()?,
                name,
                zombie: fields.first() == Some(&"Z"),
            })
        })
        .collect()
}

/// Every descendant of `root` (children, their children, ...), zombies included.
pub fn descendants(root: u32) -> Vec<u32> {
    let all = processes();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for child in all.iter().filter(|c| c.ppid == p) {
            out.push(child.pid);
            stack.push(child.pid);
        }
    }
    out
}

/// Pids of live (non-zombie) processes whose command line contains `token`.
pub fn pids_with_token(token: &str) -> Vec<u32> {
    let me = std::process::id();
    processes()
        .into_iter()
        .filter(|p| p.pid != me && !p.zombie && p.cmdline().contains(token))
        .map(|p| p.pid)
        .collect()
}

/// Fails the test if processes with `token` are still alive after `limit`; kills
/// them first so one failing test does not leak into the next.
pub fn assert_no_leftovers(token: &str, limit: Duration) {
    let gone = crate::wait_until(limit, || pids_with_token(token).is_empty());
    if !gone {
        let pids = pids_with_token(token);
        for pid in &pids {
            // SAFETY-free: kill via the command, no libc needed here.
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
        }
        panic!("processes left behind with token {token}: {pids:?}");
    }
}

/// Pids of live processes whose current directory is `dir` (a test's temp directory:
/// its master, the master's reaper and local workers all start there).
pub fn pids_in_dir(dir: &Path) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| !p.zombie && p.cwd().as_deref() == Some(dir))
        .map(|p| p.pid)
        .collect()
}

/// Fails the test if any process still runs in `dir` after `limit`.
pub fn assert_nothing_runs_in(dir: &Path, limit: Duration) {
    if !crate::wait_until(limit, || pids_in_dir(dir).is_empty()) {
        panic!(
            "processes still running in {}: {:?}",
            dir.display(),
            pids_in_dir(dir)
        );
    }
}

/// Children of `parent` with their process names.
pub fn children_of(parent: u32) -> Vec<(u32, String)> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == parent)
        .map(|p| (p.pid, p.name))
        .collect()
}

/// Live children of `parent` whose process name (`comm`, what `killall` matches)
/// is exactly `name`.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == parent && p.name == name && !p.zombie)
        .map(|p| p.pid)
        .collect()
}

/// What `killall -9 distarch` does to one master, without touching any other
/// `distarch` on the machine: SIGKILL to the master and to every child of it
/// named `distarch`, at once. Returns the pids killed.
pub fn killall_distarch(master: u32) -> Vec<u32> {
    let mut pids = children_named(master, "distarch");
    pids.push(master);
    let mut cmd = std::process::Command::new("kill");
    cmd.arg("-9");
    for p in &pids {
        cmd.arg(p.to_string());
    }
    let _ = cmd.status();
    pids
}

/// The cgroup v2 directory `distarch.<run_id>` of a run, if it exists (searched a
/// few levels under the cgroup2 mount).
pub fn run_cgroup(run_id: &str) -> Option<std::path::PathBuf> {
    let mount = cgroup2_mount()?;
    let name = format!("distarch.{run_id}");
    let mut level = vec![mount];
    for _ in 0..6 {
        let mut next = Vec::new();
        for dir in level {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    if e.file_name().to_str() == Some(name.as_str()) {
                        return Some(e.path());
                    }
                    next.push(e.path());
                }
            }
        }
        level = next;
    }
    None
}

/// Where cgroup v2 is mounted, if it is.
pub fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    })
}

/// True when this process may make cgroups in its own cgroup v2 directory (what
/// distarch needs to put local instances into cgroups).
pub fn cgroup2_writable() -> bool {
    let Some(mount) = cgroup2_mount() else {
        return false;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let probe = mount
        .join(rel.trim().trim_start_matches('/'))
        .join(format!("distarch-probe-{}", std::process::id()));
    let ok = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok
}

/// SIGKILLs the reaper (`distarch-watch`) of a running master, and waits until the
/// master has reaped it: for tests of what is left when nothing cleans up after a
/// killed master (then kill the master too). Returns the reaper's pid.
pub fn kill_reaper_of(master: u32) -> Option<u32> {
    let pid = *children_named(master, "distarch-watch").first()?;
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    crate::wait_until(Duration::from_secs(10), || !dir.exists());
    Some(pid)
}
