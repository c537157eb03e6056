//! A pool's counters: updated by the pool, read by progress lines, the control
//! API (`distarch ps`) and, later, metrics.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Live counters of one pool (cheap to read from any thread).
#[derive(Debug)]
pub struct JobCounters {
    group: String,
    started: Instant,
    read: AtomicU64,
    skipped: AtomicU64,
    done: AtomicU64,
    dead: AtomicU64,
    retried: AtomicU64,
    in_flight: AtomicU64,
    queued: AtomicU64,
    held: AtomicU64,
    input_done: AtomicBool,
}

/// What a pool did so far, as the control API shows it (`GET /jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStats {
    /// The pool's group.
    pub group: String,
    /// Jobs read from the input (not counting those the journal skipped).
    pub read: u64,
    /// Jobs skipped because the journal has them done.
    pub skipped: u64,
    /// Jobs done (result written).
    pub done: u64,
    /// Jobs that failed for good (dead-lettered).
    pub failed: u64,
    /// Attempts that failed and were tried again.
    pub retried: u64,
    /// Jobs sent to an instance and not answered yet.
    pub in_flight: u64,
    /// Jobs waiting for an instance to ask for work.
    pub queued: u64,
    /// Results held back to keep the input order.
    pub held: u64,
    /// True once the whole input was read.
    pub input_done: bool,
    /// Seconds since the pool started.
    pub elapsed: f64,
    /// Jobs finished (done or failed) per second, on average.
    pub rate: f64,
    /// Seconds until every job read is finished at this rate, once the input
    /// is fully read (unknown before).
    pub eta: Option<f64>,
}

impl JobCounters {
    /// Counters of a new pool of `group`, all zero.
    pub fn new(group: &str) -> Self {
        JobCounters {
            group: group.to_string(),
            started: Instant::now(),
            read: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            done: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            held: AtomicU64::new(0),
            input_done: AtomicBool::new(false),
        }
    }

    pub(crate) fn add_read(&self, n: u64) {
        self.read.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set_skipped(&self, n: u64) {
        self.skipped.store(n, Ordering::Relaxed);
    }
    pub(crate) fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_dead(&self, n: u64) {
        self.dead.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_retried(&self, n: u64) {
        self.retried.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set_levels(&self, in_flight: u64, queued: u64, held: u64) {
        self.in_flight.store(in_flight, Ordering::Relaxed);
        self.queued.store(queued, Ordering::Relaxed);
        self.held.store(held, Ordering::Relaxed);
    }
    pub(crate) fn set_input_done(&self) {
        self.input_done.store(true, Ordering::Relaxed);
    }

    /// A snapshot with rate and ETA.
    pub fn stats(&self) -> JobStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let (read, done, dead) = (get(&self.read), get(&self.done), get(&self.dead));
        let finished = done + dead;
        let rate = if elapsed > 0.0 {
            finished as f64 / elapsed
        } else {
            0.0
        };
        let input_done = self.input_done.load(Ordering::Relaxed);
        let eta = (input_done && rate > 0.0).then(|| read.saturating_sub(finished) as f64 / rate);
        JobStats {
            group: self.group.clone(),
            read,
            skipped: get(&self.skipped),
            done,
            failed: dead,
            retried: get(&self.retried),
            in_flight: get(&self.in_flight),
            queued: get(&self.queued),
            held: get(&self.held),
            input_done,
            elapsed,
            rate,
            eta,
        }
    }
}

impl JobStats {
    /// One line for people: `1200 done, 3 failed, 8 in flight, 40 queued, 950/s, ETA 12s`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} done, {} failed, {} in flight, {} queued",
            self.done, self.failed, self.in_flight, self.queued
        );
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped (journal)", self.skipped));
        }
        if self.retried > 0 {
            s.push_str(&format!(", {} retried", self.retried));
        }
        s.push_str(&format!(", {:.0}/s", self.rate));
        match self.eta {
            Some(eta) => s.push_str(&format!(", ETA {eta:.0}s")),
            None => s.push_str(", input not fully read"),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_up_and_eta_waits_for_the_end_of_input() {
        let c = JobCounters::new("g");
        c.add_read(10);
        c.add_done(4);
        c.add_dead(1);
        c.set_levels(2, 3, 0);
        let s = c.stats();
        assert_eq!(
            (s.read, s.done, s.failed, s.in_flight, s.queued),
            (10, 4, 1, 2, 3)
        );
        assert_eq!(s.eta, None);
        assert!(s
            .summary()
            .contains("4 done, 1 failed, 2 in flight, 3 queued"));
        c.set_input_done();
        let s = c.stats();
        assert!(s.eta.is_some_and(|e| e >= 0.0));
        assert!(s.summary().contains("ETA"));
    }
}
