//! Who this master process is (host, pid, process start time, boot id), recorded on
//! each run's owner object and compared by `distarch gc`.

use crate::pod::MasterIdentity;

/// The identity of the current process.
pub fn current() -> MasterIdentity {
    let pid = std::process::id();
    MasterIdentity {
        host: hostname(),
        pid,
        start_ticks: start_ticks(pid).unwrap_or(0),
        boot_id: boot_id(),
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// This machine's boot id (empty when unknown).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), or `None` when there is no such process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow its ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// True when the master described by `m` still runs on this machine.
pub fn is_alive(m: &MasterIdentity) -> bool {
    if !m.boot_id.is_empty() && m.boot_id != boot_id() {
        return false;
    }
    match start_ticks(m.pid) {
        Some(ticks) => m.start_ticks == 0 || ticks == m.start_ticks,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_is_not() {
        let me = current();
        assert!(me.start_ticks > 0);
        assert!(is_alive(&me));
        let other = MasterIdentity {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(
            !is_alive(&other),
            "a reused pid must not count as the master"
        );
        let gone = MasterIdentity {
            pid: u32::MAX - 1,
            ..me
        };
        assert!(!is_alive(&gone));
    }
}
