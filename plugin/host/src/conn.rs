//! One plugin process and the JSON-RPC connection over its stdin/stdout: a writer
//! thread (a plugin that stops reading never blocks the master), a reader thread
//! that hands each response to its caller, and the plugin's stderr kept for the
//! message that says why it died.

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A response: the `result`, or why there is none (the plugin's error message, or
/// what happened to the plugin).
pub type Reply = Result<Value, String>;

enum Waiter {
    Sync(mpsc::Sender<Reply>),
    Async(oneshot::Sender<Reply>),
}

impl Waiter {
    fn send(self, reply: Reply) {
        match self {
            Waiter::Sync(s) => {
                let _ = s.send(reply);
            }
            Waiter::Async(s) => {
                let _ = s.send(reply);
            }
        }
    }
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Waiter>,
    /// Why the connection is over (the plugin exited, hung, or said nonsense).
    dead: Option<String>,
}

/// Lines of the plugin's stderr kept for error messages.
const STDERR_TAIL: usize = 20;

/// A started plugin process and its connection.
pub struct Connection {
    /// `plugin `name` (path)`, the start of every message about it.
    pub label: String,
    state: Mutex<State>,
    lines: Mutex<Option<mpsc::Sender<String>>>,
    next: AtomicU64,
    child: Mutex<Child>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// How long a request may go unanswered before the plugin counts as hung.
    pub timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    /// Starts `argv` with piped stdio.
    pub fn start(label: String, argv: &[String], timeout: Duration) -> Result<Arc<Self>, String> {
        let Some((program, args)) = argv.split_first() else {
            return Err(format!("{label}: no command"));
        };
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(program)
            .args(args)
            // A process group of its own: Ctrl-C on the terminal reaches the master,
            // which stops the run through the plugin; the plugin is not hit directly.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{label}: cannot start: {e}"))?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => return Err(format!("{label}: no stdio pipes")),
            };
        let (tx, rx) = mpsc::channel::<String>();
        let conn = Arc::new(Connection {
            label,
            state: Mutex::new(State::default()),
            lines: Mutex::new(Some(tx)),
            next: AtomicU64::new(1),
            child: Mutex::new(child),
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
            timeout,
        });
        std::thread::spawn(move || {
            let mut stdin = stdin;
            for line in rx {
                if stdin.write_all(line.as_bytes()).is_err() || stdin.flush().is_err() {
                    break;
                }
            }
            // Dropping stdin closes it: the plugin ends its instances and exits.
        });
        let tail = conn.stderr_tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut t = lock(&tail);
                if t.len() == STDERR_TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        let reader = conn.clone();
        std::thread::spawn(move || reader.read_loop(stdout));
        Ok(conn)
    }

    fn read_loop(&self, stdout: impl std::io::Read) {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let msg: Value = match serde_json::from_str(line.trim_end()) {
                Ok(v) => v,
                Err(e) => {
                    let shown: String = line.trim_end().chars().take(120).collect();
                    self.fail(format!(
                        "{}: broke the protocol: a line that is not JSON ({e}): {shown:?}",
                        self.label
                    ));
                    self.kill_process();
                    return;
                }
            };
            let Some(id) = msg.get("id").and_then(Value::as_u64) else {
                continue; // a notification: none is defined in protocol 1
            };
            let waiter = lock(&self.state).pending.remove(&id);
            let reply = match msg.get("error") {
                Some(err) => Err(err
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| err.to_string(), str::to_string)),
                None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
            };
            if let Some(w) = waiter {
                w.send(reply);
            }
        }
        let status = self.exit_status(Duration::from_secs(2));
        self.fail(format!("{}: {status}{}", self.label, self.stderr_note()));
    }

    /// How the process ended, waiting up to `limit` for it.
    fn exit_status(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            match lock(&self.child).try_wait() {
                Ok(Some(status)) => return format!("exited ({status})"),
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => return "closed its stdout".to_string(),
                Err(e) => return format!("cannot be waited for: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `; its stderr said: ...` with the last stderr line, if any.
    fn stderr_note(&self) -> String {
        // Give the stderr thread a moment to read what the plugin said last.
        std::thread::sleep(Duration::from_millis(50));
        match lock(&self.stderr_tail).back() {
            Some(l) => format!("; its last stderr line: {l}"),
            None => String::new(),
        }
    }

    /// Ends the connection: every waiting caller and every later request gets
    /// `why`. The first reason stays.
    pub fn fail(&self, why: String) {
        let pending: Vec<Waiter> = {
            let mut st = lock(&self.state);
            if st.dead.is_none() {
                st.dead = Some(why);
            }
            st.pending.drain().map(|(_, w)| w).collect()
        };
        let why = self.dead().unwrap_or_default();
        for w in pending {
            w.send(Err(why.clone()));
        }
    }

    /// Why the connection is over, if it is.
    pub fn dead(&self) -> Option<String> {
        lock(&self.state).dead.clone()
    }

    /// SIGKILL to the plugin process.
    pub fn kill_process(&self) {
        let _ = lock(&self.child).kill();
    }

    /// The plugin's process id.
    pub fn pid(&self) -> u32 {
        lock(&self.child).id()
    }

    fn send(&self, method: &str, params: Value, waiter: Waiter) -> Result<u64, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = lock(&self.state);
            if let Some(why) = &st.dead {
                return Err(why.clone());
            }
            st.pending.insert(id, waiter);
        }
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        let sent = lock(&self.lines)
            .as_ref()
            .is_some_and(|tx| tx.send(line).is_ok());
        if !sent {
            lock(&self.state).pending.remove(&id);
            return Err(self
                .dead()
                .unwrap_or_else(|| format!("{}: the connection is closed", self.label)));
        }
        Ok(id)
    }

    fn hung(&self, method: &str) -> String {
        let why = format!(
            "{}: hung: no answer to `{method}` within {:?}; it was killed",
            self.label, self.timeout
        );
        self.fail(why.clone());
        self.kill_process();
        self.dead().unwrap_or(why)
    }

    /// A request answered within [`Connection::timeout`], blocking the thread (for
    /// the synchronous `plan` and the handshake).
    pub fn call_blocking(&self, method: &str, params: Value) -> Reply {
        let (tx, rx) = mpsc::channel();
        self.send(method, params, Waiter::Sync(tx))?;
        match rx.recv_timeout(self.timeout) {
            Ok(reply) => reply,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(self.hung(method)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self
                .dead()
                .unwrap_or_else(|| format!("{}: no answer", self.label))),
        }
    }

    /// A request answered within [`Connection::timeout`].
    pub async fn call(&self, method: &str, params: Value) -> Reply {
        let rx = self.start_call(method, params)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(self
                .dead()
                .unwrap_or_else(|| format!("{}: no answer", self.label))),
            Err(_) => Err(self.hung(method)),
        }
    }

    /// A request whose answer may take as long as it takes (`wait`).
    pub fn start_call(
        &self,
        method: &str,
        params: Value,
    ) -> Result<oneshot::Receiver<Reply>, String> {
        let (tx, rx) = oneshot::channel();
        self.send(method, params, Waiter::Async(tx))?;
        Ok(rx)
    }

    /// Closes the plugin's stdin (it must then end its instances and exit), waits
    /// up to `grace` for it to exit, then kills it.
    pub fn close(&self, grace: Duration) {
        lock(&self.lines).take();
        let deadline = Instant::now() + grace;
        loop {
            if !matches!(lock(&self.child).try_wait(), Ok(None)) {
                break;
            }
            if Instant::now() >= deadline {
                self.kill_process();
                let _ = lock(&self.child).wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.fail(format!("{}: the connection was closed", self.label));
    }

    /// Whether the process has exited.
    pub fn exited(&self) -> bool {
        !matches!(lock(&self.child).try_wait(), Ok(None))
    }
}
