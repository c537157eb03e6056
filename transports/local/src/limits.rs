//! The open-file limit: raised at start, and starts throttled when it is still
//! too low for every instance to hold its pipes at once.

use crate::unix;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// File descriptors the master holds per live local instance: stdin, stdout and
/// stderr pipes, the process handle, and one to spare for a start in progress.
pub(crate) const FDS_PER_INSTANCE: u64 = 5;
/// File descriptors kept for everything else (runtime, logs, connections).
pub(crate) const RESERVED_FDS: u64 = 64;

/// Raises the soft limit on open files to the hard limit, as most servers do at
/// start (`distarch launch` calls it first thing); returns the soft limit now in
/// force. Workers inherit the raised limit.
pub fn raise_open_file_limit() -> io::Result<u64> {
    unix::raise_nofile_limit()
}

/// How many local instances may hold their pipes at once under the current limit.
#[derive(Debug)]
pub(crate) struct Throttle {
    slots: Arc<Semaphore>,
    limit: u64,
    count: usize,
    warned: AtomicBool,
}

impl Throttle {
    /// Sizes the throttle from the soft open-file limit now in force.
    pub(crate) fn from_limit() -> Throttle {
        Throttle::new(unix::nofile_limit())
    }

    pub(crate) fn new(limit: u64) -> Throttle {
        let count = (limit.saturating_sub(RESERVED_FDS) / FDS_PER_INSTANCE)
            .clamp(1, Semaphore::MAX_PERMITS as u64) as usize;
        Throttle {
            slots: Arc::new(Semaphore::new(count)),
            limit,
            count,
            warned: AtomicBool::new(false),
        }
    }

    /// Waits for a slot; the first time one is not free at once, says so.
    pub(crate) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Some(p);
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "local: the open-file limit ({}) leaves room for {} \
                 running instances at once; further starts wait for a free slot (raise the \
                 hard limit, `ulimit -Hn`, to start them all at once)",
                self.limit,
                self.count
            );
        }
        self.slots.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_low_limit_makes_starts_wait_for_a_slot() {
        let t = Throttle::new(RESERVED_FDS + 2 * FDS_PER_INSTANCE);
        let a = t.slot().await.unwrap();
        let _b = t.slot().await.unwrap();
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), t.slot()).await;
        assert!(
            third.is_err(),
            "a third slot was given under a limit for two"
        );
        assert!(t.warned.load(Ordering::Relaxed));
        drop(a);
        assert!(t.slot().await.is_some());
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let soft = raise_open_file_limit().unwrap();
        assert_eq!(soft, unix::nofile_limit());
    }
}
