//! One run of the worker under test, driven the way the master drives an instance:
//! `DISTARCH_*` variables, piped stdin/stdout/stderr, the child in its own process
//! group so that everything it starts is killed with it.

use distarch_protocol::{parse_worker_line, LineSplitter, WorkerFrame, WorkerLine};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why a scenario failed, in one line.
pub type Fail = String;

/// A line the worker wrote on stdout.
#[derive(Debug, Clone)]
pub struct Line {
    /// When the runner read it.
    pub at: Instant,
    /// The raw bytes, without the newline.
    pub raw: Vec<u8>,
    /// What the master makes of it.
    pub parsed: WorkerLine,
}

impl Line {
    /// The frame, if the line is a valid known frame.
    pub fn frame(&self) -> Option<&WorkerFrame> {
        match &self.parsed {
            WorkerLine::Frame(f) => Some(f),
            _ => None,
        }
    }

    /// True for a line with nothing but blanks (not activity, not logged).
    pub fn is_blank(&self) -> bool {
        self.raw.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
    }

    /// The line for a message, cut short.
    pub fn show(&self) -> String {
        let text = String::from_utf8_lossy(&self.raw).replace('\u{1e}', "␞");
        match text.char_indices().nth(160) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text,
        }
    }
}

enum Event {
    Line(Line),
    Eof,
}

/// The worker under test, running.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Event>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Receiver<()>,
    /// Every stdout line read so far.
    pub history: Vec<Line>,
    stdout_closed: bool,
    exit: Option<ExitStatus>,
}

impl Session {
    /// Starts `command` with exactly the given `DISTARCH_*` variables (inherited
    /// ones are removed; the rest of the environment is kept).
    pub fn start(command: &[String], env: &BTreeMap<String, String>) -> Result<Session, Fail> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| "no worker command".to_string())?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DISTARCH_") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(env);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{program}`: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr_pipe = child.stderr.take();
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(mut out) = stdout {
            std::thread::spawn(move || {
                let mut splitter = LineSplitter::new(distarch_protocol::DEFAULT_MAX_LINE);
                let mut buf = vec![0u8; 64 * 1024];
                let send = |raw: &[u8]| {
                    let _ = tx.send(Event::Line(Line {
                        at: Instant::now(),
                        raw: raw.to_vec(),
                        parsed: parse_worker_line(raw),
                    }));
                };
                loop {
                    match out.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => splitter.feed(&buf[..n], |l| send(l.bytes)),
                    }
                }
                splitter.finish(|l| send(l.bytes));
                let _ = tx.send(Event::Eof);
            });
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, stderr_done) = std::sync::mpsc::channel();
        if let Some(mut err) = stderr_pipe {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&buf[..n]);
                }
                let _ = done_tx.send(());
            });
        }
        Ok(Session {
            child,
            stdin,
            lines,
            stderr,
            stderr_done,
            history: Vec::new(),
            stdout_closed: false,
            exit: None,
        })
    }

    /// Waits (up to `within`) until stderr is closed, so that all of it was read.
    pub fn wait_stderr(&self, within: Duration) {
        let _ = self.stderr_done.recv_timeout(within);
    }

    /// What the worker wrote on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
            .trim()
            .to_string()
    }

    /// The next stdout line, or `None` when stdout closed or `deadline` passed.
    pub fn next_line(&mut self, deadline: Instant) -> Option<Line> {
        if self.stdout_closed {
            return None;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(Event::Line(line)) => {
                self.history.push(line.clone());
                Some(line)
            }
            Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => {
                self.stdout_closed = true;
                None
            }
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// Reads lines until one satisfies `pred`; fails after `within` or when stdout
    /// closes, naming `what`.
    pub fn expect(
        &mut self,
        what: &str,
        within: Duration,
        mut pred: impl FnMut(&Line) -> bool,
    ) -> Result<Line, Fail> {
        let deadline = Instant::now() + within;
        loop {
            match self.next_line(deadline) {
                Some(line) if pred(&line) => return Ok(line),
                Some(_) => {}
                None => {
                    let why = if self.stdout_closed {
                        "stdout closed"
                    } else {
                        "timed out"
                    };
                    return Err(format!(
                        "expected {what}, {why} after {:.1?}{}",
                        within,
                        self.context()
                    ));
                }
            }
        }
    }

    /// The last lines and stderr, for a failure message.
    pub fn context(&self) -> String {
        let mut out = String::new();
        if let Some(last) = self.history.iter().rev().find(|l| !l.is_blank()) {
            out.push_str(&format!("; last stdout line: {}", last.show()));
        } else {
            out.push_str("; nothing on stdout");
        }
        let err = self.stderr();
        if !err.is_empty() {
            let first = err.lines().next().unwrap_or_default();
            out.push_str(&format!("; stderr: {first}"));
        }
        out
    }

    /// Writes `bytes` on the worker's stdin, as one write.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| "stdin already closed".to_string())?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to the worker's stdin: {e}"))
    }

    /// Closes the worker's stdin: "the master is gone".
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `within` for the worker to exit, reading its output meanwhile.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exit {
                return Some(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                continue;
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Drain output while waiting, so that a worker blocked on a full pipe
            // can go on; the short wait doubles as the poll interval.
            let step = (Instant::now() + Duration::from_millis(10)).min(deadline);
            if self.stdout_closed || self.next_line(step).is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Reads what is left on stdout after the exit (bounded by `within`).
    pub fn drain(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.next_line(deadline).is_some() {}
    }

    /// Non-blank lines, in order.
    pub fn visible(&self) -> impl Iterator<Item = &Line> {
        self.history.iter().filter(|l| !l.is_blank())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin = None;
        // The whole process group: the worker and anything it left behind. The
        // group outlives the worker only while one of its processes runs.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
