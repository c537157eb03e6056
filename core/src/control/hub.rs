//! The hub between the run and its clients: the live instance table, the log
//! buffers and the event feed. The event pump feeds it through a [`Tap`] that sits
//! in front of the run's own [`EventSink`].

use super::logs::{LogBuffers, LogFilter};
use super::state::Instances;
use crate::events::Event;
use crate::sink::EventSink;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::broadcast;

/// Events waiting for the slowest follower before it is dropped (batches of lines).
const FEED_CAPACITY: usize = 1024;

/// One event of the live feed, formatted at most once per format however many
/// followers read it.
#[derive(Debug)]
pub struct FeedEvent {
    event: Arc<Event>,
    json: OnceLock<Vec<u8>>,
    text: OnceLock<Vec<u8>>,
}

impl FeedEvent {
    fn new(event: Arc<Event>) -> Self {
        FeedEvent {
            event,
            json: OnceLock::new(),
            text: OnceLock::new(),
        }
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event as JSON lines (see [`crate::format_json`]).
    pub fn json(&self) -> &[u8] {
        self.json.get_or_init(|| {
            let mut buf = Vec::new();
            crate::output::format_json(&mut buf, &self.event);
            buf
        })
    }

    /// The event as text lines, as the master prints them (see [`crate::format_text`]).
    pub fn text(&self) -> &[u8] {
        self.text.get_or_init(|| {
            let mut buf = Vec::new();
            crate::output::format_text(&mut buf, &self.event);
            buf
        })
    }
}

/// What the control plane knows about the run.
#[derive(Debug)]
pub(crate) struct Hub {
    instances: Mutex<Instances>,
    logs: Mutex<LogBuffers>,
    feed: broadcast::Sender<Arc<FeedEvent>>,
    /// The counters of the run's job pools.
    jobs: Mutex<Vec<Arc<crate::jobs::JobCounters>>>,
    /// The run's last event, once it came (set under the log lock, like the feed).
    ended: OnceLock<Arc<Event>>,
}

/// A follower's view of the feed: the buffered events first, then the live ones.
pub struct Followed {
    /// Buffered events, oldest first (shared with the buffer, not copied).
    pub buffered: Vec<Arc<Event>>,
    /// Every event from now on. A follower that falls more than a few thousand
    /// batches behind gets `Lagged` and should give up.
    pub live: broadcast::Receiver<Arc<FeedEvent>>,
    /// Set when the run had already stopped: `live` carries nothing more, and this
    /// is the run's last event (`RunStopped`).
    pub ended: Option<Arc<Event>>,
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
            jobs: Mutex::new(Vec::new()),
            ended: OnceLock::new(),
        }
    }

    /// Adds a job pool's counters to what the control API shows.
    pub(crate) fn add_jobs(&self, counters: Arc<crate::jobs::JobCounters>) {
        lock(&self.jobs).push(counters);
    }

    /// Every job pool's counters now.
    pub(crate) fn jobs(&self) -> Vec<crate::jobs::JobStats> {
        lock(&self.jobs).iter().map(|c| c.stats()).collect()
    }

    /// Runs `f` on the instance table.
    pub(crate) fn instances<R>(&self, f: impl FnOnce(&mut Instances) -> R) -> R {
        f(&mut lock(&self.instances))
    }

    /// Forgets the buffered output of an instance.
    pub(crate) fn forget_logs(&self, id: u64) {
        lock(&self.logs).forget(id);
    }

    /// Takes one event into account (on the event pump's thread). The event is
    /// shared by the buffer, the feed and the run's own sink, never copied.
    pub(crate) fn observe(&self, event: &Arc<Event>) {
        lock(&self.instances).observe(event);
        // The feed is sent to under the log lock, so that a follower that takes the
        // buffer and subscribes under the same lock misses nothing and sees nothing
        // twice.
        let mut logs = lock(&self.logs);
        if matches!(**event, Event::RunStopped { .. }) {
            let _ = self.ended.set(event.clone());
        }
        logs.observe(event);
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(Arc::new(FeedEvent::new(event.clone())));
        }
    }

    /// The buffered logs the filter wants.
    pub(crate) fn logs(&self, filter: &LogFilter) -> Vec<Arc<Event>> {
        lock(&self.logs).select(filter)
    }

    /// The buffered logs the filter wants, and the live feed from then on.
    pub(crate) fn follow(&self, filter: &LogFilter) -> Followed {
        let logs = lock(&self.logs);
        Followed {
            buffered: logs.select(filter),
            live: self.feed.subscribe(),
            ended: self.ended.get().cloned(),
        }
    }

    /// Every event from now on (nothing buffered).
    pub(crate) fn subscribe(&self) -> Followed {
        let _logs = lock(&self.logs);
        Followed {
            buffered: Vec::new(),
            live: self.feed.subscribe(),
            ended: self.ended.get().cloned(),
        }
    }
}

/// An [`EventSink`] that updates the hub, then hands every event on.
pub(crate) struct Tap {
    pub(crate) hub: Arc<Hub>,
    pub(crate) inner: Box<dyn EventSink>,
}

impl EventSink for Tap {
    fn event(&mut self, event: Event) {
        self.event_shared(Arc::new(event));
    }

    fn event_shared(&mut self, event: Arc<Event>) {
        self.hub.observe(&event);
        self.inner.event_shared(event);
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{InstanceLabel, LogLines, LogStream};
    use distarch_protocol::Level;

    fn line(text: &str) -> Event {
        let label = Arc::new(InstanceLabel::new("g".into(), "h".into(), 1, 1, 1, 0));
        let mut l = LogLines::new(
            std::time::SystemTime::now(),
            label,
            Level::Info,
            LogStream::Stdout,
        );
        l.push(text.as_bytes(), false);
        Event::Lines(l)
    }

    #[test]
    fn a_follower_after_the_run_stopped_gets_the_buffer_and_the_end_at_once() {
        let hub = Hub::new(1024);
        let early = hub.subscribe();
        assert!(early.ended.is_none());
        hub.observe(&Arc::new(line("last words")));
        hub.observe(&Arc::new(Event::RunStopped {
            run_id: "r".into(),
            exit_code: 0,
        }));
        let late = hub.follow(&LogFilter::default());
        assert_eq!(late.buffered.len(), 1);
        assert!(matches!(
            late.ended.as_deref(),
            Some(Event::RunStopped { exit_code: 0, .. })
        ));
        assert!(hub.subscribe().ended.is_some());
    }
}
