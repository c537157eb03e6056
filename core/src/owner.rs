//! Which master process started something, recorded on what it leaves on other
//! systems (container labels, a run's owner object) so that `distarch gc` can tell
//! whether that master still runs. One identity, one set of keys and one liveness
//! rule for every transport.

use std::collections::BTreeMap;

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

/// Which master process started something.
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

/// Whether the master that started something still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterState {
    /// The master process runs on this machine.
    Alive,
    /// The master ran on this machine, in this boot and pid namespace, and its
    /// process is gone (or its pid now belongs to another process).
    Gone,
    /// The master ran on another machine, in another boot or pid namespace, or
    /// left no boot id: it cannot be told from here. `gc` leaves such things alone
    /// unless their run is named.
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

    /// The identity as key/value pairs, under the `MASTER_*` keys.
    pub fn entries(&self) -> [(&'static str, String); 5] {
        [
            (MASTER_HOST, self.host.clone()),
            (MASTER_BOOT, self.boot.clone()),
            (MASTER_PID, self.pid.to_string()),
            (MASTER_START, self.start.to_string()),
            (MASTER_PIDNS, self.pidns.clone()),
        ]
    }

    /// The identity as a map of its [`MasterIdentity::entries`].
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.entries()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// Reads an identity back from its entries (`get` looks a key up); `None` when
    /// the host or pid is missing or unreadable.
    pub fn from_entries<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        Some(MasterIdentity {
            host: get(MASTER_HOST)?.to_string(),
            boot: get(MASTER_BOOT).unwrap_or_default().to_string(),
            pid: get(MASTER_PID)?.parse().ok()?,
            start: get(MASTER_START).and_then(|s| s.parse().ok()).unwrap_or(0),
            pidns: get(MASTER_PIDNS).unwrap_or_default().to_string(),
        })
    }

    /// Whether this master still runs, judged from this machine.
    pub fn state(&self) -> MasterState {
        self.state_from(&MasterIdentity::current())
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
            Some(start) if self.start == 0 || start == self.start => MasterState::Alive,
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
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from
    // the last `)`. Field 3 is then the first after it; field 22 is the 20th.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn entries_read_back_to_the_same_identity() {
        let me = MasterIdentity::current();
        let map = me.to_map();
        let back = MasterIdentity::from_entries(|k| map.get(k).map(String::as_str)).unwrap();
        assert_eq!(back, me);
        assert!(MasterIdentity::from_entries(|_| None).is_none());
    }

    #[test]
    fn liveness_is_judged_only_on_the_same_machine_boot_and_namespace() {
        let me = MasterIdentity::current();
        assert_eq!(me.state(), MasterState::Alive);
        let reused = MasterIdentity {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.state_from(&me), MasterState::Gone);
        let dead = MasterIdentity {
            pid: u32::MAX - 1,
            ..me.clone()
        };
        assert_eq!(dead.state_from(&me), MasterState::Gone);
        for other in [
            MasterIdentity {
                host: format!("{}-elsewhere", me.host),
                ..dead.clone()
            },
            MasterIdentity {
                boot: "another-boot".into(),
                ..dead.clone()
            },
            MasterIdentity {
                pidns: "pid:[1]".into(),
                ..dead.clone()
            },
            MasterIdentity {
                boot: String::new(),
                ..dead.clone()
            },
        ] {
            assert_eq!(other.state_from(&me), MasterState::Unknown, "{other:?}");
        }
    }
}
