//! The file thread: log files are formatted and written on a thread of their own,
//! so that the event pump (which also writes standard output) only hands each
//! event over.
//!
//! Events travel as `Arc<Event>` (no copy of their text), [`BATCH`] at a time (or
//! fewer, whenever the event pump has nothing more to do), through a channel of
//! [`QUEUED_BATCHES`]: waking the thread for each event would cost more than
//! writing it. When the channel is full (a slow or stuck disk), handing a batch
//! over waits: the event pump stops, the run's event channel fills and the
//! workers are slowed down, as with a slow standard output. No line is ever
//! dropped for lack of room, and memory stays bounded.
//!
//! The thread formats events into each file's buffer and writes a buffer when it
//! is large or when no batch is waiting (so a quiet run's lines reach the file at
//! once, and a flood's in large writes, never one write per line). When the last
//! handle is dropped (the run ended, Ctrl-C included), the thread writes
//! everything still queued and ends; the drop waits for it.

use crate::files::{ErrorHook, Files, LogFileError, Reopen};
use distarch_core::{Config, Event, EventObserver, LiveOutput};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How many events are handed to the file thread at once (at most). An event is
/// one read of one worker stream (up to 16 KiB of lines) or a single message.
pub const BATCH: usize = 32;

/// How many batches may wait for the file thread.
pub const QUEUED_BATCHES: usize = 8;

/// What the file thread is asked to do.
enum Job {
    /// Write these events.
    Events(Vec<Arc<Event>>),
    /// Write everything buffered, then say so.
    Sync(SyncSender<()>),
}

/// The thread and the way to it.
struct Thread {
    jobs: SyncSender<Job>,
    handle: JoinHandle<()>,
}

/// Every log file of a run, as one [`EventObserver`]: events are written on a
/// thread of its own (see the module documentation).
pub struct LogFiles {
    /// `None` when no file is configured (or the thread is gone).
    thread: Option<Thread>,
    /// Events not handed over yet.
    pending: Vec<Arc<Event>>,
    reopen: Reopen,
    paths: Vec<PathBuf>,
    on_error: ErrorHook,
    /// Set once the thread was found gone (reported once).
    lost: bool,
}

impl LogFiles {
    /// Opens every file `config` names (none: an empty set, and no thread).
    /// The least severe level written and the time zone of text timestamps
    /// follow `live`, and a reload there opens the files again. `on_error` is called on the first failed write of each file
    /// (until it is opened again).
    pub fn open(
        config: &Config,
        live: &LiveOutput,
        on_error: impl Fn(&std::path::Path, &std::io::Error) + Send + Sync + 'static,
    ) -> Result<LogFiles, LogFileError> {
        let on_error: ErrorHook = Arc::new(on_error);
        let files = Files::open(config, live, on_error.clone())?;
        let reopen = files.reopen_handle();
        let first = files
            .names()
            .next()
            .map(|(key, path)| (key.to_string(), path.to_path_buf()));
        let paths: Vec<PathBuf> = files.names().map(|(_, p)| p.to_path_buf()).collect();
        let thread = match first {
            None => None,
            Some((key, path)) => {
                let (jobs, rx) = mpsc::sync_channel(QUEUED_BATCHES);
                let handle = std::thread::Builder::new()
                    .name("distarch-logfile".into())
                    .spawn(move || write_files(files, rx))
                    .map_err(|source| LogFileError { key, path, source })?;
                Some(Thread { jobs, handle })
            }
        };
        Ok(LogFiles {
            thread,
            pending: Vec::with_capacity(BATCH),
            reopen,
            paths,
            on_error,
            lost: false,
        })
    }

    /// True when no file is configured.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// A handle that makes these files open again (before the next event written).
    pub fn reopen_handle(&self) -> Reopen {
        self.reopen.clone()
    }

    /// Waits until every event observed so far is written to its files.
    pub fn sync(&mut self) {
        self.hand_over();
        let (done, wait) = mpsc::sync_channel(1);
        if self.send(Job::Sync(done)) {
            // An error means the thread is gone, which `send` reported.
            let _ = wait.recv();
        }
    }

    /// Hands the pending events to the thread.
    fn hand_over(&mut self) {
        if !self.pending.is_empty() {
            let events = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
            self.send(Job::Events(events));
        }
    }

    /// Keeps `event` for the thread, handing a full batch over.
    fn keep(&mut self, event: Arc<Event>) {
        if self.thread.is_some() {
            self.pending.push(event);
            if self.pending.len() >= BATCH {
                self.hand_over();
            }
        }
    }

    /// Hands `job` to the thread (waiting while its queue is full). False, and
    /// said once, when the thread is gone: it only ends when it panicked.
    fn send(&mut self, job: Job) -> bool {
        let Some(thread) = &self.thread else {
            return false;
        };
        if thread.jobs.send(job).is_ok() {
            return true;
        }
        if !self.lost {
            self.lost = true;
            let e =
                std::io::Error::other("the log file thread stopped: lines are no longer written");
            for path in &self.paths {
                (self.on_error)(path, &e);
            }
        }
        false
    }
}

impl EventObserver for LogFiles {
    fn observe(&mut self, event: &Event) {
        if self.thread.is_some() {
            self.keep(Arc::new(event.clone()));
        }
    }

    fn observe_shared(&mut self, event: &Arc<Event>) {
        self.keep(event.clone());
    }

    /// The event pump has nothing more to do: the pending events go to the thread,
    /// which writes them as soon as it has nothing more to do either.
    fn flush(&mut self) {
        self.hand_over();
    }
}

impl Drop for LogFiles {
    /// Lets the thread write everything queued, and waits for it.
    fn drop(&mut self) {
        self.hand_over();
        if let Some(Thread { jobs, handle }) = self.thread.take() {
            drop(jobs);
            let _ = handle.join();
        }
    }
}

/// The file thread: writes what it receives until every sender is gone.
fn write_files(mut files: Files, jobs: Receiver<Job>) {
    loop {
        let job = match jobs.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Empty) => {
                // Nothing waiting: write what is buffered, then wait.
                files.flush();
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match job {
            Job::Events(events) => {
                for event in events {
                    files.write_event(&event);
                }
            }
            Job::Sync(done) => {
                files.flush();
                let _ = done.send(());
            }
        }
    }
    files.flush();
}
