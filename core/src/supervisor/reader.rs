//! Reading a worker's stdout or stderr: lines, frames, activity, back-pressure.

use super::activity::Activity;
use crate::events::{Event, InstanceLabel, LogLines, LogRecord, LogStream};
use crate::jobs::{Reply, Reporter};
use crate::sink::EventTx;
use distarch_protocol::{
    parse_worker_line, Level, LineSplitter, RawLine, WorkerFrame, WorkerLine, FRAME_MARKER,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Read buffer of a quiet stream (most of them, when there are thousands: the buffer
/// is held while the read waits).
const READ_CHUNK_MIN: usize = 256;
/// Largest read buffer of a stream.
const READ_CHUNK_MAX: usize = 16 * 1024;

/// What a stream's lines are checked against besides the log.
pub(crate) struct LineHooks {
    /// Longest line kept.
    pub(crate) max_line: usize,
    /// The group's readiness pattern.
    pub(crate) ready_log: Option<Arc<regex::Regex>>,
    /// Where job frames go (stdout of a job pool's instance).
    pub(crate) jobs: Option<Reporter>,
}

/// One of an instance's output streams while it is read.
struct OpenStream {
    stream: Box<dyn AsyncRead + Send + Unpin>,
    kind: LogStream,
    buf: Vec<u8>,
    splitter: LineSplitter,
}

impl OpenStream {
    fn new(stream: Box<dyn AsyncRead + Send + Unpin>, kind: LogStream, max_line: usize) -> Self {
        // Quiet workers (most of them, when there are thousands) keep a small
        // buffer; one that fills it gets a bigger one, up to READ_CHUNK_MAX, and
        // gives it back once its reads are small again.
        OpenStream {
            stream,
            kind,
            buf: vec![0u8; READ_CHUNK_MIN],
            splitter: LineSplitter::new(max_line),
        }
    }
}

/// Reads the next chunk of `stream`; pends forever once it is closed (`None`).
async fn read_some(stream: &mut Option<OpenStream>) -> std::io::Result<usize> {
    match stream {
        Some(s) => s.stream.read(&mut s.buf).await,
        None => std::future::pending().await,
    }
}

/// Reads an instance's stdout and stderr (when it has one) to their ends in one
/// task (one task per instance instead of one per stream: a task and its future
/// cost about a kilobyte, thousands of times over), turning lines into events.
/// Sending waits when the event channel is full, so a flooding worker is slowed
/// down by its own pipe instead of growing the master's memory. `hooks.ready_log`,
/// when set, is the group's readiness pattern: the first line that matches (on
/// either stream) makes the instance ready; job frames are read on stdout only.
pub(crate) async fn read_streams(
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    label: Arc<InstanceLabel>,
    activity: Arc<Activity>,
    events: EventTx,
    hooks: LineHooks,
) {
    let LineHooks {
        max_line,
        ready_log,
        jobs,
    } = hooks;
    let mut out = Some(OpenStream::new(stdout, LogStream::Stdout, max_line));
    let mut err = stderr.map(|s| OpenStream::new(s, LogStream::Stderr, max_line));
    let ready_log = ready_log.as_deref();
    while out.is_some() || err.is_some() {
        let (side, read) = tokio::select! {
            r = read_some(&mut out) => (&mut out, r),
            r = read_some(&mut err) => (&mut err, r),
        };
        let Some(s) = side.as_mut() else { continue };
        let jobs = jobs.as_ref().filter(|_| s.kind == LogStream::Stdout);
        let (batch, replies) = match read {
            Ok(n) if n > 0 => read_chunk(s, n, &label, &activity, ready_log, jobs.is_some()),
            // End of the stream: what is left of its last line goes out with it.
            _ => {
                let buffered = s.splitter.buffered();
                let mut chunk = Chunk::new(s.kind, &label, buffered, &activity, ready_log);
                chunk.collect_jobs = jobs.is_some();
                s.splitter.finish(|line| chunk.line(line));
                *side = None;
                chunk.finish()
            }
        };
        if let Some(jobs) = jobs {
            jobs.send(replies).await;
        }
        if !events.send_batch(batch).await {
            return;
        }
    }
}

/// The events (and job replies) of a read of `n` bytes into `s.buf`; resizes the
/// buffer for the next read.
fn read_chunk(
    s: &mut OpenStream,
    n: usize,
    label: &Arc<InstanceLabel>,
    activity: &Activity,
    ready_log: Option<&regex::Regex>,
    collect_jobs: bool,
) -> (Vec<Event>, Vec<Reply>) {
    let size = next_buffer_size(s.buf.len(), n);
    if size > s.buf.len() {
        s.buf.resize(size, 0);
    }
    let mut chunk = Chunk::new(s.kind, label, n, activity, ready_log);
    chunk.collect_jobs = collect_jobs;
    s.splitter.feed(&s.buf[..n], |line| chunk.line(line));
    if size < s.buf.len() {
        s.buf = vec![0u8; size];
    }
    s.splitter.release_spare();
    chunk.finish()
}

/// The read buffer size after a read of `n` bytes into `len`: four times bigger
/// (up to [`READ_CHUNK_MAX`]) when the read filled it, back to [`READ_CHUNK_MIN`]
/// when it used less than an eighth of a grown buffer.
fn next_buffer_size(len: usize, n: usize) -> usize {
    if n == len && len < READ_CHUNK_MAX {
        (len * 4).min(READ_CHUNK_MAX)
    } else if len > READ_CHUNK_MIN && n < len / 8 {
        READ_CHUNK_MIN
    } else {
        len
    }
}

/// The events of one read: plain lines gathered in one [`LogLines`], frames in order
/// between them.
struct Chunk<'a> {
    kind: LogStream,
    label: &'a Arc<InstanceLabel>,
    time: SystemTime,
    plain: Option<LogLines>,
    events: Vec<Event>,
    alive: bool,
    /// Size of the read, to size the text buffer once.
    bytes: usize,
    activity: &'a Activity,
    /// The readiness pattern, while the instance is not ready yet.
    ready_log: Option<&'a regex::Regex>,
    /// Whether job frames are passed on (the group is a job pool).
    collect_jobs: bool,
    /// Job frames of this read, for the pool.
    replies: Vec<Reply>,
}

impl<'a> Chunk<'a> {
    fn new(
        kind: LogStream,
        label: &'a Arc<InstanceLabel>,
        bytes: usize,
        activity: &'a Activity,
        ready_log: Option<&'a regex::Regex>,
    ) -> Self {
        Chunk {
            kind,
            label,
            time: SystemTime::now(),
            plain: None,
            events: Vec::new(),
            alive: false,
            bytes,
            activity,
            ready_log: ready_log.filter(|_| !activity.is_ready()),
            collect_jobs: false,
            replies: Vec::new(),
        }
    }

    /// Makes the instance ready (once per start), after the line that did it.
    fn ready(&mut self) {
        self.ready_log = None;
        if self.activity.mark_ready() {
            self.push_event(Event::InstanceReady(self.label.clone()));
        }
    }

    /// Checks a log line against the readiness pattern.
    fn probe(&mut self, text: &[u8]) {
        if let Some(re) = self.ready_log {
            if re.is_match(&String::from_utf8_lossy(text)) {
                self.ready();
            }
        }
    }

    fn plain_level(&self) -> Level {
        match self.kind {
            LogStream::Stdout => Level::Info,
            LogStream::Stderr => Level::Warn,
        }
    }

    fn push_event(&mut self, event: Event) {
        if let Some(lines) = self.plain.take() {
            self.events.push(Event::Lines(lines));
        }
        self.events.push(event);
    }

    fn push_plain(&mut self, bytes: &[u8], truncated: bool) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let probe = self.ready_log.is_some();
        let level = self.plain_level();
        let (time, label, kind, size) = (self.time, self.label, self.kind, self.bytes);
        self.plain
            .get_or_insert_with(|| LogLines::with_capacity(time, label.clone(), level, kind, size))
            .push(bytes, truncated);
        if probe {
            self.probe(bytes);
        }
    }

    fn line(&mut self, line: RawLine<'_>) {
        if is_blank(line.bytes) && !line.truncated {
            return;
        }
        self.alive = true;
        if self.kind == LogStream::Stderr
            || line.truncated
            || line.bytes.first() != Some(&FRAME_MARKER)
        {
            // Frames are only read on stdout, and a cut line cannot be a whole frame.
            return self.push_plain(line.bytes, line.truncated);
        }
        let record = |level, message: String, fields: Option<Map<String, Value>>| {
            Event::Log(LogRecord {
                time: self.time,
                instance: Some(self.label.clone()),
                level,
                message,
                fields,
                stream: Some(self.kind),
                truncated: false,
            })
        };
        let parsed = parse_worker_line(line.bytes);
        if matches!(parsed, WorkerLine::Frame(_) | WorkerLine::Unknown { .. }) {
            self.activity.mark_protocol();
        }
        let event = match parsed {
            WorkerLine::Text(_) => return self.push_plain(line.bytes, false),
            WorkerLine::Frame(WorkerFrame::Log {
                level,
                message,
                fields,
            }) => {
                let matches = self.ready_log.is_some_and(|re| re.is_match(&message));
                self.push_event(record(level, message, fields));
                if matches {
                    self.ready();
                }
                return;
            }
            WorkerLine::Frame(WorkerFrame::Ready) => return self.ready(),
            // Activity like any frame; how the worker ended is read from its exit.
            WorkerLine::Frame(
                WorkerFrame::Ping | WorkerFrame::Ended | WorkerFrame::Hello { .. },
            ) => return,
            WorkerLine::Frame(WorkerFrame::Want { n }) => {
                if self.collect_jobs {
                    self.replies.push(Reply::Want(n));
                }
                return;
            }
            WorkerLine::Frame(WorkerFrame::Done { id, result }) => {
                if self.collect_jobs {
                    self.replies.push(Reply::Done { id, result });
                }
                return;
            }
            WorkerLine::Frame(WorkerFrame::Failed {
                id,
                error,
                retryable,
            }) => {
                if self.collect_jobs {
                    self.replies.push(Reply::Failed {
                        id,
                        error,
                        retryable,
                    });
                }
                return;
            }
            WorkerLine::Frame(WorkerFrame::Status { text }) => Event::InstanceStatus {
                instance: self.label.clone(),
                text,
            },
            WorkerLine::Malformed { text, error } => {
                let mut fields = Map::new();
                fields.insert("malformed_frame".into(), Value::String(error));
                record(self.plain_level(), text, Some(fields))
            }
            // A newer worker's frame: ignored, as the protocol says.
            _ => return,
        };
        self.push_event(event);
    }

    fn finish(mut self) -> (Vec<Event>, Vec<Reply>) {
        if let Some(lines) = self.plain.take() {
            self.events.push(Event::Lines(lines));
        }
        if self.alive {
            self.activity.touch();
            if self.activity.first_seen() {
                self.events
                    .insert(0, Event::InstanceSeen(self.label.clone()));
            }
        }
        (self.events, self.replies)
    }
}

/// Blank lines (only spaces, tabs, `\r`) are neither logged nor activity: a worker
/// that prints nothing but empty lines is as good as silent.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    #[test]
    fn the_read_buffer_grows_when_filled_and_shrinks_when_quiet_again() {
        assert_eq!(next_buffer_size(READ_CHUNK_MIN, 10), READ_CHUNK_MIN);
        assert_eq!(
            next_buffer_size(READ_CHUNK_MIN, READ_CHUNK_MIN),
            READ_CHUNK_MIN * 4
        );
        assert_eq!(
            next_buffer_size(READ_CHUNK_MAX, READ_CHUNK_MAX),
            READ_CHUNK_MAX
        );
        assert_eq!(
            next_buffer_size(READ_CHUNK_MAX, READ_CHUNK_MAX / 2),
            READ_CHUNK_MAX
        );
        assert_eq!(next_buffer_size(READ_CHUNK_MAX, 100), READ_CHUNK_MIN);
    }
}
