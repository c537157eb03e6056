//! One running instance: a session channel executing the wrapper (and so the
//! worker), its stdout/stderr as byte streams, its exit status, and the controls.

use crate::command::PID_LINE_PREFIX;
use crate::pool::{ChannelSlot, HostPool};
use async_trait::async_trait;
use distarch_core::{ExitStatus, Instance, InstanceError, InstanceIo, SpawnError};
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Buffer between the channel and the supervisor's readers, per stream.
const PIPE_BUFFER: usize = 64 * 1024;
/// How much stdout may come before the wrapper's pid line (a login shell's
/// start-up files may print something) before the search for it stops.
const PID_SEARCH_LIMIT: usize = 16 * 1024;
/// How long a signal delivery may take before it is given up.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long terminate/kill wait for the delivery before returning (it goes on).
const SIGNAL_WAIT: Duration = Duration::from_secs(2);

/// A worker running in a session channel on a remote host.
pub struct SshInstance {
    host: String,
    pid: watch::Receiver<Option<u32>>,
    writer: Arc<ChannelWriteHalf<Msg>>,
    pool: Arc<HostPool>,
    io: Option<InstanceIo>,
    status: watch::Receiver<Option<ExitStatus>>,
    pump: Option<JoinHandle<()>>,
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
    /// Runs `command` in `channel` and waits until the wrapper reports the worker's
    /// pid (or the command ends first).
    pub(crate) async fn start(
        channel: Channel<Msg>,
        slot: ChannelSlot,
        pool: Arc<HostPool>,
        command: String,
        startup_timeout: Duration,
    ) -> Result<Self, SpawnError> {
        let host = pool.host.label.clone();
        let (mut read, write) = channel.split();
        write.exec(true, command).await.map_err(|e| {
            SpawnError::with_source(format!("cannot send the command to {host}"), e)
        })?;
        let mut early = Vec::new();
        let accepted = tokio::time::timeout(startup_timeout, async {
            loop {
                match read.wait().await {
                    Some(ChannelMsg::Success) => return Ok(()),
                    Some(ChannelMsg::Failure) => {
                        return Err(SpawnError::new(format!(
                            "{host} refused to run the command"
                        )))
                    }
                    Some(ChannelMsg::Close) | None => {
                        return Err(SpawnError::new(format!(
                            "the channel to {host} closed before the command started"
                        )))
                    }
                    Some(ChannelMsg::WindowAdjusted { .. }) => {}
                    Some(other) => early.push(other),
                }
            }
        })
        .await
        .map_err(|_| {
            SpawnError::new(format!(
                "{host} did not answer the exec request within {startup_timeout:?}"
            ))
        })?;
        accepted?;

        let (stdout_w, stdout_r) = tokio::io::duplex(PIPE_BUFFER);
        let (stderr_w, stderr_r) = tokio::io::duplex(PIPE_BUFFER);
        let (status_tx, status) = watch::channel(None);
        let (pid_tx, pid) = watch::channel(None);
        let pump = Pump {
            host: host.clone(),
            stdout: Some(stdout_w),
            stderr: Some(stderr_w),
            status: status_tx,
            pid: pid_tx,
            filter: PidLineFilter::default(),
            slot,
        };
        let pump = tokio::spawn(pump.run(read, early));
        let writer = Arc::new(write);
        let mut status_rx = status.clone();
        let mut pid_rx = pid.clone();
        tokio::select! {
            _ = pid_rx.wait_for(|p| p.is_some()) => {}
            _ = status_rx.wait_for(|s| s.is_some()) => {}
            _ = tokio::time::sleep(startup_timeout) => {}
        }
        let stdin = StdinWriter {
            inner: Box::pin(writer.make_writer()),
            channel: Some(writer.clone()),
        };
        Ok(SshInstance {
            host,
            pid,
            writer,
            pool,
            io: Some(InstanceIo {
                stdin: Box::new(stdin),
                stdout: Box::new(stdout_r),
                stderr: Some(Box::new(stderr_r)),
            }),
            status,
            pump: Some(pump),
        })
    }

    /// The worker's pid on its host (also its process group), when the wrapper
    /// reported it.
    pub fn pid(&self) -> Option<u32> {
        *self.pid.borrow()
    }
}

/// Sends `signal` (`TERM`, `KILL`) to the process group `pgid` on the pool's host
/// with `kill` in a channel of its own. OpenSSH refuses SSH `signal` requests in
/// common setups ("session signalling requires privilege separation"), and they
/// would reach only the session's own group anyway; this reaches the worker's group
/// on every sshd.
async fn signal_group(pool: Arc<HostPool>, pgid: u32, signal: &str) -> Result<(), InstanceError> {
    let host = pool.host.label.clone();
    let what = format!("cannot send SIG{signal} to process group {pgid} on {host}");
    let (channel, _slot) = pool
        .open_session()
        .await
        .map_err(|e| InstanceError::with_source(what.clone(), e))?;
    let (mut read, write) = channel.split();
    write
        .exec(false, format!("kill -{signal} -{pgid}"))
        .await
        .map_err(|e| InstanceError::with_source(what.clone(), e))?;
    let _ = write.eof().await;
    let done = tokio::time::timeout(SIGNAL_TIMEOUT, async {
        while let Some(msg) = read.wait().await {
            if let ChannelMsg::ExitStatus { .. } | ChannelMsg::Close = msg {
                break;
            }
        }
    })
    .await;
    let _ = write.close().await;
    // `kill` fails when the group is already gone, which is what was wanted.
    done.map_err(|_| InstanceError::new(format!("{what}: no answer within {SIGNAL_TIMEOUT:?}")))
}

impl SshInstance {
    /// Signals the worker's process group (by pid when the wrapper reported it,
    /// else with an SSH `signal` request). Owns what it needs, so that the future
    /// does not borrow `self`.
    fn signal(
        &self,
        signal: &'static str,
        sig: Sig,
    ) -> impl std::future::Future<Output = Result<(), InstanceError>> + Send + 'static {
        let (pid, pool, writer, host) = (
            self.pid(),
            self.pool.clone(),
            self.writer.clone(),
            self.host.clone(),
        );
        async move {
            match pid {
                Some(pid) => {
                    // Delivered by a task of its own: a slow host delays nobody, and
                    // the supervisor's escalation timer starts on time.
                    let delivery = tokio::spawn(signal_group(pool, pid, signal));
                    match tokio::time::timeout(SIGNAL_WAIT, delivery).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(e)) => Err(InstanceError::with_source(
                            format!("sending SIG{signal} failed"),
                            e,
                        )),
                        Err(_) => {
                            tracing::debug!(%host, pid, signal, "signal delivery still in progress");
                            Ok(())
                        }
                    }
                }
                None => writer.signal(sig).await.map_err(|e| {
                    InstanceError::with_source(
                        format!("cannot send SIG{signal} to the worker on {host}"),
                        e,
                    )
                }),
            }
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
            None => format!("channel {} on {}", self.writer.id(), self.host),
        }
    }

    async fn terminate(&mut self) -> Result<(), InstanceError> {
        self.signal("TERM", Sig::TERM).await
    }

    async fn kill(&mut self) -> Result<(), InstanceError> {
        let sent = self.signal("KILL", Sig::KILL).await;
        // Backup: the end of stdin makes the remote watcher escalate to SIGKILL on
        // the worker's process group even if no signal got through.
        let writer = self.writer.clone();
        let _ = writer.eof().await;
        sent
    }

    async fn wait(&mut self) -> Result<ExitStatus, InstanceError> {
        match self.status.wait_for(|s| s.is_some()).await {
            Ok(s) => Ok(s
                .clone()
                .unwrap_or_else(|| ExitStatus::Lost("no exit status".into()))),
            Err(_) => Ok(ExitStatus::Lost(format!(
                "the channel to {} ended without an exit status",
                self.host
            ))),
        }
    }

    async fn cleanup(&mut self) {
        let writer = self.writer.clone();
        let _ = writer.eof().await;
        let _ = writer.close().await;
        if let Some(pump) = self.pump.take() {
            if tokio::time::timeout(Duration::from_secs(2), pump)
                .await
                .is_err()
            {
                tracing::debug!(host = %self.host, "channel did not close within 2s");
            }
        }
    }
}

/// The worker's stdin: writes go to the channel; dropping it sends EOF, which the
/// worker reads as "the master is gone".
struct StdinWriter {
    inner: Pin<Box<dyn AsyncWrite + Send>>,
    channel: Option<Arc<ChannelWriteHalf<Msg>>>,
}

impl AsyncWrite for StdinWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.as_mut().poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

impl Drop for StdinWriter {
    fn drop(&mut self) {
        if let (Some(channel), Ok(rt)) =
            (self.channel.take(), tokio::runtime::Handle::try_current())
        {
            rt.spawn(async move {
                let _ = channel.eof().await;
            });
        }
    }
}

/// Moves the channel's messages to the stdout/stderr pipes and the exit status.
struct Pump {
    host: String,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    status: watch::Sender<Option<ExitStatus>>,
    pid: watch::Sender<Option<u32>>,
    filter: PidLineFilter,
    slot: ChannelSlot,
}

async fn write_or_drop(pipe: &mut Option<DuplexStream>, data: &[u8]) {
    if let Some(p) = pipe.as_mut() {
        if p.write_all(data).await.is_err() {
            *pipe = None;
        }
    }
}

fn signal_number(sig: &Sig) -> i32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        _ => 0,
    }
}

impl Pump {
    fn set_status(&self, status: ExitStatus) {
        self.status.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(status);
                true
            } else {
                false
            }
        });
    }

    async fn on_stdout(&mut self, data: &[u8]) {
        let (pid, pass) = self.filter.feed(data);
        if let Some(pid) = pid {
            let _ = self.pid.send(Some(pid));
        }
        if !pass.is_empty() {
            write_or_drop(&mut self.stdout, &pass).await;
        }
    }

    async fn on_message(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::Data { data } => self.on_stdout(&data).await,
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                write_or_drop(&mut self.stderr, &data).await
            }
            ChannelMsg::ExitStatus { exit_status } => self.set_status(ExitStatus::Exited(
                i32::try_from(exit_status).unwrap_or(i32::MAX),
            )),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.set_status(ExitStatus::Signaled(signal_number(&signal_name)))
            }
            ChannelMsg::Eof => {
                let rest = self.filter.finish();
                write_or_drop(&mut self.stdout, &rest).await;
                self.stdout = None;
                self.stderr = None;
            }
            ChannelMsg::Close => return false,
            _ => {}
        }
        true
    }

    async fn run(mut self, mut read: ChannelReadHalf, early: Vec<ChannelMsg>) {
        let mut open = true;
        for msg in early {
            open = open && self.on_message(msg).await;
        }
        while open {
            match read.wait().await {
                Some(msg) => open = self.on_message(msg).await,
                None => open = false,
            }
        }
        self.stdout = None;
        self.stderr = None;
        let why = if self.slot.conn.handle.is_closed() {
            format!("the connection to {} dropped", self.host)
        } else {
            format!("the channel to {} closed without an exit status", self.host)
        };
        self.set_status(ExitStatus::Lost(why));
    }
}

/// Takes the wrapper's pid line out of the worker's stdout. Lines before it (a
/// login shell's start-up files may print some) are passed on; after
/// [`PID_SEARCH_LIMIT`] bytes without it, the search stops.
#[derive(Debug)]
struct PidLineFilter {
    /// The partial line, while still searching.
    line: Option<Vec<u8>>,
    searched: usize,
}

impl Default for PidLineFilter {
    fn default() -> Self {
        PidLineFilter {
            line: Some(Vec::new()),
            searched: 0,
        }
    }
}

impl PidLineFilter {
    /// Feeds stdout bytes; returns the pid if its line ended here, and the bytes to
    /// pass on.
    fn feed(&mut self, data: &[u8]) -> (Option<u32>, Vec<u8>) {
        let mut pass = Vec::new();
        let mut found = None;
        let mut rest = data;
        while let Some(buf) = self.line.as_mut() {
            let Some(i) = rest.iter().position(|b| *b == b'\n') else {
                buf.extend_from_slice(rest);
                rest = &[];
                if self.searched + buf.len() > PID_SEARCH_LIMIT {
                    pass.extend(self.line.take().unwrap_or_default());
                }
                break;
            };
            buf.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            let line = std::mem::take(buf);
            self.searched += line.len() + 1;
            let pid = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.strip_prefix(PID_LINE_PREFIX))
                .and_then(|p| p.trim().parse().ok());
            if let Some(pid) = pid {
                found = Some(pid);
                self.line = None;
            } else {
                pass.extend_from_slice(&line);
                pass.push(b'\n');
                if self.searched > PID_SEARCH_LIMIT {
                    self.line = None;
                }
            }
        }
        pass.extend_from_slice(rest);
        (found, pass)
    }

    /// Stdout ended: whatever partial line was held.
    fn finish(&mut self) -> Vec<u8> {
        self.line.take().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_line_is_taken_out_wherever_it_is_cut() {
        let mut f = PidLineFilter::default();
        assert_eq!(
            f.feed(b"motd from .bashrc\ndistarch-ssh p"),
            (None, b"motd from .bashrc\n".to_vec())
        );
        assert_eq!(f.feed(b"id 42\nhello\n"), (Some(42), b"hello\n".to_vec()));
        assert_eq!(
            f.feed(b"distarch-ssh pid 7\n"),
            (None, b"distarch-ssh pid 7\n".to_vec())
        );
    }

    #[test]
    fn the_search_stops_after_the_limit() {
        let mut f = PidLineFilter::default();
        let big = vec![b'x'; PID_SEARCH_LIMIT + 1];
        let (pid, pass) = f.feed(&big);
        assert_eq!((pid, pass.len()), (None, big.len()));
        assert_eq!(
            f.feed(b"distarch-ssh pid 1\n"),
            (None, b"distarch-ssh pid 1\n".to_vec())
        );
        let mut f = PidLineFilter::default();
        assert_eq!(f.feed(b"partial"), (None, Vec::new()));
        assert_eq!(f.finish(), b"partial".to_vec());
    }
}
