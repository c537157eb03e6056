//! Writing frames to stdout: whole lines, one write each, and the ping rate limit.

use distarch_protocol::{encode_worker_frame, WorkerFrame};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Default shortest time between two `ping` frames.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);

/// Where frames go.
pub(crate) enum Sink {
    /// The process's stdout, locked for each line.
    Stdout,
    /// Anything else (tests, or a program that talks to the master over another stream).
    Custom(Box<dyn Write + Send>),
}

impl Sink {
    /// Writes `line`; `stdout` is the caller's stdout lock.
    fn write_line(&mut self, stdout: &mut io::StdoutLock<'_>, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                // Holding the stdout lock keeps `println!` from other threads out of
                // the middle of the line; stdout's LineWriter passes a whole line with
                // an empty buffer to the OS in one write.
                stdout.write_all(line)?;
                stdout.flush()
            }
            Sink::Custom(w) => {
                w.write_all(line)?;
                w.flush()
            }
        }
    }
}

/// Encodes and writes frames; remembers when it last wrote one, for `ping`.
pub(crate) struct FrameWriter {
    sink: Mutex<Sink>,
    epoch: Instant,
    /// Nanoseconds after `epoch` of the last frame written; `NEVER` before the first.
    last_write: AtomicU64,
    ping_interval_ns: AtomicU64,
    /// Whether `hello` was written; every SDK line starts with it.
    hello_sent: AtomicBool,
}

/// Name of this SDK in the `hello` frame.
pub const SDK_NAME: &str = "distarch-worker-rust";

/// The `hello` frame this SDK sends first.
pub(crate) fn hello_frame() -> WorkerFrame {
    WorkerFrame::Hello {
        protocol: distarch_protocol::PROTOCOL_VERSION,
        sdk: Some(SDK_NAME.to_string()),
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
    }
}

const NEVER: u64 = u64::MAX;

impl FrameWriter {
    pub fn new(sink: Sink) -> Self {
        FrameWriter {
            sink: Mutex::new(sink),
            epoch: Instant::now(),
            last_write: AtomicU64::new(NEVER),
            ping_interval_ns: AtomicU64::new(nanos(DEFAULT_PING_INTERVAL)),
            hello_sent: AtomicBool::new(false),
        }
    }

    pub fn set_sink(&self, sink: Sink) {
        *self.sink.lock().unwrap_or_else(PoisonError::into_inner) = sink;
    }

    pub fn set_ping_interval(&self, interval: Duration) {
        self.ping_interval_ns
            .store(nanos(interval), Ordering::Relaxed);
    }

    /// Writes one frame as one line, preceded by `hello` if this is the first
    /// frame. Sending `hello` itself writes it only if it was not sent yet.
    pub fn send(&self, frame: &WorkerFrame) -> io::Result<()> {
        let is_hello = matches!(frame, WorkerFrame::Hello { .. });
        let line = encode_worker_frame(frame);
        // Lock order: stdout first, then the sink. A user thread may hold the stdout
        // lock while it logs through us; taking the sink first could deadlock.
        let mut stdout = io::stdout().lock();
        // A panic while writing cannot leave the sink half-updated in a way that
        // matters more than a cut line, so a poisoned lock is still used.
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked and set under the sink lock: no frame can overtake `hello`.
        if !self.hello_sent.swap(true, Ordering::Relaxed) {
            sink.write_line(&mut stdout, &encode_worker_frame(&hello_frame()))?;
        } else if is_hello {
            return Ok(());
        }
        if is_hello {
            self.last_write.store(self.now(), Ordering::Relaxed);
            return Ok(());
        }
        let result = sink.write_line(&mut stdout, &line);
        self.last_write.store(self.now(), Ordering::Relaxed);
        result
    }

    /// Writes several frames in one write (job answers and credit together).
    pub fn send_many(&self, frames: &[WorkerFrame]) -> io::Result<()> {
        let mut lines = Vec::with_capacity(64 * frames.len());
        for frame in frames {
            lines.extend_from_slice(&encode_worker_frame(frame));
        }
        let mut stdout = io::stdout().lock();
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.hello_sent.swap(true, Ordering::Relaxed) {
            sink.write_line(&mut stdout, &encode_worker_frame(&hello_frame()))?;
        }
        let result = sink.write_line(&mut stdout, &lines);
        self.last_write.store(self.now(), Ordering::Relaxed);
        result
    }

    /// Sends a `ping` unless a frame was written less than the ping interval ago.
    /// Returns `Ok(false)` when rate-limited. In the common (limited) case this is
    /// one clock read and two atomic loads.
    pub fn ping(&self) -> io::Result<bool> {
        if !self.ping_due(self.now()) {
            return Ok(false);
        }
        self.send(&WorkerFrame::Ping).map(|()| true)
    }

    fn ping_due(&self, now: u64) -> bool {
        let last = self.last_write.load(Ordering::Relaxed);
        last == NEVER || now.saturating_sub(last) >= self.ping_interval_ns.load(Ordering::Relaxed)
    }

    fn now(&self) -> u64 {
        // NEVER - 1 is reached after 584 years of uptime.
        nanos(self.epoch.elapsed()).min(NEVER - 1)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A `Write` whose bytes the test can read back.
    #[derive(Clone, Default)]
    pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

    impl SharedBuf {
        pub fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ping_is_rate_limited_and_any_frame_counts_as_activity() {
        let buf = SharedBuf::default();
        let writer = FrameWriter::new(Sink::Custom(Box::new(buf.clone())));
        writer.set_ping_interval(Duration::from_secs(3600));
        assert!(writer.ping().unwrap(), "the first ping is sent");
        for _ in 0..10_000 {
            assert!(!writer.ping().unwrap());
        }
        let hello = format!(
            "\u{1e}{{\"type\":\"hello\",\"protocol\":1,\"sdk\":\"distarch-worker-rust\",\"version\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            buf.lines(),
            vec![hello, "\u{1e}{\"type\":\"ping\"}".to_string()]
        );

        let second = nanos(Duration::from_secs(3600));
        let last = writer.last_write.load(Ordering::Relaxed);
        assert!(!writer.ping_due(last + second - 1));
        assert!(writer.ping_due(last + second));
        writer.send(&WorkerFrame::Ready).unwrap();
        let last = writer.last_write.load(Ordering::Relaxed);
        assert!(!writer.ping_due(last + second - 1), "ready reset the clock");
    }

    #[test]
    fn a_zero_interval_sends_every_ping() {
        let buf = SharedBuf::default();
        let writer = FrameWriter::new(Sink::Custom(Box::new(buf.clone())));
        writer.set_ping_interval(Duration::ZERO);
        for _ in 0..3 {
            assert!(writer.ping().unwrap());
        }
        assert_eq!(buf.lines().len(), 4, "hello and 3 pings");
    }

    #[test]
    fn hello_is_written_once_and_first() {
        let buf = SharedBuf::default();
        let writer = FrameWriter::new(Sink::Custom(Box::new(buf.clone())));
        writer.send(&WorkerFrame::Ready).unwrap();
        writer.send(&hello_frame()).unwrap();
        let lines = buf.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("\u{1e}{\"type\":\"hello\",\"protocol\":1,"));
        assert_eq!(lines[1], "\u{1e}{\"type\":\"ready\"}");
    }
}
