//! One running instance: a worker the connection's agent started, its stdout and
//! stderr as byte streams paced by credits, its stdin, its exit status, and the
//! controls, all as lines on the agent's channel (no new channel, no login shell).

use crate::agent::{Agent, Registered, WINDOW};
use async_trait::async_trait;
use distarch_core::{
    config::StopSignal, ExitStatus, Instance, InstanceError, InstanceIo, SpawnError,
};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

/// A worker running under the agent of a remote host's connection.
pub struct SshInstance {
    host: String,
    id: u64,
    agent: Arc<Agent>,
    pid: watch::Receiver<Option<u32>>,
    io: Option<InstanceIo>,
    status: watch::Receiver<Option<ExitStatus>>,
}

impl std::fmt::Debug for SshInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshInstance")
            .field("host", &self.host)
            .field("pid", &*self.pid.borrow())
            .finish_non_exhaustive()
    }
}

impl SshInstance {
    /// Asks `agent` to start the command of `lines` (made for `registered.id`) and
    /// waits until the agent reports the worker's pid (or its end).
    pub(crate) async fn start(
        agent: Arc<Agent>,
        registered: Registered,
        lines: String,
        startup_timeout: Duration,
    ) -> Result<Self, SpawnError> {
        let host = agent.host.clone();
        let Registered {
            id,
            stdout,
            stderr,
            pid,
            status,
        } = registered;
        if !agent.send(lines) {
            agent.forget(id);
            return Err(SpawnError::new(format!(
                "the connection to {host} dropped before the command started"
            )));
        }
        let (mut pid_rx, mut status_rx) = (pid.clone(), status.clone());
        tokio::select! {
            _ = pid_rx.wait_for(|p| p.is_some()) => {}
            _ = status_rx.wait_for(|s| s.is_some()) => {}
            _ = tokio::time::sleep(startup_timeout) => {
                agent.send(format!("t {id} KILL\ne {id}\n"));
                agent.forget(id);
                return Err(SpawnError::new(format!(
                    "the agent on {host} did not start the command within {startup_timeout:?}"
                )));
            }
        }
        let stdin = StdinWriter {
            agent: agent.clone(),
            id,
            partial: Vec::new(),
            closed: false,
        };
        Ok(SshInstance {
            io: Some(InstanceIo {
                stdin: Box::new(stdin),
                stdout: Box::new(CreditReader::new(agent.clone(), id, 'o', stdout)),
                stderr: Some(Box::new(CreditReader::new(agent.clone(), id, 'e', stderr))),
            }),
            host,
            id,
            agent,
            pid,
            status,
        })
    }

    /// The worker's pid on its host (also its process group).
    pub fn pid(&self) -> Option<u32> {
        *self.pid.borrow()
    }

    fn signal(&self, signal: &str) -> Result<(), InstanceError> {
        if self.status.borrow().is_some() {
            return Ok(());
        }
        if self.agent.send(format!("t {} {signal}\n", self.id)) {
            Ok(())
        } else {
            Err(InstanceError::new(format!(
                "cannot send SIG{signal} to the worker on {}: the connection is gone",
                self.host
            )))
        }
    }
}

#[async_trait]
impl Instance for SshInstance {
    fn take_io(&mut self) -> Option<InstanceIo> {
        self.io.take()
    }

    fn describe(&self) -> String {
        match self.pid() {
            Some(pid) => format!("pid {pid} on {}", self.host),
            None => format!("instance {} on {}", self.id, self.host),
        }
    }

    async fn terminate(&mut self) -> Result<(), InstanceError> {
        self.signal("TERM")
    }

    async fn stop_with_signal(&mut self, signal: StopSignal) -> Result<(), InstanceError> {
        // By name: the host's signal numbers need not be Linux's.
        self.signal(&signal.name())
    }

    async fn kill(&mut self) -> Result<(), InstanceError> {
        let sent = self.signal("KILL");
        self.agent.send(format!("e {}\n", self.id));
        sent
    }

    async fn wait(&mut self) -> Result<ExitStatus, InstanceError> {
        match self.status.wait_for(|s| s.is_some()).await {
            Ok(s) => Ok(s
                .clone()
                .unwrap_or_else(|| ExitStatus::Lost("no exit status".into()))),
            Err(_) => Ok(ExitStatus::Lost(format!(
                "the agent on {} forgot the instance",
                self.host
            ))),
        }
    }

    async fn cleanup(&mut self) {
        if self.status.borrow().is_none() {
            self.agent.send(format!("e {}\n", self.id));
        }
        self.agent.forget(self.id);
    }
}

/// One output stream of an instance; grants the agent more credit as the
/// supervisor reads.
struct CreditReader {
    agent: Arc<Agent>,
    id: u64,
    stream: char,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    current: Vec<u8>,
    offset: usize,
    consumed: usize,
}

impl CreditReader {
    fn new(agent: Arc<Agent>, id: u64, stream: char, rx: mpsc::UnboundedReceiver<Vec<u8>>) -> Self {
        CreditReader {
            agent,
            id,
            stream,
            rx,
            current: Vec::new(),
            offset: 0,
            consumed: 0,
        }
    }
}

impl AsyncRead for CreditReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while this.offset >= this.current.len() {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => {
                    this.current = chunk;
                    this.offset = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.remaining().min(this.current.len() - this.offset);
        buf.put_slice(&this.current[this.offset..this.offset + n]);
        this.offset += n;
        this.consumed += n;
        if this.consumed >= WINDOW / 4 {
            this.agent
                .send(format!("c {} {} {}\n", this.id, this.stream, this.consumed));
            this.consumed = 0;
        }
        Poll::Ready(Ok(()))
    }
}

/// The worker's stdin: whole lines go as `i` requests, a partial line as `j` on
/// flush; shutting it down (or dropping it) closes the worker's stdin, which the
/// worker reads as "the master is gone".
struct StdinWriter {
    agent: Arc<Agent>,
    id: u64,
    partial: Vec<u8>,
    closed: bool,
}

impl StdinWriter {
    fn flush_partial(&mut self) -> std::io::Result<()> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let mut req = format!("j {} ", self.id).into_bytes();
        req.append(&mut self.partial);
        req.push(b'\n');
        self.send(req)
    }

    fn send(&self, req: Vec<u8>) -> std::io::Result<()> {
        if self.agent.send(req) {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the connection to the host is gone",
            ))
        }
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            let _ = self.flush_partial();
            let _ = self.agent.send(format!("e {}\n", self.id));
        }
    }
}

impl AsyncWrite for StdinWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.closed {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let mut req = Vec::new();
        let mut rest = data;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            req.extend_from_slice(format!("i {} ", this.id).as_bytes());
            req.append(&mut this.partial);
            req.extend_from_slice(&rest[..=i]);
            rest = &rest[i + 1..];
        }
        this.partial.extend_from_slice(rest);
        if !req.is_empty() {
            if let Err(e) = this.send(req) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.flush_partial())
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for StdinWriter {
    fn drop(&mut self) {
        self.close();
    }
}
