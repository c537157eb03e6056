//! The stop flag, and the background thread that reads the master's frames on stdin.

use crate::jobs::Inbox;
use distarch_protocol::{parse_master_line, LineSplitter, MasterFrame, MasterLine};
use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Why a worker should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The master sent a `stop` frame: finish the current work and exit cleanly.
    StopRequested,
    /// The master is gone (stdin reached EOF, or stdout is broken): exit now.
    /// Unless disabled with [`Worker::with_master_gone_exit`](crate::Worker::with_master_gone_exit),
    /// the SDK ends the process itself after a grace period.
    MasterGone,
}

/// Longest line read from the master: control frames are tiny, a `job` frame
/// carries one input record (the master refuses records above 1 MiB).
const MAX_MASTER_LINE: usize = 2 * 1024 * 1024;

/// Marks "never" in [`StopSignal::exit_grace_ms`].
const NO_EXIT: u64 = u64::MAX;

/// A flag raised once, that threads can poll cheaply or wait on.
#[derive(Debug)]
pub(crate) struct StopSignal {
    raised: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    changed: Condvar,
    /// Grace before the SDK exits the process when the master is gone, in ms.
    exit_grace_ms: AtomicU64,
    /// The group's instance count, as last announced by a `group_count` frame
    /// (`DISTARCH_GROUP_COUNT` until then).
    group_count: AtomicU64,
    #[cfg(feature = "tokio")]
    pub(crate) notify: tokio::sync::Notify,
}

impl StopSignal {
    pub fn new(exit_grace: Option<Duration>, group_count: u64) -> Self {
        let signal = StopSignal {
            group_count: AtomicU64::new(group_count),
            raised: AtomicBool::new(false),
            reason: Mutex::new(None),
            changed: Condvar::new(),
            exit_grace_ms: AtomicU64::new(NO_EXIT),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
        };
        signal.set_exit_grace(exit_grace);
        signal
    }

    pub fn set_exit_grace(&self, grace: Option<Duration>) {
        let ms = grace.map_or(NO_EXIT, |g| {
            u64::try_from(g.as_millis()).unwrap_or(NO_EXIT - 1)
        });
        self.exit_grace_ms.store(ms, Ordering::Relaxed);
    }

    fn exit_grace(&self) -> Option<Duration> {
        match self.exit_grace_ms.load(Ordering::Relaxed) {
            NO_EXIT => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The group's current instance count.
    pub fn group_count(&self) -> u64 {
        self.group_count.load(Ordering::Relaxed)
    }

    /// True once a stop reason was recorded. One atomic load.
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    pub fn reason(&self) -> Option<StopReason> {
        *self.lock()
    }

    /// Records `reason`. `MasterGone` overrides `StopRequested` (it is more urgent);
    /// the reverse does not happen.
    pub fn raise(&self, reason: StopReason) {
        let mut current = self.lock();
        if *current != Some(StopReason::MasterGone) {
            *current = Some(reason);
        }
        self.raised.store(true, Ordering::Release);
        self.changed.notify_all();
        drop(current);
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }

    /// Waits until raised or until `timeout` passed (`None`: no limit). Returns
    /// whether the flag is raised.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut reason = self.lock();
        while reason.is_none() {
            match deadline {
                // No timeout, or one so large that the deadline overflows.
                None => {
                    reason = self
                        .changed
                        .wait(reason)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    reason = self
                        .changed
                        .wait_timeout(reason, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, Option<StopReason>> {
        // The guarded value is a plain Copy enum: a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still good to use.
        self.reason.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Exit code used when the SDK ends the process because the master is gone.
pub const MASTER_GONE_EXIT_CODE: i32 = 3;

/// Body of the stdin thread: records `group_count` frames, raises `StopRequested` on a `stop` frame and
/// `MasterGone` at EOF (or on a read error), then — unless disabled — waits the
/// grace period and exits the process.
pub(crate) fn listen(mut input: impl Read, signal: &StopSignal, inbox: &Inbox) {
    read_frames(&mut input, signal, inbox);
    signal.raise(StopReason::MasterGone);
    inbox.close();
    if let Some(grace) = signal.exit_grace() {
        std::thread::sleep(grace);
        // No explicit flush: another thread may hold the stdout lock forever, and
        // `exit` flushes stdout itself when it can. Frames are flushed when written.
        std::process::exit(MASTER_GONE_EXIT_CODE);
    }
}

fn read_frames(input: &mut impl Read, signal: &StopSignal, inbox: &Inbox) {
    let mut splitter = LineSplitter::new(MAX_MASTER_LINE);
    let mut buf = [0u8; 8192];
    let on_line = |line: distarch_protocol::RawLine<'_>| {
        match parse_master_line(line.bytes) {
            MasterLine::Frame(MasterFrame::Stop) => {
                signal.raise(StopReason::StopRequested);
                inbox.close();
            }
            MasterLine::Frame(MasterFrame::Job { id, payload }) => inbox.push(id, payload),
            MasterLine::Frame(MasterFrame::GroupCount { count }) => {
                signal.group_count.store(count, Ordering::Relaxed);
            }
            _ => {}
        }
        // Anything else (plain text, unknown frames) is ignored, as the protocol says.
    };
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => splitter.feed(&buf[..n], on_line),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    splitter.finish(on_line);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_frame_then_eof_raises_both_reasons_in_order() {
        let signal = StopSignal::new(None, 1);
        let inbox = Inbox::default();
        let mut input: &[u8] = b"hello\n\x1e{\"type\":\"nope\"}\n";
        read_frames(&mut input, &signal, &inbox);
        assert_eq!(signal.reason(), None, "unknown frames and text are ignored");

        let mut input: &[u8] = b"\x1e{\"type\":\"group_count\",\"count\":7}\n";
        read_frames(&mut input, &signal, &inbox);
        assert_eq!(signal.group_count(), 7);
        assert_eq!(signal.reason(), None, "group_count is no stop");

        let mut input: &[u8] = b"\x1e{\"type\":\"stop\",\"extra\":1}\r\n";
        read_frames(&mut input, &signal, &inbox);
        assert_eq!(signal.reason(), Some(StopReason::StopRequested));
        listen(&b""[..], &signal, &inbox);
        assert_eq!(signal.reason(), Some(StopReason::MasterGone));
        signal.raise(StopReason::StopRequested);
        assert_eq!(signal.reason(), Some(StopReason::MasterGone));
    }

    #[test]
    fn wait_returns_at_once_when_raised_and_times_out_otherwise() {
        let signal = StopSignal::new(None, 1);
        assert!(!signal.wait(Some(Duration::from_millis(1))));
        signal.raise(StopReason::StopRequested);
        assert!(signal.wait(None));
        assert!(signal.is_raised());
    }

    #[test]
    fn wait_wakes_when_another_thread_raises() {
        let signal = std::sync::Arc::new(StopSignal::new(None, 1));
        let raiser = {
            let signal = signal.clone();
            std::thread::spawn(move || signal.raise(StopReason::StopRequested))
        };
        assert!(signal.wait(Some(Duration::from_secs(600))));
        raiser.join().unwrap();
    }
}
