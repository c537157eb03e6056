//! The reaper: a tiny process forked at start-up that kills every worker process
//! group of the master the moment the master is gone, however it went.
//!
//! The master tells it `+PGID` when a group starts and `-PGID` when the group is
//! gone, one line each, on a pipe. When the pipe reaches end-of-file (the master
//! exited, crashed or was SIGKILLed: the kernel closes its end), the reaper sends
//! SIGKILL to every group still registered and exits.

use crate::unix;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, OnceLock};

static REAPER: OnceLock<Mutex<File>> = OnceLock::new();

/// Forks the reaper. Call it first thing in `main`, before any thread (and so
/// before any async runtime) exists; later calls do nothing. Without it, workers
/// still die with the master (parent-death signal) but their own children may not.
pub fn install_reaper() -> io::Result<()> {
    if REAPER.get().is_some() {
        return Ok(());
    }
    let forked = unix::fork_reaper(reaper_main)?;
    let _ = REAPER.set(Mutex::new(File::from(forked.write_fd)));
    Ok(())
}

/// Tells the reaper about a process group (`add`) or that it is gone.
pub(crate) fn register(pgid: i32, add: bool) {
    let line = format!("{}{pgid}\n", if add { '+' } else { '-' });
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
    let Some(lock) = REAPER.get() else {
        return false;
    };
    match lock.lock() {
        // A few bytes to a pipe the reaper drains continuously: this does not block
        // for long. A write error (EPIPE) means the reaper is gone.
        Ok(mut pipe) => pipe.write_all(bytes).is_ok(),
        Err(_) => false,
    }
}

fn reaper_main(read_fd: OwnedFd) -> ! {
    let mut groups: HashSet<i32> = HashSet::new();
    let reader = BufReader::new(File::from(read_fd));
    for line in reader.lines() {
        let Ok(line) = line else { break };
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
    unix::exit_now(0)
}
