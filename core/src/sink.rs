//! Where events go: an [`EventSink`] runs on its own thread, fed by a bounded channel.

use crate::events::Event;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

/// Receives every event of a run, in order, on a dedicated thread (so it may block
/// on writes). When the sink is slow, workers are slowed down, not buffered.
pub trait EventSink: Send + 'static {
    /// Handles one event.
    fn event(&mut self, event: Event);
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

/// Pumps events from `rx` into `sink` until every sender is gone.
pub(crate) fn pump(mut rx: mpsc::Receiver<Event>, mut sink: Box<dyn EventSink>) {
    loop {
        match rx.try_recv() {
            Ok(event) => sink.event(event),
            Err(TryRecvError::Empty) => {
                sink.flush();
                match rx.blocking_recv() {
                    Some(event) => sink.event(event),
                    None => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        }
    }
    sink.flush();
}
