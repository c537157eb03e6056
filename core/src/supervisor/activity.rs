//! Activity clocks: when an instance (and the run as a whole) last showed a sign of
//! life. Readers touch them on every chunk read; timers compare against them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The run's clock: a fixed start instant and the last activity of any instance.
#[derive(Debug)]
pub(crate) struct RunClock {
    base: Instant,
    last_any: AtomicU64,
}

impl RunClock {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(RunClock {
            base: Instant::now(),
            last_any: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Time since any instance last showed activity (or since the run started).
    pub(crate) fn idle(&self) -> Duration {
        let last = self.last_any.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }
}

/// One start of one instance: its activity and what its worker said of itself.
#[derive(Debug)]
pub(crate) struct Activity {
    clock: Arc<RunClock>,
    last: AtomicU64,
    seen: AtomicBool,
}

impl Activity {
    pub(crate) fn new(clock: Arc<RunClock>) -> Arc<Self> {
        let now = clock.now_ms();
        Arc::new(Activity {
            clock,
            last: AtomicU64::new(now),
            seen: AtomicBool::new(false),
        })
    }

    /// Records a sign of life now.
    pub(crate) fn touch(&self) {
        let now = self.clock.now_ms();
        self.last.store(now, Ordering::Relaxed);
        self.clock.last_any.fetch_max(now, Ordering::Relaxed);
    }

    /// Time since the last sign of life.
    pub(crate) fn idle(&self) -> Duration {
        let last = self.last.load(Ordering::Relaxed);
        Duration::from_millis(self.clock.now_ms().saturating_sub(last))
    }

    /// True the first time it is called after output arrived.
    pub(crate) fn first_seen(&self) -> bool {
        !self.seen.swap(true, Ordering::Relaxed)
    }
}
