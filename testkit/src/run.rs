//! Running the `distarch` binary in a temp directory with a config file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A temp directory holding a config, from which `distarch` runs.
pub struct Distarch {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What a finished run printed and returned.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output (the log).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Lines of stdout containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<&str> {
        self.stdout.lines().filter(|l| l.contains(needle)).collect()
    }

    /// Panics with the whole output unless exactly `count` stdout lines contain `needle`.
    pub fn assert_count(&self, needle: &str, count: usize) {
        let found = self.lines_with(needle).len();
        assert_eq!(found, count, "lines with `{needle}`\n{self}");
    }

    /// Panics with the whole output unless stdout contains `needle`.
    pub fn assert_has(&self, needle: &str) {
        assert!(
            self.stdout.contains(needle),
            "expected `{needle}` in output:\n{self}"
        );
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Default for Distarch {
    fn default() -> Self {
        Self::new()
    }
}

impl Distarch {
    /// A fresh temp directory.
    pub fn new() -> Self {
        Distarch {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `distarch.toml` (or another file name) in the directory.
    pub fn config(self, text: &str) -> Self {
        self.file("distarch.toml", text)
    }

    /// Writes a file in the directory.
    pub fn file(self, name: &str, text: &str) -> Self {
        std::fs::write(self.dir.path().join(name), text).expect("write file");
        self
    }

    /// Sets an environment variable for distarch.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::distarch_bin());
        cmd.args(args).current_dir(self.dir.path());
        // Never let the developer's own DISTARCH_* variables change a test.
        for (key, _) in std::env::vars() {
            if key.starts_with("DISTARCH_") {
                cmd.env_remove(key);
            }
        }
        // Help texts wrap at the terminal width: fix it so output is the same everywhere.
        cmd.env("COLUMNS", "100");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `distarch ARGS` to its end (killing it after `limit`), capturing output.
    pub fn run(&self, args: &[&str], limit: Duration) -> Output {
        let mut running = self.spawn(args);
        running.wait(limit)
    }

    /// Starts `distarch ARGS` in the background, output captured as it comes.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start distarch");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            pump(child.stdout.take().expect("stdout"), stdout.clone()),
            pump(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Path of a file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn pump(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().expect("lock").extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// A `distarch` process running in the background.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("lock")).into_owned()
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned()
    }

    /// Waits until stdout has `count` lines containing `needle`; false on timeout.
    pub fn wait_for(&self, needle: &str, count: usize, limit: Duration) -> bool {
        crate::wait_until(limit, || {
            self.stdout().lines().filter(|l| l.contains(needle)).count() >= count
        })
    }

    /// Like [`Running::wait_for`], but panics with stdout so far when the lines do not
    /// come in time.
    pub fn expect_lines(&self, needle: &str, count: usize, limit: Duration) {
        assert!(
            self.wait_for(needle, count, limit),
            "expected {count} line(s) with `{needle}` within {limit:?}:\n{}",
            self.stdout()
        );
    }

    /// Sends a signal (e.g. "INT", "KILL") to the master.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "kill -{name} failed"
        );
    }

    /// Peak resident memory of the master so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// Waits for the end (killing the master after `limit`) and returns the output.
    pub fn wait(&mut self, limit: Duration) -> Output {
        let ended = crate::wait_until(limit, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !ended {
            let _ = self.child.kill();
        }
        let status = self.child.wait().expect("wait distarch");
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let out = Output {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout(),
            stderr: String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned(),
        };
        assert!(ended, "distarch did not end within {limit:?}\n{out}");
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
