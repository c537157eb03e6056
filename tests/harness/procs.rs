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

/// Pids of live (non-zombie) processes whose command line contains `token`.
pub fn pids_with_token(token: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        if cmdline.is_empty() || is_zombie(&dir) {
            continue;
        }
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(token) {
            out.push(pid);
        }
    }
    out
}

fn is_zombie(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
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
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            (cwd == dir && !is_zombie(&e.path())).then_some(pid)
        })
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
