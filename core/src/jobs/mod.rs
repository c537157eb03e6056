//! Job pools (issue 12): a group with `jobs = { ... }` gets work items from an
//! input, hands them to its instances through the protocol (`job` frames against
//! the credit each worker gives with `want`), and writes what comes back (`done`
//! results, `failed` jobs after `max_attempts`) as JSON lines.
//!
//! How it works: a thread reads the input ([`input`]) into a bounded channel; one
//! task per pool ([`pool`]) owns every job until it is written out, and reads
//! more input only while fewer than `window` jobs are outstanding; a thread writes
//! results, dead letters and the journal ([`output`]), and the pool waits for it,
//! so memory stays bounded whatever the input's size and a slow output slows
//! everything down. Each start of an instance attaches to the pool ([`link`]);
//! when it ends, its jobs in flight go back to the queue (at-least-once), and a
//! second answer for a job already finished is dropped (exactly once in the
//! output). When the input is exhausted and every job is finished, the pool
//! stops its group's instances, which ends the run.

mod config;
mod input;
mod link;
mod output;
mod pool;
mod stats;

pub use config::{InputFormat, JobsConfig, DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW, MAX_RECORD_BYTES};
pub use stats::{JobCounters, JobStats};

pub(crate) use link::{Attachment, PoolHandle, Reply, Reporter};

use crate::launcher::master_line;
use crate::sink::EventTx;
use distarch_protocol::Level;
use input::InputMsg;
use link::PoolMsg;
use output::{Targets, Writer};
use pool::Pool;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Messages from instances waiting for the pool.
const POOL_QUEUE: usize = 1024;

/// How a pool ended.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolReport {
    /// The pool's group.
    pub group: String,
    /// Its counters at the end.
    pub stats: JobStats,
    /// True when the input was read to its end and every job was finished (done
    /// or dead-lettered) and written.
    pub complete: bool,
    /// What went wrong with the input or the output, if anything.
    pub error: Option<String>,
}

impl PoolReport {
    /// True when some job did not succeed: failed for good, never finished, or
    /// the input or output failed.
    pub fn failed(&self) -> bool {
        !self.complete || self.stats.failed > 0 || self.error.is_some()
    }
}

/// A started pool: the handle instances attach through, and its task.
pub(crate) struct RunningPool {
    pub(crate) handle: PoolHandle,
    pub(crate) counters: Arc<JobCounters>,
    close: oneshot::Sender<()>,
    task: JoinHandle<PoolReport>,
}

impl RunningPool {
    /// The run is over: writes what can be written and reports.
    pub(crate) async fn finish(self) -> PoolReport {
        let _ = self.close.send(());
        let group = self.counters.stats().group;
        match self.task.await {
            Ok(report) => report,
            Err(e) => PoolReport {
                stats: self.counters.stats(),
                group,
                complete: false,
                error: Some(format!("the pool task failed: {e}")),
            },
        }
    }
}

/// Starts the pool of `group`. `stop_group` is called once when the pool is
/// finished (or cannot go on): it stops the group's instances.
pub(crate) fn start_pool(
    group: Arc<str>,
    config: &JobsConfig,
    events: EventTx,
    stop_group: Box<dyn FnOnce() + Send>,
) -> Result<RunningPool, String> {
    let done = match &config.journal {
        Some(p) => output::read_journal(p)?,
        None => Default::default(),
    };
    let resuming = config.journal.as_deref().is_some_and(|p| p.exists());
    let writer = Writer::start(Targets {
        output: config.output.clone().filter(|_| !config.output_is_stdout()),
        dead_letter: config.dead_letter.clone(),
        journal: config.journal.clone(),
        append: resuming,
    })?;
    let input = input::start(config, done);
    let counters = Arc::new(JobCounters::new(&group));
    let (tx, rx) = mpsc::channel(POOL_QUEUE);
    let (close, closed) = oneshot::channel();
    let pool = Pool::new(group, config, counters.clone());
    let task = tokio::spawn(run(
        pool,
        Channels {
            rx,
            input,
            closed,
            writer,
            events,
        },
        config.window,
        config.progress.non_zero(),
        stop_group,
    ));
    Ok(RunningPool {
        handle: PoolHandle {
            tx,
            next_slot: Arc::new(AtomicU64::new(1)),
        },
        counters,
        close,
        task,
    })
}

struct Channels {
    rx: mpsc::Receiver<PoolMsg>,
    input: mpsc::Receiver<InputMsg>,
    closed: oneshot::Receiver<()>,
    writer: Writer,
    events: EventTx,
}

/// The pool's loop: see the module documentation.
async fn run(
    mut pool: Pool,
    mut ch: Channels,
    window: usize,
    progress: Option<Duration>,
    stop_group: Box<dyn FnOnce() + Send>,
) -> PoolReport {
    let mut input_done = false;
    let mut error: Option<String> = None;
    let mut complete = false;
    let mut stop_group = Some(stop_group);
    let mut tick = tokio::time::interval(progress.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut writer_ok = true;
    loop {
        tokio::select! {
            biased;
            _ = &mut ch.closed => break,
            msg = ch.rx.recv() => match msg {
                Some(m) => {
                    pool.handle(m);
                    // Take whatever else is waiting, so that one dispatch and one
                    // write serve many answers.
                    while let Ok(m) = ch.rx.try_recv() {
                        pool.handle(m);
                    }
                }
                None => break,
            },
            msg = ch.input.recv(), if !input_done && pool.outstanding() < window => match msg {
                Some(InputMsg::Records(records)) => pool.add(records),
                Some(InputMsg::End { error: e, skipped }) => {
                    input_done = true;
                    pool.counters.set_skipped(skipped);
                    pool.counters.set_input_done();
                    if let Some(e) = e {
                        pool.notes.push(master_line(Level::Error, format!("jobs [{}]: {e}", pool.group)));
                        error.get_or_insert(e);
                    }
                }
                None => {
                    input_done = true;
                    pool.counters.set_input_done();
                }
            },
            _ = tick.tick(), if progress.is_some() => {
                let stats = pool.counters.stats();
                pool.notes.push(master_line(Level::Info, format!("jobs [{}]: {}", pool.group, stats.summary())));
            }
        }
        pool.dispatch();
        pool.publish();
        if writer_ok && !pool.out.is_empty() {
            let batch = std::mem::take(&mut pool.out);
            if ch.writer.tx.send(batch).await.is_err() {
                writer_ok = false; // its error comes with `finish`
                if let Some(stop) = stop_group.take() {
                    stop();
                }
            }
        }
        for note in pool.notes.drain(..) {
            let _ = ch.events.send(note).await;
        }
        if input_done && pool.outstanding() == 0 && !complete {
            complete = true;
            let stats = pool.counters.stats();
            let _ = ch
                .events
                .send(master_line(
                    Level::Info,
                    format!("jobs [{}]: finished: {}", pool.group, stats.summary()),
                ))
                .await;
            if let Some(stop) = stop_group.take() {
                stop();
            }
        }
    }
    // The run is over: what is still held back for order is lost (not journaled,
    // so a resumed run does it again).
    if writer_ok && !pool.out.is_empty() {
        let _ = ch.writer.tx.send(std::mem::take(&mut pool.out)).await;
    }
    for note in pool.notes.drain(..) {
        let _ = ch.events.send(note).await;
    }
    if let Err(e) = ch.writer.finish().await {
        let _ = ch
            .events
            .send(master_line(
                Level::Error,
                format!("jobs [{}]: {e}", pool.group),
            ))
            .await;
        error.get_or_insert(e);
        complete = false;
    }
    pool.publish();
    PoolReport {
        group: pool.group.to_string(),
        stats: pool.counters.stats(),
        complete,
        error,
    }
}
