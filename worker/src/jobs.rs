//! Job pools, the worker side: the inbox the stdin thread fills with `job` frames,
//! the credit kept with `want`, [`Jobs`] (an iterator of [`Job`]s) and
//! [`Worker::serve`] (a handler run on several threads).
//!
//! Credit: the worker asks for `limit` jobs at first (`want`), then, whenever the
//! jobs it holds plus those it asked for and did not get fall to half the limit,
//! asks for the difference, in the same write as the answer that freed the room.
//! So a fast worker keeps getting work and a slow one never holds more than
//! `limit` jobs.

use crate::worker::Worker;
use distarch_protocol::WorkerFrame;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long [`Jobs`] waits for a job before it sends a (rate-limited) `ping`, so
/// that an idle worker is not taken for a hung one.
const IDLE_PING: Duration = Duration::from_millis(500);

/// Jobs received and the credit given, shared by the stdin thread and the
/// threads that work.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    arrived: Condvar,
}

#[derive(Debug, Default)]
struct InboxState {
    queue: VecDeque<(u64, Value)>,
    /// Jobs asked for (`want`) and not received yet.
    credit: u64,
    /// Jobs received and not answered yet (queued or being worked on).
    held: u64,
    /// The most jobs the worker wants to hold: credit + held stay at most this.
    limit: u64,
    /// No more jobs will come (stop frame, or the master is gone).
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        // Plain counters and a queue: a panic elsewhere cannot leave them unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A `job` frame arrived.
    pub(crate) fn push(&self, id: u64, payload: Value) {
        let mut s = self.lock();
        s.credit = s.credit.saturating_sub(1);
        s.held += 1;
        s.queue.push_back((id, payload));
        drop(s);
        self.arrived.notify_one();
    }

    /// No more jobs: wakes every waiting thread.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_all();
    }

    /// Raises the limit to at least `limit`; returns the credit to ask for now.
    fn open(&self, limit: u64) -> u64 {
        let mut s = self.lock();
        s.limit = s.limit.max(limit.max(1));
        top_up(&mut s, true)
    }

    /// The next job; `None` once closed and empty. `idle` runs on each wait.
    fn next(&self, idle: impl Fn()) -> Option<(u64, Value)> {
        let mut s = self.lock();
        loop {
            if let Some(job) = s.queue.pop_front() {
                return Some(job);
            }
            if s.closed {
                return None;
            }
            s = self
                .arrived
                .wait_timeout(s, IDLE_PING)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if s.queue.is_empty() && !s.closed {
                drop(s);
                idle();
                s = self.lock();
            }
        }
    }

    /// A job was answered; returns the credit to ask for with the answer.
    fn answered(&self) -> u64 {
        let mut s = self.lock();
        s.held = s.held.saturating_sub(1);
        top_up(&mut s, false)
    }
}

/// Credit to ask for: up to the limit, once at least half of it is free (or at
/// once when `now`). Counts it as asked.
fn top_up(s: &mut InboxState, now: bool) -> u64 {
    if s.closed || s.limit == 0 {
        return 0;
    }
    let have = s.credit + s.held;
    let free = s.limit.saturating_sub(have);
    if free == 0 || (!now && have > s.limit / 2) {
        return 0;
    }
    s.credit += free;
    free
}

/// Why a job failed, as the worker tells the master in a `failed` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// What went wrong.
    pub message: String,
    /// Whether another attempt (maybe on another instance) may succeed.
    pub retryable: bool,
}

impl JobError {
    /// A failure worth another attempt (up to the pool's `max_attempts`).
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix: the job goes to the dead-letter output now.
    pub fn fatal(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            retryable: false,
        }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

/// One work item from the master. Answer it with [`Job::done`] or [`Job::fail`];
/// a job dropped without an answer is reported as a retryable failure.
#[derive(Debug)]
pub struct Job {
    id: u64,
    payload: Value,
    worker: Worker,
    answered: bool,
}

impl Job {
    /// The job's id (unique in the run; the input's record number).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The work item.
    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// The work item, read into a type.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        T::deserialize(&self.payload)
            .map_err(|e| JobError::fatal(format!("payload does not fit: {e}")))
    }

    /// Reports success with `result` (`Value::Null` for none).
    pub fn done(mut self, result: Value) {
        self.answer(Ok(result));
    }

    /// Reports a failure.
    pub fn fail(mut self, error: JobError) {
        self.answer(Err(error));
    }

    fn answer(&mut self, outcome: Result<Value, JobError>) {
        self.answered = true;
        let frame = match outcome {
            Ok(result) => WorkerFrame::Done {
                id: self.id,
                result: (!result.is_null()).then_some(result),
            },
            Err(e) => WorkerFrame::Failed {
                id: self.id,
                error: e.message,
                retryable: e.retryable,
            },
        };
        let more = self.worker.inbox().answered();
        if more > 0 {
            self.worker
                .send_frames(&[frame, WorkerFrame::Want { n: more }]);
        } else {
            self.worker.send_frames(&[frame]);
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.answered {
            self.answer(Err(JobError::retryable(
                "the job was dropped without an answer",
            )));
        }
    }
}

/// The jobs the master hands to this instance, in the order they come. Iterating
/// asks for work (`want`) on the first call; it ends when the master sends `stop`
/// or is gone. Made by [`Worker::jobs`].
#[derive(Debug)]
pub struct Jobs {
    worker: Worker,
    limit: u64,
    opened: bool,
}

/// Jobs a worker holds at most by default (credit asked for plus jobs at hand).
pub const DEFAULT_JOB_CREDIT: u64 = 16;

impl Jobs {
    pub(crate) fn new(worker: Worker) -> Self {
        Jobs {
            worker,
            limit: DEFAULT_JOB_CREDIT,
            opened: false,
        }
    }

    /// Holds at most `n` jobs at a time (at least 1; default
    /// [`DEFAULT_JOB_CREDIT`]). Small values share work more evenly between
    /// instances; larger ones hide the round trip to the master.
    pub fn credit(mut self, n: u64) -> Self {
        self.limit = n.max(1);
        self
    }

    fn open(&mut self) {
        if !self.opened {
            self.opened = true;
            self.worker.listen();
            let n = self.worker.inbox().open(self.limit);
            if n > 0 {
                self.worker.send_frames(&[WorkerFrame::Want { n }]);
            }
        }
    }

    /// The next job, or `None` once the worker must stop.
    pub fn next_job(&mut self) -> Option<Job> {
        self.open();
        let worker = &self.worker;
        let (id, payload) = worker.inbox().next(|| worker.ping())?;
        Some(Job {
            id,
            payload,
            worker: self.worker.clone(),
            answered: false,
        })
    }
}

impl Iterator for Jobs {
    type Item = Job;
    fn next(&mut self) -> Option<Job> {
        self.next_job()
    }
}

impl Worker {
    /// The jobs the master hands to this instance (job pools): see [`Jobs`].
    ///
    /// ```no_run
    /// let worker = distarch_worker::Worker::from_env()?;
    /// for job in worker.jobs() {
    ///     let n = job.payload().as_i64().unwrap_or(0);
    ///     job.done(serde_json::json!(n * 2));
    /// }
    /// # Ok::<(), distarch_worker::WorkerError>(())
    /// ```
    pub fn jobs(&self) -> Jobs {
        Jobs::new(self.clone())
    }

    /// Runs `handler` on every job, on `concurrency` threads (at least 1), until
    /// the master sends `stop` or is gone; each handler's `Ok` is the job's result,
    /// its `Err` the failure. The credit is twice the concurrency, at least
    /// [`DEFAULT_JOB_CREDIT`].
    ///
    /// ```no_run
    /// let worker = distarch_worker::Worker::from_env()?;
    /// worker.serve(4, |job| match job.payload().as_str() {
    ///     Some(text) => Ok(serde_json::json!(text.len())),
    ///     None => Err(distarch_worker::JobError::fatal("not a string")),
    /// });
    /// # Ok::<(), distarch_worker::WorkerError>(())
    /// ```
    pub fn serve<F>(&self, concurrency: usize, handler: F)
    where
        F: Fn(&Job) -> Result<Value, JobError> + Sync,
    {
        let concurrency = concurrency.max(1);
        let credit = (2 * concurrency as u64).max(DEFAULT_JOB_CREDIT);
        let jobs = Mutex::new(self.jobs().credit(credit));
        std::thread::scope(|scope| {
            for _ in 0..concurrency {
                scope.spawn(|| loop {
                    let next = jobs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .next_job();
                    let Some(job) = next else { break };
                    match handler(&job) {
                        Ok(result) => job.done(result),
                        Err(e) => job.fail(e),
                    }
                });
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_asked_at_once_then_topped_up_at_half() {
        let inbox = Inbox::default();
        assert_eq!(inbox.open(4), 4);
        for id in 1..=4 {
            inbox.push(id, Value::Null);
        }
        assert_eq!(inbox.next(|| {}).map(|j| j.0), Some(1));
        assert_eq!(inbox.answered(), 0, "3 held of 4: no top-up yet");
        assert_eq!(inbox.answered(), 2, "2 held of 4: ask for 2");
        inbox.close();
        assert_eq!(
            inbox.next(|| {}).map(|j| j.0),
            Some(2),
            "queued jobs still come"
        );
        assert_eq!(inbox.answered(), 0, "closed: no more credit");
    }

    #[test]
    fn next_waits_and_pings_until_closed() {
        let inbox = std::sync::Arc::new(Inbox::default());
        let pings = std::sync::atomic::AtomicU32::new(0);
        let closer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1200));
                inbox.close();
            })
        };
        let got = inbox.next(|| {
            pings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        closer.join().unwrap();
        assert!(got.is_none());
        assert!(pings.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    }
}
