//! Reading a worker's stdout or stderr: lines, frames, activity, back-pressure.

use super::activity::Activity;
use crate::events::{Event, InstanceLabel, LogRecord, LogStream};
use distarch_protocol::{parse_worker_line, Level, LineSplitter, RawLine, WorkerFrame, WorkerLine};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

const READ_CHUNK: usize = 64 * 1024;

/// Reads `stream` to its end, turning lines into events. Sending waits when the
/// event channel is full, so a flooding worker is slowed down by its own pipe
/// instead of growing the master's memory.
pub(crate) async fn read_stream(
    mut stream: Box<dyn AsyncRead + Send + Unpin>,
    kind: LogStream,
    label: Arc<InstanceLabel>,
    activity: Arc<Activity>,
    events: mpsc::Sender<Event>,
    max_line: usize,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut splitter = LineSplitter::new(max_line);
    let mut batch: Vec<Event> = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut alive = false;
        splitter.feed(&buf[..n], |line| {
            if is_blank(line.bytes) && !line.truncated {
                return;
            }
            alive = true;
            if let Some(ev) = line_event(line, kind, &label, &activity) {
                batch.push(ev);
            }
        });
        if alive {
            activity.touch();
            if activity.first_seen() {
                batch.insert(0, Event::InstanceSeen(label.clone()));
            }
        }
        for ev in batch.drain(..) {
            if events.send(ev).await.is_err() {
                return;
            }
        }
    }
    splitter.finish(|line| {
        if is_blank(line.bytes) {
            return;
        }
        if let Some(ev) = line_event(line, kind, &label, &activity) {
            batch.push(ev);
        }
    });
    for ev in batch {
        if events.send(ev).await.is_err() {
            return;
        }
    }
}

/// Blank lines (only spaces, tabs, `\r`) are neither logged nor activity: a worker
/// that prints nothing but empty lines is as good as silent.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

fn line_event(
    line: RawLine<'_>,
    kind: LogStream,
    label: &Arc<InstanceLabel>,
    activity: &Activity,
) -> Option<Event> {
    let plain_level = match kind {
        LogStream::Stdout => Level::Info,
        LogStream::Stderr => Level::Warn,
    };
    let record = |level, message: String, fields: Option<Map<String, Value>>| {
        Some(Event::Log(LogRecord {
            time: SystemTime::now(),
            instance: Some(label.clone()),
            level,
            message,
            fields,
            stream: Some(kind),
            truncated: line.truncated,
        }))
    };
    if kind == LogStream::Stderr || line.truncated {
        // Frames are only read on stdout, and a cut line cannot be a whole frame.
        return record(plain_level, String::from_utf8_lossy(line.bytes).into_owned(), None);
    }
    match parse_worker_line(line.bytes) {
        WorkerLine::Text(text) => record(plain_level, text, None),
        WorkerLine::Frame(WorkerFrame::Ping) => None,
        WorkerLine::Frame(WorkerFrame::Log {
            level,
            message,
            fields,
        }) => record(level, message, fields),
        WorkerLine::Frame(WorkerFrame::Ready) => Some(Event::InstanceReady(label.clone())),
        WorkerLine::Frame(WorkerFrame::Ended) => {
            activity.mark_ended_frame();
            None
        }
        WorkerLine::Frame(WorkerFrame::Status { text }) => Some(Event::InstanceStatus {
            instance: label.clone(),
            text,
        }),
        WorkerLine::Malformed { text, error } => {
            let mut fields = Map::new();
            fields.insert("malformed_frame".into(), Value::String(error));
            record(plain_level, text, Some(fields))
        }
    }
}
