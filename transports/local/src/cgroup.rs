//! cgroup v2 for local instances: one cgroup per run, per group, per instance.
//!
//! Layout, under the cgroup the master was started in (its *base*):
//!
//! ```text
//! <base>/distarch.<run>/            the run: everything it started, nothing else
//!        distarch.<run>/master.<pid>/  the master itself (so its children are born inside)
//!        distarch.<run>/g.<group>/  one per group
//!        distarch.<run>/g.<group>/i.<id>.<restart>/  one per start of an instance
//! ```
//!
//! Because the master moves itself into the run before it starts anything, every
//! process it forks is inside the run from its first instruction: a master killed
//! between starting a worker and moving it to its instance cgroup leaves nothing
//! outside the run, and a worker that double-forks or calls `setsid` stays inside.
//! `cgroup.kill` of the run (by the reaper when the master dies, by `distarch gc`
//! or by the next launch) ends all of it. Only cgroup files are written here; no
//! `unsafe` is needed.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Prefix of a run's cgroup directory.
pub(crate) const RUN_PREFIX: &str = "distarch.";
/// Prefix of the master's own leaf inside a run: `master.<pid>`.
const MASTER_LEAF: &str = "master.";

/// Where the cgroup v2 hierarchy is mounted and where the master started.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    /// Mount point of the cgroup2 file system.
    pub(crate) mount: PathBuf,
    /// The master's cgroup at start-up (under `mount`).
    pub(crate) base: PathBuf,
}

/// Finds the cgroup2 mount and the master's cgroup, or says why there is none.
pub(crate) fn detect() -> Result<Hierarchy, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (mount, root) = parse_mountinfo(&mountinfo).ok_or("no cgroup2 file system is mounted")?;
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let rel = parse_own_cgroup(&own).ok_or("this process has no cgroup v2 membership")?;
    // With a cgroup namespace the mount's root is "/" already; without one the
    // mount may show a sub-tree, and the path is relative to the real root.
    let rel = rel
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(&rel)
        .trim_start_matches('/')
        .to_string();
    let base = mount.join(rel);
    if !base.join("cgroup.procs").exists() {
        return Err(format!("{} is not a cgroup directory", base.display()));
    }
    Ok(Hierarchy { mount, base })
}

/// The first cgroup2 mount in `/proc/self/mountinfo`: (mount point, root).
fn parse_mountinfo(text: &str) -> Option<(PathBuf, String)> {
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        let root = fields.get(3)?.to_string();
        let mount = fields.get(4)?.replace("\\040", " ");
        Some((PathBuf::from(mount), root))
    })
}

/// The `0::/path` line of `/proc/self/cgroup`.
fn parse_own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_string())
}

/// A name made fit for a cgroup directory.
fn dir_name(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{clean}")
}

/// Resource limits of one instance, written to its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Limits {
    /// `memory.max` in bytes.
    pub(crate) memory: Option<i64>,
    /// CPU cores (`cpu.max` quota over a 100 ms period).
    pub(crate) cpus: Option<f64>,
    /// `pids.max`.
    pub(crate) pids: Option<i64>,
}

impl Limits {
    /// The controllers these limits need.
    pub(crate) fn controllers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.memory.is_some() {
            out.push("memory");
        }
        if self.cpus.is_some() {
            out.push("cpu");
        }
        if self.pids.is_some() {
            out.push("pids");
        }
        out
    }

    /// The files to write and their contents.
    pub(crate) fn files(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(m) = self.memory {
            out.push(("memory.max", m.to_string()));
        }
        if let Some(c) = self.cpus {
            let period = 100_000u64;
            let quota = ((c * period as f64).round() as u64).max(1000);
            out.push(("cpu.max", format!("{quota} {period}")));
        }
        if let Some(p) = self.pids {
            out.push(("pids.max", p.to_string()));
        }
        out
    }
}

/// The controllers missing from `dir/cgroup.controllers` among `wanted`.
pub(crate) fn missing_controllers(dir: &Path, wanted: &[&str]) -> Vec<String> {
    let have = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let have: HashSet<&str> = have.split_whitespace().collect();
    wanted
        .iter()
        .filter(|c| !have.contains(**c))
        .map(|c| c.to_string())
        .collect()
}

/// The run's cgroup, made by the master at its first local start.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    /// `<base>/distarch.<run>`.
    pub(crate) dir: PathBuf,
    base: PathBuf,
    /// Group directories made so far, and the controllers enabled in each.
    made: Mutex<HashSet<PathBuf>>,
    /// Directories whose `cgroup.subtree_control` has which controllers turned on.
    enabled: Mutex<HashSet<(PathBuf, &'static str)>>,
}

impl RunCgroup {
    /// Removes what dead runs left beside this one, makes the run's cgroup and
    /// moves the master into its `master` leaf.
    pub(crate) fn create(h: &Hierarchy, run_id: &str) -> io::Result<RunCgroup> {
        gc_dir(&h.base, false);
        let dir = h.base.join(dir_name(RUN_PREFIX, run_id));
        if dir.exists() {
            // A run id given again with --run-id: what the old run left goes.
            kill_tree(&dir, Duration::from_secs(2));
        }
        mkdir(&dir)?;
        let master = dir.join(format!("{MASTER_LEAF}{}", std::process::id()));
        mkdir(&master)?;
        write(
            &master.join("cgroup.procs"),
            &std::process::id().to_string(),
        )?;
        Ok(RunCgroup {
            dir,
            base: h.base.clone(),
            made: Mutex::new(HashSet::new()),
            enabled: Mutex::new(HashSet::new()),
        })
    }

    /// Makes the cgroup of one start of an instance, with its limits.
    pub(crate) fn instance(
        &self,
        group: &str,
        id: u64,
        restart: u32,
        limits: &Limits,
    ) -> io::Result<InstanceCgroup> {
        let group_dir = self.dir.join(dir_name("g.", group));
        {
            // Held while the directory is made, so that no other start of the
            // group goes on before it exists.
            let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
            if !made.contains(&group_dir) {
                mkdir(&group_dir)?;
                made.insert(group_dir.clone());
            }
        }
        let controllers = limits.controllers();
        if !controllers.is_empty() {
            for dir in [&self.base, &self.dir, &group_dir] {
                self.enable(dir, &controllers)?;
            }
        }
        let dir = group_dir.join(format!("i.{id}.{restart}"));
        if dir.exists() {
            kill_tree(&dir, Duration::from_secs(1));
        }
        mkdir(&dir)?;
        for (file, value) in limits.files() {
            write(&dir.join(file), &value)?;
        }
        Ok(InstanceCgroup { dir })
    }

    /// Turns controllers on in `dir/cgroup.subtree_control` (once per directory).
    fn enable(&self, dir: &Path, controllers: &[&'static str]) -> io::Result<()> {
        for c in controllers {
            let key = (dir.to_path_buf(), *c);
            if self
                .enabled
                .lock()
                .map(|e| e.contains(&key))
                .unwrap_or(false)
            {
                continue;
            }
            let on = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if !on.split_whitespace().any(|x| x == *c) {
                write(&dir.join("cgroup.subtree_control"), &format!("+{c}")).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "cannot turn on the `{c}` controller for {} ({e}); a cgroup \
                             that holds processes cannot hand controllers down: start \
                             distarch in a cgroup of its own (e.g. systemd-run --scope -p \
                             Delegate=yes)",
                            dir.display()
                        ),
                    )
                })?;
            }
            if let Ok(mut e) = self.enabled.lock() {
                e.insert(key);
            }
        }
        Ok(())
    }

    /// Moves a freshly started worker from the master's leaf into its instance's
    /// cgroup, with whatever it already started there: a worker that forked (or
    /// double-forked) in the microseconds before the move has its children
    /// inside the master's leaf; every process there whose parent chain leads to
    /// the worker follows it. A child whose parent already exited is left in the
    /// run (it ends with the run, not with the instance).
    pub(crate) fn adopt(&self, cg: &InstanceCgroup, pid: i32) -> io::Result<()> {
        cg.adopt(pid)?;
        let master = std::process::id() as i32;
        let leaf = self.dir.join(format!("{MASTER_LEAF}{master}"));
        for _ in 0..10 {
            let strays: Vec<i32> = procs(&leaf)
                .into_iter()
                .filter(|p| *p != master && descends_from(*p, pid, master))
                .collect();
            if strays.is_empty() {
                break;
            }
            for p in strays {
                let _ = cg.adopt(p);
            }
        }
        Ok(())
    }

    /// At the end of the run: moves the master back where it started, kills what
    /// is left and removes the run's cgroups. False when the master could not
    /// move back (the reaper removes them once the master has exited).
    pub(crate) fn finish(&self) -> bool {
        let pid = std::process::id().to_string();
        if write(&self.base.join("cgroup.procs"), &pid).is_err() {
            return false;
        }
        kill_tree(&self.dir, Duration::from_secs(2))
    }
}

/// The cgroup of one start of one instance.
#[derive(Debug)]
pub(crate) struct InstanceCgroup {
    dir: PathBuf,
}

impl InstanceCgroup {
    /// Moves a freshly started worker in.
    pub(crate) fn adopt(&self, pid: i32) -> io::Result<()> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    /// Every process inside.
    pub(crate) fn pids(&self) -> Vec<i32> {
        procs(&self.dir)
    }

    /// SIGKILL to everything inside (`cgroup.kill`).
    pub(crate) fn kill(&self) -> io::Result<()> {
        write(&self.dir.join("cgroup.kill"), "1")
    }

    /// True while a process is inside.
    pub(crate) fn populated(&self) -> bool {
        populated(&self.dir)
    }

    /// Removes the (empty) cgroup.
    pub(crate) fn remove(&self) -> io::Result<()> {
        match fs::remove_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// The directory, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

/// True when `ancestor` is a parent, grand-parent... of `pid` (stopping at `stop`).
fn descends_from(pid: i32, ancestor: i32, stop: i32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        match crate::unix::parent_of(p) {
            Some(parent) if parent == ancestor => return true,
            Some(parent) if parent > 1 && parent != stop => p = parent,
            _ => return false,
        }
    }
    false
}

fn mkdir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    }
}

fn write(file: &Path, value: &str) -> io::Result<()> {
    fs::write(file, value)
}

fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn populated(dir: &Path) -> bool {
    match fs::read_to_string(dir.join("cgroup.events")) {
        Ok(text) => text.lines().any(|l| l.trim() == "populated 1"),
        Err(_) => false,
    }
}

/// SIGKILLs everything under `dir`, waits (up to `limit`) until it is empty and
/// removes it with its sub-cgroups. True when it is gone.
pub(crate) fn kill_tree(dir: &Path, limit: Duration) -> bool {
    if !dir.exists() {
        return true;
    }
    if write(&dir.join("cgroup.kill"), "1").is_err() {
        // Kernels before 5.14 have no cgroup.kill: signal every process instead.
        for pid in all_procs(dir) {
            let _ = crate::unix::signal_pid(pid, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + limit;
    while populated(dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    remove_tree(dir);
    !dir.exists()
}

fn all_procs(dir: &Path) -> Vec<i32> {
    let mut out = procs(dir);
    for sub in subdirs(dir) {
        out.extend(all_procs(&sub));
    }
    out
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_tree(dir: &Path) {
    for sub in subdirs(dir) {
        remove_tree(&sub);
    }
    let _ = fs::remove_dir(dir);
}

/// True when the run cgroup `dir` belongs to a master that is gone: the master
/// named by its `master.<pid>` leaf is not in that leaf, and the master had moved
/// in (the leaf holds workers it started, or group cgroups exist: both only come
/// after that) or the run is older than a moment (a master that just made it may
/// not have moved in yet).
fn is_dead_run(dir: &Path) -> bool {
    let subs = subdirs(dir);
    let leaf = subs.iter().find_map(|d| {
        let pid = d.file_name()?.to_str()?.strip_prefix(MASTER_LEAF)?;
        Some((d.clone(), pid.parse::<i32>().ok()?))
    });
    let in_leaf = leaf
        .as_ref()
        .map(|(leaf, _)| procs(leaf))
        .unwrap_or_default();
    if leaf.is_some_and(|(_, pid)| in_leaf.contains(&pid)) {
        return false;
    }
    let started = !in_leaf.is_empty()
        || subs.iter().any(|d| {
            d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with(MASTER_LEAF))
        });
    let young = fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|age| age < Duration::from_secs(2))
        .unwrap_or(true);
    started || !young
}

/// Kills and removes the dead runs directly under `dir`; returns what it did,
/// one line per run.
fn gc_dir(dir: &Path, dry_run: bool) -> Vec<String> {
    let mut out = Vec::new();
    for sub in subdirs(dir) {
        let name = sub.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with(RUN_PREFIX) || !is_dead_run(&sub) {
            continue;
        }
        let count = all_procs(&sub).len();
        if dry_run {
            out.push(format!(
                "would kill {count} process(es) and remove {}",
                sub.display()
            ));
        } else if kill_tree(&sub, Duration::from_secs(5)) {
            out.push(format!(
                "killed {count} process(es), removed {}",
                sub.display()
            ));
        } else {
            out.push(format!(
                "killed {count} process(es), could not remove {}",
                sub.display()
            ));
        }
    }
    out
}

/// `distarch gc` for local instances: every run cgroup of a dead master anywhere
/// in the hierarchy (searched a few levels deep). Returns one line per run.
pub fn gc(dry_run: bool) -> Vec<String> {
    let Ok(h) = detect() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut level = vec![h.mount];
    for _ in 0..6 {
        let mut next = Vec::new();
        for dir in &level {
            out.extend(gc_dir(dir, dry_run));
            next.extend(subdirs(dir).into_iter().filter(|d| {
                !d.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(RUN_PREFIX))
            }));
        }
        level = next;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_among_v1_mounts() {
        let text = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    35 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let (mount, root) = parse_mountinfo(text).unwrap();
        assert_eq!(mount, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(root, "/");
        assert!(parse_mountinfo("30 25 0:26 / /x rw - cgroup cgroup rw\n").is_none());
    }

    #[test]
    fn reads_the_unified_line_of_proc_self_cgroup() {
        let text = "4:memory:/a/b\n0::/user.slice/session-1.scope\n";
        assert_eq!(
            parse_own_cgroup(text).unwrap(),
            "/user.slice/session-1.scope"
        );
        assert!(parse_own_cgroup("4:memory:/a\n").is_none());
    }

    #[test]
    fn limits_become_cgroup_files_like_dockers() {
        let l = Limits {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(10),
        };
        assert_eq!(l.controllers(), ["memory", "cpu", "pids"]);
        assert_eq!(
            l.files(),
            [
                ("memory.max", "67108864".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("pids.max", "10".to_string())
            ]
        );
        assert!(Limits::default().files().is_empty());
    }

    #[test]
    fn names_are_fit_for_directories() {
        assert_eq!(dir_name("g.", "a/b c"), "g.a_b_c");
        assert_eq!(dir_name(RUN_PREFIX, "..x"), "distarch...x");
    }
}
