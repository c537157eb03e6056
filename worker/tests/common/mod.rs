//! A harness that runs a worker program as a child with piped stdin/stdout, the
//! way the master does, and reads what it says with `distarch_protocol`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use distarch_protocol::{
    encode_master_frame, env_vars, parse_worker_line, LineSplitter, MasterFrame, WorkerFrame,
    WorkerLine, DEFAULT_MAX_LINE,
};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Longest a test waits for anything; only reached when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The workspace root (where `examples/` is).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a cargo example of this crate, built by `cargo test` next to the tests.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test -p distarch-worker` (which builds the examples)",
        path.display()
    );
    path
}

/// The variables the master would give instance 5 (2nd of 3 in group `first`).
pub fn distarch_env(cmd: &mut Command, params: &str) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DISTARCH_") {
            cmd.env_remove(key);
        }
    }
    cmd.env(env_vars::PROTOCOL, "1")
        .env(env_vars::RUN_ID, "t3st")
        .env(env_vars::ID, "5")
        .env(env_vars::GROUP, "first")
        .env(env_vars::GROUP_ID, "2")
        .env(env_vars::GROUP_COUNT, "3")
        .env(env_vars::HOST, "localhost")
        .env(env_vars::RESTART, "0")
        .env(env_vars::PARAMS, params);
}

/// A running worker child; killed on drop.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<WorkerLine>,
    /// Everything received so far, for failure messages.
    pub seen: Vec<WorkerLine>,
}

impl Worker {
    pub fn spawn(mut cmd: Command) -> Worker {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn worker");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut splitter = LineSplitter::new(DEFAULT_MAX_LINE);
            let mut buf = [0u8; 4096];
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                splitter.feed(&buf[..n], |l| {
                    let _ = tx.send(parse_worker_line(l.bytes));
                });
            }
            splitter.finish(|l| {
                let _ = tx.send(parse_worker_line(l.bytes));
            });
        });
        Worker {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the first line matching `want`; panics with everything seen so
    /// far if it does not come before the deadline or stdout closes.
    pub fn expect(&mut self, what: &str, want: impl Fn(&WorkerLine) -> bool) -> WorkerLine {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}; seen: {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed before {what}; seen: {:#?}", self.seen)
                }
            }
        }
    }

    /// Waits for a given frame.
    pub fn expect_frame(&mut self, frame: WorkerFrame) {
        let what = format!("{frame:?}");
        self.expect(&what, |l| *l == WorkerLine::Frame(frame.clone()));
    }

    /// Reads everything until the child closes stdout.
    pub fn drain(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("stdout still open; seen: {:#?}", self.seen)
                }
            }
        }
    }

    pub fn send_stop(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(&encode_master_frame(&MasterFrame::Stop))
            .unwrap();
        stdin.flush().unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin: "the master is gone".
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the child to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit; seen: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
