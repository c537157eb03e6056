//! Activity clocks: when an instance (and the run as a whole) last showed a sign of
//! life, measured in *running time* of the master. Readers touch them on every
//! chunk read; timers compare against them.
//!
//! Running time advances with a ticker, at most [`MAX_TICK_STEP`] per tick: when
//! the master was paused (SIGSTOP, Ctrl-Z, a suspended VM) or starved, the time it
//! could not run does not count, so workers that kept printing while the master
//! could not read them are never judged hung for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often running time advances.
const TICK: Duration = Duration::from_millis(50);
/// The most running time one tick may add: a longer gap means the master could not
/// run, and only this much of it counts.
const MAX_TICK_STEP: Duration = Duration::from_millis(250);

/// The run's clock: running time since the run started, and the last activity of
/// any instance.
#[derive(Debug)]
pub(crate) struct RunClock {
    running_ms: AtomicU64,
    last_any: AtomicU64,
    paused_ms: AtomicU64,
}

impl RunClock {
    /// A clock whose running time advances while the returned clock is alive (a
    /// ticker task holds a weak reference). Must be called inside a tokio runtime.
    pub(crate) fn new() -> Arc<Self> {
        let clock = Arc::new(Self::unticked());
        let weak = Arc::downgrade(&clock);
        tokio::spawn(tick(weak));
        clock
    }

    fn unticked() -> Self {
        RunClock {
            running_ms: AtomicU64::new(0),
            last_any: AtomicU64::new(0),
            paused_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.running_ms.load(Ordering::Relaxed)
    }

    /// Adds one tick's worth of wall time, capped; returns the part left out.
    fn advance(&self, wall: Duration) -> Duration {
        let step = wall.min(MAX_TICK_STEP);
        self.running_ms
            .fetch_add(step.as_millis() as u64, Ordering::Relaxed);
        let lost = wall.saturating_sub(step);
        if lost > Duration::ZERO {
            self.paused_ms
                .fetch_add(lost.as_millis() as u64, Ordering::Relaxed);
        }
        lost
    }

    /// Time since any instance last showed activity (or since the run started).
    pub(crate) fn idle(&self) -> Duration {
        let last = self.last_any.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// Wall time the master spent unable to run (paused or starved), in total.
    pub(crate) fn paused(&self) -> Duration {
        Duration::from_millis(self.paused_ms.load(Ordering::Relaxed))
    }
}

async fn tick(clock: Weak<RunClock>) {
    let mut last = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(clock) = clock.upgrade() else { return };
        let now = Instant::now();
        clock.advance(now - last);
        last = now;
    }
}

/// One start of one instance: its activity and what its worker said of itself.
#[derive(Debug)]
pub(crate) struct Activity {
    clock: Arc<RunClock>,
    last: AtomicU64,
    seen: AtomicBool,
    protocol: AtomicBool,
    ready: AtomicBool,
    ready_notify: tokio::sync::Notify,
}

impl Activity {
    pub(crate) fn new(clock: Arc<RunClock>) -> Arc<Self> {
        let now = clock.now_ms();
        Arc::new(Activity {
            clock,
            last: AtomicU64::new(now),
            seen: AtomicBool::new(false),
            protocol: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            ready_notify: tokio::sync::Notify::new(),
        })
    }

    /// Records a sign of life now.
    pub(crate) fn touch(&self) {
        let now = self.clock.now_ms();
        self.last.store(now, Ordering::Relaxed);
        self.clock.last_any.fetch_max(now, Ordering::Relaxed);
    }

    /// Running time since the last sign of life.
    pub(crate) fn idle(&self) -> Duration {
        let last = self.last.load(Ordering::Relaxed);
        Duration::from_millis(self.clock.now_ms().saturating_sub(last))
    }

    /// True the first time it is called after output arrived.
    pub(crate) fn first_seen(&self) -> bool {
        !self.seen.swap(true, Ordering::Relaxed)
    }

    /// Records that the worker sent a valid frame; true the first time.
    pub(crate) fn mark_protocol(&self) -> bool {
        !self.protocol.swap(true, Ordering::Relaxed)
    }

    /// True once the worker sent a valid frame: it speaks the protocol.
    pub(crate) fn speaks_protocol(&self) -> bool {
        self.protocol.load(Ordering::Relaxed)
    }

    /// True once the instance is ready (this start).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records that the instance is ready; true the first time (per start).
    pub(crate) fn mark_ready(&self) -> bool {
        let first = !self.ready.swap(true, Ordering::Relaxed);
        if first {
            self.ready_notify.notify_one();
        }
        first
    }

    /// Resolves once the instance is ready (this start).
    pub(crate) async fn ready_signal(&self) {
        self.ready_notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_does_not_count_as_idle_time() {
        let clock = Arc::new(RunClock::unticked());
        let a = Activity::new(clock.clone());
        a.touch();
        clock.advance(Duration::from_millis(50));
        assert_eq!(a.idle(), Duration::from_millis(50));
        // The master was stopped for a minute: only one capped step counts.
        let lost = clock.advance(Duration::from_secs(60));
        assert_eq!(a.idle(), Duration::from_millis(300));
        assert_eq!(lost, Duration::from_millis(59_750));
        assert_eq!(clock.paused(), lost);
    }
}
