//! The hub between the run and its clients: the live instance table, the log
//! buffers and the event feed. The event pump feeds it through a [`Tap`] that sits
//! in front of the run's own [`EventSink`].

use super::logs::{LogBuffers, LogFilter};
use super::state::Instances;
use crate::events::Event;
use crate::sink::EventSink;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Events waiting for the slowest follower before it is dropped (batches of lines).
const FEED_CAPACITY: usize = 4096;

/// What the control plane knows about the run.
#[derive(Debug)]
pub(crate) struct Hub {
    instances: Mutex<Instances>,
    logs: Mutex<LogBuffers>,
    feed: broadcast::Sender<Arc<Event>>,
}

/// A follower's view of the feed: the buffered events first, then the live ones.
pub struct Followed {
    /// Buffered events, oldest first.
    pub buffered: Vec<Event>,
    /// Every event from now on. A follower that falls more than a few thousand
    /// batches behind gets `Lagged` and should give up.
    pub live: broadcast::Receiver<Arc<Event>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    pub(crate) fn new(log_buffer: usize) -> Self {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        Hub {
            instances: Mutex::new(Instances::default()),
            logs: Mutex::new(LogBuffers::new(log_buffer)),
            feed,
        }
    }

    /// Runs `f` on the instance table.
    pub(crate) fn instances<R>(&self, f: impl FnOnce(&mut Instances) -> R) -> R {
        f(&mut lock(&self.instances))
    }

    /// Forgets the buffered output of an instance.
    pub(crate) fn forget_logs(&self, id: u64) {
        lock(&self.logs).forget(id);
    }

    /// Takes one event into account (on the event pump's thread).
    pub(crate) fn observe(&self, event: &Event) {
        lock(&self.instances).observe(event);
        // The feed is sent to under the log lock, so that a follower that takes the
        // buffer and subscribes under the same lock misses nothing and sees nothing
        // twice.
        let mut logs = lock(&self.logs);
        logs.observe(event);
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(Arc::new(event.clone()));
        }
    }

    /// The buffered logs the filter wants.
    pub(crate) fn logs(&self, filter: &LogFilter) -> Vec<Event> {
        lock(&self.logs).select(filter)
    }

    /// The buffered logs the filter wants, and the live feed from then on.
    pub(crate) fn follow(&self, filter: &LogFilter) -> Followed {
        let logs = lock(&self.logs);
        Followed {
            buffered: logs.select(filter),
            live: self.feed.subscribe(),
        }
    }

    /// The live feed of every event.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.feed.subscribe()
    }
}

/// An [`EventSink`] that updates the hub, then hands every event on.
pub(crate) struct Tap {
    pub(crate) hub: Arc<Hub>,
    pub(crate) inner: Box<dyn EventSink>,
}

impl EventSink for Tap {
    fn event(&mut self, event: Event) {
        self.hub.observe(&event);
        self.inner.event(event);
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}
