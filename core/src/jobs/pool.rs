//! The pool: one task per job pool that owns every job from the moment it is read
//! until its result is written. It hands jobs out against the credit each
//! instance gave (`want`), takes `done`/`failed` answers (a duplicate answer, from
//! an attempt already given up on, is dropped), requeues the jobs of an instance
//! that ended, dead-letters those that failed `max_attempts` times, and writes
//! results in input order when asked to.
//!
//! Blame: when an instance ends with several jobs in flight, nobody knows which
//! one (if any) killed it. Those attempts are not counted; the jobs become
//! *suspects* and each is retried alone on an instance that has nothing else in
//! flight. An instance that ends with a single job in flight counts an attempt
//! against it, so a job that crashes its worker every time is dead-lettered after
//! `max_attempts`, and the jobs that were merely beside it are not.

use super::config::JobsConfig;
use super::input::Record;
use super::link::{PoolMsg, Reply};
use super::output::OutBatch;
use super::stats::JobCounters;
use crate::events::Event;
use crate::launcher::master_line;
use distarch_protocol::{Level, FRAME_MARKER};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

/// One job the pool holds.
struct JobState {
    payload: Value,
    attempts: u32,
    /// The slot it is in flight on.
    slot: Option<u64>,
    /// Finished, its lines waiting for the jobs before it (keep_order).
    finished: Option<Finished>,
    /// It was in flight, with others, on an instance that ended: it is retried
    /// alone.
    suspect: bool,
}

/// The lines of a finished job (keep_order holds them back).
#[derive(Default)]
struct Finished {
    result: Vec<u8>,
    journal: Vec<u8>,
}

/// One attached start of an instance.
struct Slot {
    instance: u64,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    credit: u64,
    in_flight: HashSet<u64>,
    /// It runs a suspect alone: it gets nothing else until that is answered.
    isolated: bool,
}

/// The pool's state (the task's loop is in [`super::run`]).
pub(crate) struct Pool {
    pub(crate) group: Arc<str>,
    max_attempts: u32,
    keep_order: bool,
    dead_to_file: bool,
    jobs: HashMap<u64, JobState>,
    queue: VecDeque<u64>,
    /// Ids in input order, while keep_order.
    order: VecDeque<u64>,
    slots: HashMap<u64, Slot>,
    in_flight: u64,
    held: u64,
    pub(crate) out: OutBatch,
    /// Master log lines to send (dead letters without a file, notes).
    pub(crate) notes: Vec<Event>,
    pub(crate) counters: Arc<JobCounters>,
}

impl Pool {
    pub(crate) fn new(group: Arc<str>, config: &JobsConfig, counters: Arc<JobCounters>) -> Self {
        Pool {
            group,
            max_attempts: config.max_attempts,
            keep_order: config.keep_order,
            dead_to_file: config.dead_letter.is_some(),
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            order: VecDeque::new(),
            slots: HashMap::new(),
            in_flight: 0,
            held: 0,
            out: OutBatch::default(),
            notes: Vec::new(),
            counters,
        }
    }

    /// Jobs read and not yet written out.
    pub(crate) fn outstanding(&self) -> usize {
        self.jobs.len()
    }

    /// New records from the input.
    pub(crate) fn add(&mut self, records: Vec<Record>) {
        self.counters.add_read(records.len() as u64);
        for r in records {
            if self.keep_order {
                self.order.push_back(r.id);
            }
            match r.payload {
                Ok(payload) => {
                    self.jobs.insert(
                        r.id,
                        JobState {
                            payload,
                            attempts: 0,
                            slot: None,
                            finished: None,
                            suspect: false,
                        },
                    );
                    self.queue.push_back(r.id);
                }
                Err((payload, error)) => {
                    self.jobs.insert(
                        r.id,
                        JobState {
                            payload,
                            attempts: 0,
                            slot: None,
                            finished: None,
                            suspect: false,
                        },
                    );
                    self.dead(r.id, &error);
                }
            }
        }
    }

    /// One message from an instance.
    pub(crate) fn handle(&mut self, msg: PoolMsg) {
        match msg {
            PoolMsg::Attach {
                slot,
                instance,
                frames,
            } => {
                self.slots.insert(
                    slot,
                    Slot {
                        instance,
                        frames,
                        credit: 0,
                        in_flight: HashSet::new(),
                        isolated: false,
                    },
                );
            }
            PoolMsg::Replies { slot, replies } => {
                for reply in replies {
                    self.reply(slot, reply);
                }
            }
            PoolMsg::Detach { slot } => self.detach(slot),
        }
    }

    fn reply(&mut self, slot: u64, reply: Reply) {
        match reply {
            Reply::Want(n) => {
                if let Some(s) = self.slots.get_mut(&slot) {
                    s.credit = s.credit.saturating_add(n);
                }
            }
            Reply::Done { id, result } => {
                if self.take_in_flight(id) {
                    self.done(id, result.unwrap_or(Value::Null));
                }
            }
            Reply::Failed {
                id,
                error,
                retryable,
            } => {
                if !self.take_in_flight(id) {
                    return;
                }
                let attempts = self.jobs.get(&id).map_or(0, |j| j.attempts);
                if retryable && attempts < self.max_attempts {
                    self.requeue(id);
                } else {
                    let why = if retryable {
                        format!("{error} (after {attempts} attempts)")
                    } else {
                        error
                    };
                    self.dead(id, &why);
                }
            }
        }
    }

    /// Takes job `id` out of flight; false when it is not in flight (unknown, or
    /// already finished: a duplicate answer).
    fn take_in_flight(&mut self, id: u64) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        let Some(slot) = job.slot.take() else {
            return false;
        };
        if let Some(s) = self.slots.get_mut(&slot) {
            s.in_flight.remove(&id);
            if job.suspect {
                s.isolated = false;
            }
        }
        job.suspect = false;
        self.in_flight -= 1;
        true
    }

    fn requeue(&mut self, id: u64) {
        self.counters.add_retried(1);
        self.queue.push_front(id);
    }

    /// The instance of `slot` ended: its jobs in flight go back to the queue (or to
    /// the dead letters once they used up their attempts).
    fn detach(&mut self, slot: u64) {
        let Some(s) = self.slots.remove(&slot) else {
            return;
        };
        let alone = s.in_flight.len() == 1;
        let mut ids: Vec<u64> = s.in_flight.into_iter().collect();
        ids.sort_unstable_by(|a, b| b.cmp(a)); // pushed to the front: lowest first
        for id in ids {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            job.slot = None;
            self.in_flight -= 1;
            if !alone {
                // Not to blame for sure: the attempt is given back.
                job.attempts = job.attempts.saturating_sub(1);
                job.suspect = true;
            }
            if alone && job.attempts >= self.max_attempts {
                let why = format!(
                    "instance {} ended while running it (after {} attempts)",
                    s.instance, job.attempts
                );
                self.dead(id, &why);
            } else {
                self.requeue(id);
            }
        }
    }

    fn done(&mut self, id: u64, result: Value) {
        self.counters.add_done(1);
        let mut f = Finished::default();
        let line = serde_json::json!({"id": id, "result": result});
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut f.result, &line);
        f.result.push(b'\n');
        f.journal = format!("{id}\n").into_bytes();
        self.finish(id, f);
    }

    fn dead(&mut self, id: u64, error: &str) {
        self.counters.add_dead(1);
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let line = serde_json::json!({
            "id": id,
            "payload": job.payload,
            "error": error,
            "attempts": job.attempts,
        });
        if self.dead_to_file {
            let _ = serde_json::to_writer(&mut self.out.dead, &line);
            self.out.dead.push(b'\n');
        } else {
            self.notes.push(master_line(
                Level::Error,
                format!("jobs [{}]: job failed for good: {line}", self.group),
            ));
        }
        self.finish(id, Finished::default());
    }

    fn finish(&mut self, id: u64, f: Finished) {
        if !self.keep_order {
            self.out.results.extend_from_slice(&f.result);
            self.out.journal.extend_from_slice(&f.journal);
            self.jobs.remove(&id);
            return;
        }
        if let Some(job) = self.jobs.get_mut(&id) {
            job.finished = Some(f);
            self.held += 1;
        }
        while let Some(front) = self.order.front() {
            let Some(job) = self.jobs.get(front) else {
                self.order.pop_front(); // not a job (never happens) or gone
                continue;
            };
            if job.finished.is_none() {
                break;
            }
            let Some(job) = self.jobs.remove(front) else {
                break;
            };
            self.order.pop_front();
            self.held -= 1;
            if let Some(f) = job.finished {
                self.out.results.extend_from_slice(&f.result);
                self.out.journal.extend_from_slice(&f.journal);
            }
        }
    }

    /// Hands queued jobs to the instances that have credit.
    pub(crate) fn dispatch(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let mut slots: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.credit > 0 && !s.isolated)
            .map(|(k, _)| *k)
            .collect();
        slots.sort_unstable();
        // Suspects that must wait for an instance with nothing in flight.
        let mut waiting = Vec::new();
        for slot in slots {
            let Some(s) = self.slots.get_mut(&slot) else {
                continue;
            };
            let mut frames = Vec::new();
            while s.credit > 0 && !s.isolated {
                let Some(id) = self.queue.pop_front() else {
                    break;
                };
                let Some(job) = self.jobs.get_mut(&id) else {
                    continue;
                };
                if job.slot.is_some() || job.finished.is_some() {
                    continue;
                }
                if job.suspect {
                    if !s.in_flight.is_empty() {
                        waiting.push(id);
                        continue;
                    }
                    s.isolated = true;
                }
                job.attempts += 1;
                job.slot = Some(slot);
                s.in_flight.insert(id);
                s.credit -= 1;
                self.in_flight += 1;
                encode_job(&mut frames, id, &job.payload);
            }
            if !frames.is_empty() {
                // A closed channel: the start is ending; its detach requeues these.
                let _ = s.frames.send(frames);
            }
            if self.queue.is_empty() {
                break;
            }
        }
        for id in waiting.into_iter().rev() {
            self.queue.push_front(id);
        }
    }

    /// Publishes the levels (in flight, queued, held).
    pub(crate) fn publish(&self) {
        self.counters
            .set_levels(self.in_flight, self.queue.len() as u64, self.held);
    }
}

/// Appends one `job` frame, in the exact form of `encode_master_frame`.
pub(crate) fn encode_job(buf: &mut Vec<u8>, id: u64, payload: &Value) {
    buf.push(FRAME_MARKER);
    buf.extend_from_slice(b"{\"type\":\"job\",\"id\":");
    buf.extend_from_slice(id.to_string().as_bytes());
    buf.extend_from_slice(b",\"payload\":");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, payload);
    buf.extend_from_slice(b"}\n");
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
