//! [`Worker`]: identity, frames and the stop flag of one instance.

use crate::error::WorkerError;
use crate::identity::Identity;
use crate::jobs::Inbox;
use crate::output::{FrameWriter, Sink};
use crate::stop::{listen, StopReason, StopSignal};
use distarch_protocol::{Level, WorkerFrame};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;

/// Default grace between "the master is gone" and the SDK ending the process.
pub const DEFAULT_MASTER_GONE_GRACE: Duration = Duration::from_secs(5);

/// One running instance, as seen from inside: who it is, how to talk to the master,
/// and whether it should stop.
///
/// Cheap to clone (all clones share one state) and `Send + Sync`: hand a clone to
/// every thread that logs or checks [`Worker::must_stop`].
///
/// ```no_run
/// let worker = distarch_worker::Worker::from_env()?;
/// worker.ready();
/// while worker.sleep(std::time::Duration::from_secs(1)) {
///     worker.info(format!("instance {} of {}", worker.group_id(), worker.group_count()));
/// }
/// worker.ended();
/// # Ok::<(), distarch_worker::WorkerError>(())
/// ```
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    identity: Identity,
    out: FrameWriter,
    stop: Arc<StopSignal>,
    /// Jobs received from the master (job pools).
    inbox: Arc<Inbox>,
    /// The stream the master's frames come from; taken by the listener thread.
    input: Mutex<Option<Box<dyn Read + Send>>>,
    listening: Once,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("identity", &self.inner.identity)
            .field("stop_reason", &self.stop_reason_now())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Builds the worker from the `DISTARCH_*` environment variables.
    ///
    /// Fails with [`WorkerError::MissingVar`] ("not started by distarch:
    /// DISTARCH_ID is not set") when a variable is missing, and with
    /// [`WorkerError::InvalidVar`] naming the variable when a value is unusable.
    /// Nothing is read from stdin until [`Worker::listen`] (or a method that needs
    /// the stop flag) is called.
    pub fn from_env() -> Result<Worker, WorkerError> {
        Worker::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Builds the worker from variables looked up by `get` instead of the
    /// environment (for tests and embedding). Frames go to stdout and the master's
    /// frames come from stdin, unless changed with [`Worker::with_output`] and
    /// [`Worker::with_input`].
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let vars: HashMap<&str, &str> = [
    ///     ("DISTARCH_PROTOCOL", "1"), ("DISTARCH_RUN_ID", "k3x"), ("DISTARCH_ID", "3"),
    ///     ("DISTARCH_GROUP", "first"), ("DISTARCH_GROUP_ID", "1"),
    ///     ("DISTARCH_GROUP_COUNT", "2"), ("DISTARCH_HOST", "localhost"),
    ///     ("DISTARCH_RESTART", "0"), ("DISTARCH_PARAMS", r#"{"message":"hi"}"#),
    /// ].into_iter().collect();
    /// let worker = distarch_worker::Worker::from_vars(|n| vars.get(n).map(|v| v.to_string()))?;
    /// assert_eq!((worker.id(), worker.group()), (3, "first"));
    /// assert_eq!(worker.params_json()["message"], "hi");
    /// # Ok::<(), distarch_worker::WorkerError>(())
    /// ```
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Worker, WorkerError> {
        let identity = Identity::from_vars(get)?;
        let group_count = identity.group_count;
        Ok(Worker {
            inner: Arc::new(Inner {
                identity,
                out: FrameWriter::new(Sink::Stdout),
                stop: Arc::new(StopSignal::new(
                    Some(DEFAULT_MASTER_GONE_GRACE),
                    group_count,
                )),
                inbox: Arc::new(Inbox::default()),
                input: Mutex::new(Some(Box::new(std::io::stdin()))),
                listening: Once::new(),
            }),
        })
    }

    /// Reads the master's frames from `input` instead of stdin. Call it before
    /// anything starts listening; later calls have no effect.
    pub fn with_input(self, input: impl Read + Send + 'static) -> Self {
        *self
            .inner
            .input
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(input));
        self
    }

    /// Writes frames to `output` instead of stdout.
    pub fn with_output(self, output: impl Write + Send + 'static) -> Self {
        self.inner.out.set_sink(Sink::Custom(Box::new(output)));
        self
    }

    /// How long after the master is gone (stdin EOF) the SDK ends the process with
    /// exit code [`MASTER_GONE_EXIT_CODE`](crate::MASTER_GONE_EXIT_CODE) if the
    /// program has not exited by itself; `None` never does. Default:
    /// [`DEFAULT_MASTER_GONE_GRACE`] (5 s). This is what guarantees that a worker
    /// whose master died does not run on forever, even if it never checks
    /// [`Worker::must_stop`].
    pub fn with_master_gone_exit(self, grace: Option<Duration>) -> Self {
        self.set_master_gone_exit(grace);
        self
    }

    /// Same as [`Worker::with_master_gone_exit`], on a shared worker (for example
    /// the one [`run`](crate::run) hands out). Takes effect if called before the
    /// master is gone.
    pub fn set_master_gone_exit(&self, grace: Option<Duration>) {
        self.inner.stop.set_exit_grace(grace);
    }

    /// Shortest time between two `ping` frames sent by [`Worker::ping`]
    /// (default [`DEFAULT_PING_INTERVAL`](crate::DEFAULT_PING_INTERVAL), 1 s).
    pub fn with_ping_interval(self, interval: Duration) -> Self {
        self.inner.out.set_ping_interval(interval);
        self
    }

    /// Instance id: 1-based, unique across the whole run.
    pub fn id(&self) -> u64 {
        self.inner.identity.id
    }

    /// 1-based index of this instance within its group.
    pub fn group_id(&self) -> u64 {
        self.inner.identity.group_id
    }

    /// Number of instances in the group: `DISTARCH_GROUP_COUNT` at start, then the
    /// count of the latest `group_count` frame (the group was scaled). Starts
    /// listening to the master, like [`Worker::must_stop`].
    pub fn group_count(&self) -> u64 {
        self.listen();
        self.inner.stop.group_count()
    }

    /// Sends `hello` ("I speak the protocol", with this SDK's name and version)
    /// unless it was sent already. Every first frame is preceded by it anyway;
    /// [`run`](crate::run) calls it first thing, so that it precedes plain lines too.
    pub fn hello(&self) {
        self.send(&crate::output::hello_frame());
    }

    /// Name of the group.
    pub fn group(&self) -> &str {
        &self.inner.identity.group
    }

    /// Label of where this instance runs (host name, `localhost`, ...).
    pub fn host(&self) -> &str {
        &self.inner.identity.host
    }

    /// Short random id of the run.
    pub fn run_id(&self) -> &str {
        &self.inner.identity.run_id
    }

    /// How many times this instance was restarted before (0 on the first start).
    pub fn restart(&self) -> u32 {
        self.inner.identity.restart
    }

    /// The group's params, as a JSON object.
    pub fn params_json(&self) -> &Map<String, Value> {
        &self.inner.identity.params
    }

    /// The group's params, deserialized into `T`.
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Params { message: String }
    /// let worker = distarch_worker::Worker::from_env()?;
    /// let params: Params = worker.params()?;
    /// worker.info(params.message);
    /// # Ok::<(), distarch_worker::WorkerError>(())
    /// ```
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, WorkerError> {
        serde_json::from_value(Value::Object(self.inner.identity.params.clone()))
            .map_err(WorkerError::Params)
    }

    /// Starts the background thread that reads the master's frames (once; later
    /// calls do nothing). [`Worker::must_stop`], [`Worker::stop_reason`],
    /// [`Worker::sleep`], [`Worker::wait_stop`] and [`Worker::ready`] call it, so
    /// explicit calls are needed only by a program that uses none of them but still
    /// wants the SDK to end it when the master is gone.
    pub fn listen(&self) {
        self.inner.listening.call_once(|| {
            let input = self
                .inner
                .input
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(input) = input else { return };
            let stop = self.inner.stop.clone();
            let inbox = self.inner.inbox.clone();
            let spawned = std::thread::Builder::new()
                .name("distarch-stdin".into())
                .spawn(move || listen(input, &stop, &inbox));
            if let Err(e) = spawned {
                // Without the thread no stop can be noticed; say so rather than hang.
                self.error(format!(
                    "distarch-worker: cannot start the stdin thread: {e}"
                ));
            }
        });
    }

    /// True once the worker should stop: the master sent `stop`, or is gone.
    /// Cheap (one atomic load once listening): call it in a hot loop.
    pub fn must_stop(&self) -> bool {
        self.listen();
        self.inner.stop.is_raised()
    }

    /// Why the worker should stop, or `None` while it should go on.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.listen();
        self.stop_reason_now()
    }

    fn stop_reason_now(&self) -> Option<StopReason> {
        self.inner.stop.reason()
    }

    /// Sleeps for `duration`, waking early when the worker must stop. Returns
    /// `true` after a full sleep, `false` when it must stop (at once if it already
    /// must), so `while worker.sleep(d) { ... }` is a complete work loop.
    pub fn sleep(&self, duration: Duration) -> bool {
        self.listen();
        !self.inner.stop.wait(Some(duration))
    }

    /// Blocks until the worker must stop, and returns why.
    pub fn wait_stop(&self) -> StopReason {
        self.listen();
        self.inner.stop.wait(None);
        self.stop_reason_now().unwrap_or(StopReason::MasterGone)
    }

    /// Sends a `ping` ("I am alive") unless a frame was sent less than the ping
    /// interval (1 s) ago. Cheap enough for a hot loop: the common case is a clock
    /// read and a comparison, with no system call.
    pub fn ping(&self) {
        let sent = self.inner.out.ping();
        self.check(sent.map(drop));
    }

    /// Sends a `log` frame with optional structured fields.
    ///
    /// ```no_run
    /// use distarch_worker::Level;
    /// let worker = distarch_worker::Worker::from_env()?;
    /// let mut fields = serde_json::Map::new();
    /// fields.insert("file".into(), "a.csv".into());
    /// worker.log(Level::Info, "imported", Some(fields));
    /// # Ok::<(), distarch_worker::WorkerError>(())
    /// ```
    pub fn log(
        &self,
        level: Level,
        message: impl Into<String>,
        fields: Option<Map<String, Value>>,
    ) {
        self.send(&WorkerFrame::Log {
            level,
            message: message.into(),
            fields,
        });
    }

    /// Sends a `log` frame at `trace`.
    pub fn trace(&self, message: impl Into<String>) {
        self.log(Level::Trace, message, None);
    }

    /// Sends a `log` frame at `debug`.
    pub fn debug(&self, message: impl Into<String>) {
        self.log(Level::Debug, message, None);
    }

    /// Sends a `log` frame at `info`.
    pub fn info(&self, message: impl Into<String>) {
        self.log(Level::Info, message, None);
    }

    /// Sends a `log` frame at `warn`.
    pub fn warn(&self, message: impl Into<String>) {
        self.log(Level::Warn, message, None);
    }

    /// Sends a `log` frame at `error`.
    pub fn error(&self, message: impl Into<String>) {
        self.log(Level::Error, message, None);
    }

    /// Sends `ready` (start-up is done) and starts listening for the master.
    pub fn ready(&self) {
        self.listen();
        self.send(&WorkerFrame::Ready);
    }

    /// Sends a short free-text `status`, shown by the master.
    pub fn status(&self, text: impl Into<String>) {
        self.send(&WorkerFrame::Status { text: text.into() });
    }

    /// Sends `ended`: the worker is about to exit on purpose. [`run`](crate::run)
    /// sends it for you.
    pub fn ended(&self) {
        self.send(&WorkerFrame::Ended);
    }

    fn send(&self, frame: &WorkerFrame) {
        self.check(self.inner.out.send(frame));
    }

    /// Writes several frames in one write.
    pub(crate) fn send_frames(&self, frames: &[WorkerFrame]) {
        self.check(self.inner.out.send_many(frames));
    }

    pub(crate) fn inbox(&self) -> &Inbox {
        &self.inner.inbox
    }

    /// A frame that cannot be written means nobody reads our stdout any more: the
    /// master is gone. Frames are fire-and-forget, so this is where the error goes.
    fn check(&self, result: std::io::Result<()>) {
        if result.is_err() {
            self.inner.stop.raise(StopReason::MasterGone);
        }
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn stop_signal(&self) -> &StopSignal {
        &self.inner.stop
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::identity::tests::vars;
    use crate::output::tests::SharedBuf;

    fn test_worker(input: &'static [u8]) -> (Worker, SharedBuf) {
        let vars = vars();
        let buf = SharedBuf::default();
        let worker = Worker::from_vars(|n| vars.get(n).cloned())
            .unwrap()
            .with_input(input)
            .with_output(buf.clone())
            .with_master_gone_exit(None);
        (worker, buf)
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Params {
        message: String,
        n: u32,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Wrong {
        missing: String,
    }

    #[test]
    fn params_deserialize_into_a_type() {
        let (worker, _) = test_worker(b"");
        let p: Params = worker.params().unwrap();
        assert_eq!(
            p,
            Params {
                message: "Hello World!".into(),
                n: 7
            }
        );
        let err = worker.params::<Wrong>().unwrap_err();
        assert!(matches!(err, WorkerError::Params(_)));
        assert!(crate::error::Chain(&err).to_string().contains("missing"));
    }

    #[test]
    fn frames_are_written_as_lines() {
        let (worker, buf) = test_worker(b"");
        worker.status("loading");
        let mut fields = Map::new();
        fields.insert("rows".into(), 12.into());
        worker.log(Level::Debug, "read", Some(fields));
        worker.ended();
        assert_eq!(
            buf.lines()[1..],
            vec![
                "\u{1e}{\"type\":\"status\",\"text\":\"loading\"}",
                "\u{1e}{\"type\":\"log\",\"level\":\"debug\",\"message\":\"read\",\"fields\":{\"rows\":12}}",
                "\u{1e}{\"type\":\"ended\"}",
            ]
        );
    }

    #[test]
    fn a_stop_frame_stops_sleep_and_eof_means_master_gone() {
        let (worker, _) = test_worker(b"\x1e{\"type\":\"stop\"}\n");
        // The stop frame and the EOF right after it race with this thread.
        let first = worker.wait_stop();
        assert!(matches!(
            first,
            StopReason::StopRequested | StopReason::MasterGone
        ));
        assert!(worker.must_stop());
        assert!(!worker.sleep(Duration::from_secs(600)));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while worker.stop_reason() != Some(StopReason::MasterGone) {
            assert!(std::time::Instant::now() < deadline, "EOF never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_stop_frame_with_stdin_still_open_is_stop_requested() {
        // A reader that delivers the stop frame, then blocks until the test ends.
        struct StopThenHang(Option<&'static [u8]>, std::sync::mpsc::Receiver<()>);
        impl Read for StopThenHang {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self.0.take() {
                    Some(bytes) => {
                        buf[..bytes.len()].copy_from_slice(bytes);
                        Ok(bytes.len())
                    }
                    None => {
                        let _ = self.1.recv();
                        Ok(0)
                    }
                }
            }
        }
        let (_keep_open, rx) = std::sync::mpsc::channel();
        let (worker, _) = test_worker(b"");
        let worker = worker.with_input(StopThenHang(Some(b"\x1e{\"type\":\"stop\"}\n"), rx));
        assert_eq!(worker.wait_stop(), StopReason::StopRequested);
        assert_eq!(worker.stop_reason(), Some(StopReason::StopRequested));
    }

    #[test]
    fn a_broken_output_means_master_gone() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (worker, _) = test_worker(b"");
        let worker = worker.with_output(Broken);
        worker.info("nobody hears this");
        assert_eq!(worker.inner.stop.reason(), Some(StopReason::MasterGone));
    }
}
