//! The labels distarch puts on its containers, and the identity of the master that
//! lets `gc` tell whether a container's run is still alive.

use std::collections::HashMap;

/// Run id of the container (`docker ps --filter label=distarch.run=ID`).
pub const RUN: &str = "distarch.run";
/// Group name.
pub const GROUP: &str = "distarch.group";
/// Placement name.
pub const PLACEMENT: &str = "distarch.placement";
/// Global instance id.
pub const ID: &str = "distarch.id";
/// Restart count of this start.
pub const RESTART: &str = "distarch.restart";
/// `true` when the master removes the container after it ended.
pub const AUTO_REMOVE: &str = "distarch.auto-remove";
/// Host name of the master's machine.
pub const MASTER_HOST: &str = "distarch.master.host";
/// Boot id of the master's machine (`/proc/sys/kernel/random/boot_id`).
pub const MASTER_BOOT: &str = "distarch.master.boot";
/// Process id of the master.
pub const MASTER_PID: &str = "distarch.master.pid";
/// Start time of the master process, in clock ticks since boot (tells a reused pid
/// apart).
pub const MASTER_START: &str = "distarch.master.start";
/// The master's pid namespace (`pid:[N]`): pids of other namespaces mean nothing here.
pub const MASTER_PIDNS: &str = "distarch.master.pidns";

/// Which master process started a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterIdentity {
    /// Host name of the machine.
    pub host: String,
    /// Boot id of the machine (empty when unknown).
    pub boot: String,
    /// Process id.
    pub pid: u32,
    /// Process start time in clock ticks since boot (0 when unknown).
    pub start: u64,
    /// Pid namespace (`pid:[N]`, empty when unknown).
    pub pidns: String,
}

/// Whether a container's master is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterState {
    /// The master process runs on this machine.
    Alive,
    /// The master was on this machine (same boot) and is gone.
    Gone,
    /// The master ran on another machine or before a reboot: cannot tell.
    Unknown,
}

impl MasterIdentity {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        MasterIdentity {
            host: read_trimmed("/proc/sys/kernel/hostname"),
            boot: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pid,
            start: process_start(pid).unwrap_or(0),
            pidns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// The labels that record this identity.
    pub fn labels(&self) -> [(&'static str, String); 5] {
        [
            (MASTER_HOST, self.host.clone()),
            (MASTER_BOOT, self.boot.clone()),
            (MASTER_PID, self.pid.to_string()),
            (MASTER_START, self.start.to_string()),
            (MASTER_PIDNS, self.pidns.clone()),
        ]
    }

    /// Reads an identity back from container labels.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        Some(MasterIdentity {
            host: labels.get(MASTER_HOST)?.clone(),
            boot: labels.get(MASTER_BOOT)?.clone(),
            pid: labels.get(MASTER_PID)?.parse().ok()?,
            start: labels.get(MASTER_START)?.parse().ok()?,
            pidns: labels.get(MASTER_PIDNS).cloned().unwrap_or_default(),
        })
    }

    /// Whether this master still runs, judged from the machine `here` is on.
    pub fn state_from(&self, here: &MasterIdentity) -> MasterState {
        if self.boot.is_empty()
            || self.boot != here.boot
            || self.host != here.host
            || self.pidns != here.pidns
        {
            return MasterState::Unknown;
        }
        match process_start(self.pid) {
            Some(start) if start == self.start => MasterState::Alive,
            _ => MasterState::Gone,
        }
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), or `None` when there is no such process.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from
    // the last `)`. Field 3 is then the first after it; field 22 is the 20th.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive() {
        let me = MasterIdentity::current();
        assert!(me.start > 0);
        assert_eq!(me.state_from(&me), MasterState::Alive);
        let labels: HashMap<String, String> = me
            .labels()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(MasterIdentity::from_labels(&labels), Some(me.clone()));
    }

    #[test]
    fn reused_pid_or_other_machine() {
        let me = MasterIdentity::current();
        let reused = MasterIdentity {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.state_from(&me), MasterState::Gone);
        let elsewhere = MasterIdentity {
            boot: "other".into(),
            ..me.clone()
        };
        assert_eq!(elsewhere.state_from(&me), MasterState::Unknown);
        let other_container = MasterIdentity {
            pidns: "pid:[1]".into(),
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(other_container.state_from(&me), MasterState::Unknown);
    }

    #[test]
    fn gone_process() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = process_start(pid);
        child.wait().unwrap();
        let me = MasterIdentity::current();
        let dead = MasterIdentity {
            pid,
            start: start.unwrap_or(1),
            ..me.clone()
        };
        assert_eq!(dead.state_from(&me), MasterState::Gone);
    }
}
