//! Where events go: an [`EventSink`] runs on its own thread, fed by a bounded channel.

use crate::events::Event;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

/// Receives every event of a run, in order, on a dedicated thread (so it may block
/// on writes). When the sink is slow, workers are slowed down, not buffered.
pub trait EventSink: Send + 'static {
    /// Handles one event.
    fn event(&mut self, event: Event);
    /// Handles one event that others may hold too (the control plane's log
    /// buffer): a sink that can keep an `Arc` (see [`Observed`]) takes it as it
    /// is; by default the event is taken out of it, copied only if still shared.
    fn event_shared(&mut self, event: Arc<Event>) {
        self.event(Arc::unwrap_or_clone(event));
    }
    /// Called when no event is waiting: a good time to flush buffered output.
    fn flush(&mut self) {}
}

impl<F: FnMut(Event) + Send + 'static> EventSink for F {
    fn event(&mut self, event: Event) {
        self(event)
    }
}

/// An [`EventSink`] that forwards events to an unbounded channel (for tests and for
/// library users who want a stream).
pub struct ChannelSink(pub mpsc::UnboundedSender<Event>);

impl EventSink for ChannelSink {
    fn event(&mut self, event: Event) {
        let _ = self.0.send(event);
    }
}

/// Capacity of the event channel, in batches. A batch holds the lines of one read
/// chunk of one worker stream, or a single event, so memory stays bounded.
const EVENT_BATCHES: usize = 256;

/// The sending side of the event channel: events travel in batches so that a
/// flooding worker costs one channel operation per read, not per line.
#[derive(Debug, Clone)]
pub(crate) struct EventTx(mpsc::Sender<Vec<Event>>);

impl EventTx {
    /// A channel; the receiver goes to [`pump`].
    pub(crate) fn channel() -> (Self, mpsc::Receiver<Vec<Event>>) {
        let (tx, rx) = mpsc::channel(EVENT_BATCHES);
        (EventTx(tx), rx)
    }

    /// Sends one event (waits while the channel is full). False when the sink is gone.
    pub(crate) async fn send(&self, event: Event) -> bool {
        self.0.send(vec![event]).await.is_ok()
    }

    /// Sends a batch of events, in order. False when the sink is gone.
    pub(crate) async fn send_batch(&self, events: Vec<Event>) -> bool {
        events.is_empty() || self.0.send(events).await.is_ok()
    }
}

/// Pumps events from `rx` into `sink` until every sender is gone.
pub(crate) fn pump(mut rx: mpsc::Receiver<Vec<Event>>, mut sink: Box<dyn EventSink>) {
    loop {
        let batch = match rx.try_recv() {
            Ok(batch) => batch,
            Err(TryRecvError::Empty) => {
                sink.flush();
                match rx.blocking_recv() {
                    Some(batch) => batch,
                    None => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        for event in batch {
            sink.event(event);
        }
    }
    sink.flush();
}

/// Looks at every event of a run without taking it: a log file, the metrics, a
/// progress bar. Several observers share one [`Observed`] sink, so an event is
/// never copied for each of them.
pub trait EventObserver: Send + 'static {
    /// Takes one event into account.
    fn observe(&mut self, event: &Event);
    /// Takes one event into account, with a handle to keep it: an observer that
    /// hands events to a thread of its own (the log files) keeps the `Arc` instead
    /// of copying the event. By default the same as [`EventObserver::observe`].
    fn observe_shared(&mut self, event: &Arc<Event>) {
        self.observe(event);
    }
    /// Called when no event is waiting: a good time to flush buffered output.
    fn flush(&mut self) {}
}

/// An [`EventSink`] that shows every event to its observers, in the order they
/// were added: the one output path of the CLI (standard output, files, metrics).
#[derive(Default)]
pub struct Observed {
    observers: Vec<Box<dyn EventObserver>>,
}

impl Observed {
    /// No observer yet.
    pub fn new() -> Self {
        Observed::default()
    }

    /// Adds an observer.
    pub fn with(mut self, observer: impl EventObserver) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Adds an observer (boxed).
    pub fn push(&mut self, observer: Box<dyn EventObserver>) {
        self.observers.push(observer);
    }
}

impl EventSink for Observed {
    fn event(&mut self, event: Event) {
        // One allocation per event (a batch of lines is one event), so that an
        // observer may keep it without copying its text.
        self.event_shared(Arc::new(event));
    }

    fn event_shared(&mut self, event: Arc<Event>) {
        for o in &mut self.observers {
            o.observe_shared(&event);
        }
    }

    fn flush(&mut self) {
        for o in &mut self.observers {
            o.flush();
        }
    }
}
