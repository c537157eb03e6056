//! The link between a pool and the instances of its group: each start of an
//! instance attaches (gets a *slot*), receives encoded `job` frames to write on the
//! worker's stdin, reports the worker's `want`/`done`/`failed` frames, and
//! detaches when it ends (the pool then requeues what it had in flight).

use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A worker's job frame, as the reader passes it on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// `want`: credit for `n` more jobs.
    Want(u64),
    /// `done`.
    Done { id: u64, result: Option<Value> },
    /// `failed`.
    Failed {
        id: u64,
        error: String,
        retryable: bool,
    },
}

/// What instances tell the pool.
#[derive(Debug)]
pub(crate) enum PoolMsg {
    Attach {
        slot: u64,
        instance: u64,
        frames: mpsc::UnboundedSender<Vec<u8>>,
    },
    Replies {
        slot: u64,
        replies: Vec<Reply>,
    },
    Detach {
        slot: u64,
    },
}

/// A pool, as instance tasks hold it. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PoolHandle {
    pub(crate) tx: mpsc::Sender<PoolMsg>,
    pub(crate) next_slot: Arc<AtomicU64>,
}

impl PoolHandle {
    /// Attaches one start of instance `instance`.
    pub(crate) async fn attach(&self, instance: u64) -> Attachment {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::unbounded_channel();
        let _ = self
            .tx
            .send(PoolMsg::Attach {
                slot,
                instance,
                frames: tx,
            })
            .await;
        Attachment {
            slot,
            frames,
            pool: self.tx.clone(),
        }
    }
}

/// One start's link to its pool. The frames channel holds at most what the worker
/// asked for, so it needs no bound of its own.
#[derive(Debug)]
pub(crate) struct Attachment {
    slot: u64,
    pub(crate) frames: mpsc::UnboundedReceiver<Vec<u8>>,
    pool: mpsc::Sender<PoolMsg>,
}

impl Attachment {
    /// What the stdout reader reports through.
    pub(crate) fn reporter(&self) -> Reporter {
        Reporter {
            slot: self.slot,
            tx: self.pool.clone(),
        }
    }

    /// The start is over: what it had in flight goes back to the queue.
    pub(crate) async fn detach(self) {
        let _ = self.pool.send(PoolMsg::Detach { slot: self.slot }).await;
    }
}

/// Sends a worker's job frames to the pool (waiting when the pool is behind,
/// which slows the worker's stdout down).
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    slot: u64,
    tx: mpsc::Sender<PoolMsg>,
}

impl Reporter {
    pub(crate) async fn send(&self, replies: Vec<Reply>) {
        if !replies.is_empty() {
            let _ = self
                .tx
                .send(PoolMsg::Replies {
                    slot: self.slot,
                    replies,
                })
                .await;
        }
    }
}
