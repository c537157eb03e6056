//! Recent output of every instance, kept in a bounded buffer per instance for
//! `distarch logs`: whole batches of lines, the oldest dropped first once the
//! buffer's byte bound is passed.

use crate::events::{Event, LogLines, LogRecord};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

/// What a client asks of the buffered logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only these groups (all when empty).
    pub groups: Vec<String>,
    /// Only these instance ids (all when empty).
    pub ids: Vec<u64>,
    /// Only lines received at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many of the most recent buffered lines.
    pub tail: Option<usize>,
}

impl LogFilter {
    /// True when this event holds lines the filter wants (ignoring `since`/`tail`).
    pub fn wants(&self, event: &Event) -> bool {
        let label = match event {
            Event::Lines(l) => &l.instance,
            Event::Log(LogRecord {
                instance: Some(l), ..
            }) => l,
            Event::Log(_) => return self.groups.is_empty() && self.ids.is_empty(),
            _ => return false,
        };
        (self.groups.is_empty() || self.groups.iter().any(|g| **g == *label.group))
            && (self.ids.is_empty() || self.ids.contains(&label.id))
    }
}

/// The instance whose buffer keeps `event` (0 for the master's own lines), or None
/// when the event holds no output.
fn buffer_of(event: &Event) -> Option<u64> {
    match event {
        Event::Lines(l) => Some(l.instance.id),
        Event::Log(r) => Some(r.instance.as_ref().map_or(0, |l| l.id)),
        _ => None,
    }
}

/// The bytes of output an event holds (what the buffer's bound counts).
fn output_bytes(event: &Event) -> usize {
    match event {
        Event::Lines(l) => l.iter().map(|(t, _)| t.len() + 1).sum(),
        Event::Log(r) => r.message.len() + 1,
        _ => 0,
    }
}

fn time_of(event: &Event) -> Option<SystemTime> {
    match event {
        Event::Lines(l) => Some(l.time),
        Event::Log(r) => Some(r.time),
        _ => None,
    }
}

/// One instance's buffer: (arrival number, event, its bytes), oldest first. The
/// events are shared with the live feed and with every reader of the buffer, so a
/// follower that asks for the whole buffer costs pointers, not copies.
#[derive(Debug, Default)]
struct Ring {
    kept: VecDeque<(u64, Arc<Event>, usize)>,
    bytes: usize,
}

impl Ring {
    fn push(&mut self, seq: u64, event: Arc<Event>, limit: usize) {
        let size = output_bytes(&event);
        self.kept.push_back((seq, event, size));
        self.bytes += size;
        while self.bytes > limit {
            match self.kept.pop_front() {
                Some((_, _, s)) => self.bytes -= s,
                None => break,
            }
        }
    }
}

/// The buffers of every instance (and of the master's own lines, under id 0).
#[derive(Debug, Default)]
pub(crate) struct LogBuffers {
    rings: HashMap<u64, Ring>,
    limit: usize,
    seq: u64,
}

impl LogBuffers {
    /// Buffers of at most `limit` bytes each.
    pub(crate) fn new(limit: usize) -> Self {
        LogBuffers {
            rings: HashMap::new(),
            limit,
            seq: 0,
        }
    }

    /// Keeps the lines of `event`, if it has any.
    pub(crate) fn observe(&mut self, event: &Arc<Event>) {
        if self.limit == 0 {
            return;
        }
        let Some(id) = buffer_of(event) else {
            return;
        };
        self.seq += 1;
        let limit = self.limit;
        self.rings
            .entry(id)
            .or_default()
            .push(self.seq, event.clone(), limit);
    }

    /// Forgets an instance's buffer.
    pub(crate) fn forget(&mut self, id: u64) {
        self.rings.remove(&id);
    }

    /// The buffered events the filter wants, oldest first, cut to `tail` lines.
    pub(crate) fn select(&self, filter: &LogFilter) -> Vec<Arc<Event>> {
        let mut picked: Vec<(u64, Arc<Event>)> = Vec::new();
        for ring in self.rings.values() {
            for (seq, event, _) in &ring.kept {
                if filter
                    .since
                    .is_some_and(|s| time_of(event).is_some_and(|t| t < s))
                {
                    continue;
                }
                if filter.wants(event) {
                    picked.push((*seq, event.clone()));
                }
            }
        }
        picked.sort_by_key(|(seq, _)| *seq);
        let mut events: Vec<Arc<Event>> = picked.into_iter().map(|(_, e)| e).collect();
        if let Some(tail) = filter.tail {
            cut_to_tail(&mut events, tail);
        }
        events
    }
}

/// Keeps only the last `tail` lines of `events` (a batch may be cut in the middle).
fn cut_to_tail(events: &mut Vec<Arc<Event>>, tail: usize) {
    let mut left = tail;
    let mut start = events.len();
    while start > 0 && left > 0 {
        let n = match &*events[start - 1] {
            Event::Lines(l) => l.len(),
            _ => 1,
        };
        start -= 1;
        if n > left {
            if let Event::Lines(l) = &*events[start] {
                let mut cut = LogLines::new(l.time, l.instance.clone(), l.level, l.stream);
                for (text, truncated) in l.iter().skip(n - left) {
                    cut.push(text.as_bytes(), truncated);
                }
                events[start] = Arc::new(Event::Lines(cut));
            }
            left = 0;
        } else {
            left -= n;
        }
    }
    events.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{InstanceLabel, LogStream};
    use distarch_protocol::Level;

    fn lines(id: u64, texts: &[&str]) -> Arc<Event> {
        let label = Arc::new(InstanceLabel::new("g".into(), "h".into(), id, id, 2, 0));
        let mut l = LogLines::new(SystemTime::now(), label, Level::Info, LogStream::Stdout);
        for t in texts {
            l.push(t.as_bytes(), false);
        }
        Arc::new(Event::Lines(l))
    }

    fn texts(events: &[Arc<Event>]) -> Vec<String> {
        let mut out = Vec::new();
        for e in events {
            if let Event::Lines(l) = &**e {
                out.extend(l.iter().map(|(t, _)| t.to_string()));
            }
        }
        out
    }

    #[test]
    fn the_oldest_batches_go_first_past_the_bound() {
        let mut b = LogBuffers::new(10);
        b.observe(&lines(1, &["aaaa"]));
        b.observe(&lines(1, &["bbbb"]));
        b.observe(&lines(1, &["cccc"]));
        assert_eq!(texts(&b.select(&LogFilter::default())), ["bbbb", "cccc"]);
    }

    #[test]
    fn tail_and_id_filters_apply_across_instances_in_arrival_order() {
        let mut b = LogBuffers::new(1000);
        b.observe(&lines(1, &["1a", "1b"]));
        b.observe(&lines(2, &["2a"]));
        b.observe(&lines(1, &["1c", "1d", "1e"]));
        let all = LogFilter {
            tail: Some(4),
            ..LogFilter::default()
        };
        assert_eq!(texts(&b.select(&all)), ["2a", "1c", "1d", "1e"]);
        let one = LogFilter {
            ids: vec![1],
            tail: Some(2),
            ..LogFilter::default()
        };
        assert_eq!(texts(&b.select(&one)), ["1d", "1e"]);
    }
}
