//! The master's end of one remote agent: one exec channel per connection running
//! [`crate::command::AGENT`], which starts, signals and reaps every instance of
//! that connection. Requests go out as lines on the channel's stdin; the agent's
//! stdout carries records tagged with the instance's id: chunks of its output
//! (`ID o|e N` and N raw bytes), its pid, and how it ended (`ID x CODE` for an
//! exit, `ID k SIG` for a signal). Output is paced per instance and stream by credits: the
//! agent sends at most [`WINDOW`] bytes of a stream before the master, having
//! handed that much to the instance's reader, grants more, so a flooding worker
//! waits alone and the channel is never blocked by one instance.

use crate::command::agent_command;
use crate::connection::SshHandle;
use distarch_core::ExitStatus;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Bytes of one stream the agent may send before the master grants more (it
/// grants as it hands a quarter of that to the instance's reader): enough for
/// the agent's relay to send spool generations of up to 1 MiB (see agent.sh)
/// while the master still holds part of the one before.
pub(crate) const WINDOW: usize = 2 * 1024 * 1024;
/// The agent's hello record (protocol 2: output in counted chunks).
const HELLO: &[u8] = b"0 h 2";
/// The largest chunk the agent sends (one spool generation, at most 1 MiB, see
/// agent.sh); a larger count means the stream is not the agent's.
const MAX_CHUNK: usize = 4 * 1024 * 1024;
/// How much of the agent's stdout before its hello line (a login shell's start-up
/// files may print something) is skipped before giving up.
const HELLO_SEARCH_LIMIT: usize = 64 * 1024;

/// Why the agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The channel could not be opened or the exec request not sent.
    #[error("cannot start the distarch agent on {host}")]
    Channel {
        /// Host entry.
        host: String,
        /// Why.
        #[source]
        source: russh::Error,
    },
    /// The server refused the exec request.
    #[error("{host} refused to run the distarch agent")]
    Refused {
        /// Host entry.
        host: String,
    },
    /// The agent ended before saying hello.
    #[error("the distarch agent on {host} ended before it was ready{}", stderr_hint(.stderr))]
    Ended {
        /// Host entry.
        host: String,
        /// What it said on stderr.
        stderr: String,
    },
    /// No hello within the time limit.
    #[error("the distarch agent on {host} was not ready within {after:?} (is the remote login shell's start-up that slow?)")]
    Timeout {
        /// Host entry.
        host: String,
        /// The limit.
        after: Duration,
    },
}

fn stderr_hint(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {}", s.lines().last().unwrap_or(s))
    }
}

/// What the agent said about one instance.
pub(crate) struct Slot {
    pub(crate) stdout: Option<mpsc::UnboundedSender<Vec<u8>>>,
    pub(crate) stderr: Option<mpsc::UnboundedSender<Vec<u8>>>,
    pub(crate) pid: watch::Sender<Option<u32>>,
    pub(crate) status: watch::Sender<Option<ExitStatus>>,
}

impl Slot {
    fn set_status(&self, status: ExitStatus) {
        set_once(&self.status, status);
    }
}

fn set_once(sender: &watch::Sender<Option<ExitStatus>>, status: ExitStatus) {
    sender.send_if_modified(|s| {
        if s.is_none() {
            *s = Some(status);
            true
        } else {
            false
        }
    });
}

/// One running agent on one connection.
pub(crate) struct Agent {
    pub(crate) host: String,
    handle: Arc<SshHandle>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    slots: Arc<Mutex<HashMap<u64, Slot>>>,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
}

impl Agent {
    /// Opens a session channel on `handle`, runs the agent in it and waits until
    /// it says hello (within `startup`).
    pub(crate) async fn start(
        host: String,
        handle: SshHandle,
        keepalive: Option<Duration>,
        startup: Duration,
    ) -> Result<Arc<Agent>, AgentError> {
        let channel_error = |source| AgentError::Channel {
            host: host.clone(),
            source,
        };
        let handle = Arc::new(handle);
        let channel = handle.channel_open_session().await.map_err(channel_error)?;
        let (read, write) = channel.split();
        write
            .exec(true, agent_command(keepalive, WINDOW))
            .await
            .map_err(channel_error)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let (hello_tx, hello_rx) = oneshot::channel();
        let demux = Demux {
            host: host.clone(),
            slots: slots.clone(),
            alive: alive.clone(),
            buf: Vec::new(),
            chunk: None,
            hello: Some(hello_tx),
            skipped: 0,
            stderr: Vec::new(),
            tx: tx.clone(),
        };
        let write = Arc::new(write);
        tokio::spawn(demux.run(read, handle.clone()));
        tokio::spawn(write_requests(write.clone(), rx));
        match tokio::time::timeout(startup, hello_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) => {
                return Err(AgentError::Ended {
                    host,
                    stderr: String::new(),
                })
            }
            Err(_) => {
                let _ = write.close().await;
                return Err(AgentError::Timeout {
                    host,
                    after: startup,
                });
            }
        }
        if let Some(every) = keepalive {
            // Twice per period: the agent gives up after two silent periods.
            let (tx, alive) = (tx.clone(), alive.clone());
            let every = Duration::from_secs(every.as_secs().max(1)) / 2;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                while alive.load(Ordering::SeqCst) {
                    tick.tick().await;
                    if tx.send(b"k\n".to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Arc::new(Agent {
            host,
            handle,
            tx,
            slots,
            next_id: AtomicU64::new(1),
            alive,
        }))
    }

    /// Whether the agent and its connection still run.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.handle.is_closed()
    }

    /// Sends raw request lines.
    pub(crate) fn send(&self, lines: impl Into<Vec<u8>>) -> bool {
        self.tx.send(lines.into()).is_ok()
    }

    /// Registers a new instance; returns its id and the receiving ends.
    pub(crate) fn register(&self) -> Option<Registered> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (out_tx, stdout) = mpsc::unbounded_channel();
        let (err_tx, stderr) = mpsc::unbounded_channel();
        let (pid_tx, pid) = watch::channel(None);
        let (status_tx, status) = watch::channel(None);
        let mut slots = self.slots.lock().ok()?;
        if !self.is_alive() {
            return None;
        }
        slots.insert(
            id,
            Slot {
                stdout: Some(out_tx),
                stderr: Some(err_tx),
                pid: pid_tx,
                status: status_tx,
            },
        );
        Some(Registered {
            id,
            stdout,
            stderr,
            pid,
            status,
        })
    }

    /// Forgets instance `id` (it ended, or its start failed).
    pub(crate) fn forget(&self, id: u64) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&id);
        }
    }

    /// Ends the agent: its stdin closes, so it ends every instance left.
    pub(crate) async fn shutdown(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "distarch run over", "en")
            .await;
    }
}

/// The receiving ends of a registered instance.
pub(crate) struct Registered {
    pub(crate) id: u64,
    pub(crate) stdout: mpsc::UnboundedReceiver<Vec<u8>>,
    pub(crate) stderr: mpsc::UnboundedReceiver<Vec<u8>>,
    pub(crate) pid: watch::Receiver<Option<u32>>,
    pub(crate) status: watch::Receiver<Option<ExitStatus>>,
}

/// Writes request lines to the agent's stdin, several at a time when they queue.
async fn write_requests(
    write: Arc<ChannelWriteHalf<Msg>>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(mut buf) = rx.recv().await {
        while buf.len() < 32 * 1024 {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if write.data_bytes(buf).await.is_err() {
            break;
        }
    }
    let _ = write.eof().await;
}

/// A chunk of output being received: its instance, stream and bytes.
struct Chunk {
    id: u64,
    stderr: bool,
    left: usize,
    bytes: Vec<u8>,
}

/// Reads the agent's stdout and hands each record to its instance.
struct Demux {
    host: String,
    slots: Arc<Mutex<HashMap<u64, Slot>>>,
    alive: Arc<AtomicBool>,
    /// The start of a record line not yet ended.
    buf: Vec<u8>,
    chunk: Option<Chunk>,
    hello: Option<oneshot::Sender<Result<(), AgentError>>>,
    skipped: usize,
    stderr: Vec<u8>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl Demux {
    async fn run(mut self, mut read: ChannelReadHalf, handle: Arc<SshHandle>) {
        loop {
            match read.wait().await {
                Some(ChannelMsg::Data { data }) => self.on_data(&data),
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    let text = String::from_utf8_lossy(&data);
                    tracing::debug!(host = %self.host, "agent stderr: {}", text.trim_end());
                    if self.stderr.len() < 4096 {
                        self.stderr.extend_from_slice(&data);
                    }
                }
                Some(ChannelMsg::Failure) => {
                    if let Some(h) = self.hello.take() {
                        let _ = h.send(Err(AgentError::Refused {
                            host: self.host.clone(),
                        }));
                    }
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        self.alive.store(false, Ordering::SeqCst);
        if let Some(h) = self.hello.take() {
            let _ = h.send(Err(AgentError::Ended {
                host: self.host.clone(),
                stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
            }));
        }
        let why = if handle.is_closed() {
            format!("the connection to {} dropped", self.host)
        } else {
            format!("the agent on {} ended", self.host)
        };
        let slots: Vec<Slot> = match self.slots.lock() {
            Ok(mut s) => s.drain().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for slot in slots {
            slot.set_status(ExitStatus::Lost(why.clone()));
        }
    }

    fn on_data(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if let Some(chunk) = &mut self.chunk {
                let take = chunk.left.min(data.len());
                chunk.bytes.extend_from_slice(&data[..take]);
                chunk.left -= take;
                data = &data[take..];
                if chunk.left == 0 {
                    if let Some(chunk) = self.chunk.take() {
                        self.deliver(chunk);
                    }
                }
                continue;
            }
            match data.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let mut line = std::mem::take(&mut self.buf);
                    line.extend_from_slice(&data[..i]);
                    data = &data[i + 1..];
                    self.on_line(&line);
                }
                None => {
                    self.buf.extend_from_slice(data);
                    if self.buf.len() > HELLO_SEARCH_LIMIT {
                        // Not a record: the login shell's chatter, or a broken stream.
                        let line = std::mem::take(&mut self.buf);
                        self.on_line(&line);
                    }
                    return;
                }
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        if self.hello.is_some() {
            if line == HELLO {
                if let Some(h) = self.hello.take() {
                    let _ = h.send(Ok(()));
                }
            } else {
                self.skipped += line.len() + 1;
                tracing::debug!(host = %self.host, "before the agent: {}", String::from_utf8_lossy(line));
                if self.skipped > HELLO_SEARCH_LIMIT {
                    if let Some(h) = self.hello.take() {
                        let _ = h.send(Err(AgentError::Ended {
                            host: self.host.clone(),
                            stderr: "too much output before the agent started".into(),
                        }));
                    }
                }
            }
            return;
        }
        let mut parts = line.splitn(3, |b| *b == b' ');
        let (Some(id), Some(kind)) = (parts.next(), parts.next()) else {
            return;
        };
        let number = |rest: Option<&[u8]>| {
            std::str::from_utf8(rest.unwrap_or(&[]))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        };
        let rest = parts.next();
        let Some(id) = number(Some(id)) else {
            tracing::debug!(host = %self.host, "not an agent record: {}", String::from_utf8_lossy(line));
            return;
        };
        match kind {
            b"o" | b"e" => match number(rest).map(|n| n as usize) {
                Some(n) if n <= MAX_CHUNK => {
                    self.chunk = Some(Chunk {
                        id,
                        stderr: kind == b"e",
                        left: n,
                        bytes: Vec::with_capacity(n),
                    });
                }
                _ => {
                    tracing::warn!(host = %self.host, "the agent sent a bad output record; its output is lost");
                }
            },
            b"p" => {
                let pid = number(rest).and_then(|p| u32::try_from(p).ok());
                if let (Some(pid), Ok(slots)) = (pid, self.slots.lock()) {
                    if let Some(slot) = slots.get(&id) {
                        let _ = slot.pid.send(Some(pid));
                    }
                }
            }
            b"x" | b"k" => {
                let status = match number(rest).and_then(|n| i32::try_from(n).ok()) {
                    Some(n) if kind == b"x" => ExitStatus::Exited(n),
                    Some(n) => ExitStatus::Signaled(n),
                    None => ExitStatus::Lost("unreadable exit status".into()),
                };
                let slot = self.slots.lock().ok().and_then(|mut s| s.remove(&id));
                if let Some(Slot {
                    stdout,
                    stderr,
                    status: sender,
                    ..
                }) = slot
                {
                    // Every chunk came before the status: the streams end first.
                    drop((stdout, stderr));
                    set_once(&sender, status);
                }
            }
            _ => {}
        }
    }

    /// Hands a whole chunk to its instance's stream; if nobody reads that stream
    /// any more, gives the credit straight back so the worker is not held up.
    fn deliver(&mut self, chunk: Chunk) {
        let Chunk {
            id, stderr, bytes, ..
        } = chunk;
        if bytes.is_empty() {
            return;
        }
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let stream = if stderr { 'e' } else { 'o' };
        let len = bytes.len();
        let Some(slot) = slots.get_mut(&id) else {
            // A forgotten instance: its relay must not wait for credit that
            // would never come.
            let _ = self
                .tx
                .send(format!("c {id} {stream} {len}\n").into_bytes());
            return;
        };
        let sink = if stderr {
            &mut slot.stderr
        } else {
            &mut slot.stdout
        };
        let delivered = sink.as_ref().is_some_and(|s| s.send(bytes).is_ok());
        if !delivered {
            *sink = None;
            let _ = self
                .tx
                .send(format!("c {id} {stream} {len}\n").into_bytes());
        }
    }
}
