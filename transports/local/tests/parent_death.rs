//! Without the reaper, the parent-death signal alone ends a worker whose master was
//! SIGKILLed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True while `pid` runs `sleep` (and is not a zombie).
fn alive(pid: &str) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmd).starts_with("sleep")
}

#[test]
fn a_sigkilled_master_takes_its_worker_along_without_the_reaper() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/master_without_reaper");
    assert!(
        example.exists(),
        "build the example first (cargo test builds it): {}",
        example.display()
    );
    let mut master = Command::new(example)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(master.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line
        .trim()
        .strip_prefix("worker pid ")
        .expect("worker pid N")
        .to_string();
    assert!(alive(&pid), "the worker runs");
    master.kill().unwrap(); // SIGKILL
    master.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(&pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(&pid), "the worker outlived its SIGKILLed master");
}
