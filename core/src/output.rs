//! The master's log output: every event as one whole line, either text
//! (`[group] [host] [id/group_id] LEVEL message`, `[master]` for the master's own
//! lines) or JSON (one object per line).

use crate::config::{LogFormat, TimeZone};
use crate::events::{Event, InstanceLabel, LogLines, LogRecord, LogStream, StopStep};
use crate::sink::EventSink;
use crate::stamp::{stamp, Stamps};
use distarch_protocol::Level;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::time::SystemTime;

/// Buffer size above which output is written even if more events are waiting.
/// Under a flood every write is this large: 1 MiB writes cost the kernel about a
/// fifth less per byte of a log file on ext4 than 128 KiB ones did (bench/
/// observability.sh, perf of the file thread). A quiet run never fills it: the
/// buffer is written whenever no event waits.
const FLUSH_AT: usize = 1024 * 1024;

/// What a [`LogWriter`] calls when writing fails.
type WriteErrorHook = Box<dyn FnMut(&std::io::Error) + Send>;

/// Writes events as log lines to a writer. Lines are only ever written whole: the
/// buffer holds complete lines and is written when no event is waiting or when it
/// is large.
pub struct LogWriter<W: Write + Send + 'static> {
    out: W,
    format: LogFormat,
    min_level: Level,
    buf: Vec<u8>,
    /// Called once, on the first write that fails (a closed pipe, a full disk).
    on_error: Option<WriteErrorHook>,
    /// Set once a write failed: nothing more is written (or buffered).
    broken: bool,
    /// Text lines start with their time in this zone (`None`: no timestamps).
    stamps: Option<Stamps>,
    /// The timestamp of the event being written (reused).
    time: Vec<u8>,
    /// Only events this accepts are written (a group's own file).
    filter: Option<EventFilter>,
    /// Start errors already printed (text output says each reason once).
    start_errors: crate::repeats::StartErrors,
    /// The live settings this writer follows, if any.
    live: Option<Following>,
}

/// A writer's binding to the run's live output settings.
struct Following {
    live: crate::LiveOutput,
    /// Which of the settings the writer takes.
    follow: crate::Follow,
    /// The generation last applied.
    seen: u64,
}

impl Following {
    /// The new settings, when a reload came since the last call.
    fn changed(&mut self) -> Option<crate::OutputSettings> {
        let now = self.live.generation();
        (now != self.seen).then(|| {
            self.seen = now;
            self.live.settings()
        })
    }
}

/// Decides which events a [`LogWriter`] writes.
pub type EventFilter = Box<dyn Fn(&Event) -> bool + Send>;

impl<W: Write + Send + 'static> LogWriter<W> {
    /// A writer in `format` to `out`.
    pub fn new(out: W, format: LogFormat) -> Self {
        LogWriter {
            out,
            format,
            min_level: Level::Trace,
            buf: Vec::with_capacity(FLUSH_AT * 2),
            on_error: None,
            broken: false,
            stamps: None,
            time: Vec::new(),
            filter: None,
            start_errors: Default::default(),
            live: None,
        }
    }

    /// Follows the run's live output settings (what a reload changes): `follow`
    /// says which of them. They replace what the writer was built with, now and
    /// at every change.
    pub fn following(mut self, live: crate::LiveOutput, follow: crate::Follow) -> Self {
        let seen = live.generation();
        self.take_settings(live.settings(), follow);
        self.live = Some(Following { live, follow, seen });
        self
    }

    fn take_settings(&mut self, s: crate::OutputSettings, follow: crate::Follow) {
        self.min_level = s.level;
        match follow {
            crate::Follow::All => {
                self.format = s.format;
                self.stamps = s.timestamps.then(|| Stamps::new(s.zone));
            }
            crate::Follow::LevelAndZone => {
                if self.stamps.is_some() {
                    self.stamps = Some(Stamps::new(s.zone));
                }
            }
        }
    }

    /// Applies a reload's settings if one came since the last event.
    fn catch_up(&mut self) {
        let Some(following) = &mut self.live else {
            return;
        };
        let follow = following.follow;
        if let Some(settings) = following.changed() {
            self.take_settings(settings, follow);
        }
    }

    /// Starts each text line with its time (RFC 3339, milliseconds) in `zone`
    /// (`None`: no timestamps). JSON lines always carry a `time`.
    pub fn with_timestamps(mut self, zone: Option<TimeZone>) -> Self {
        self.stamps = zone.map(Stamps::new);
        self
    }

    /// Writes only the events `filter` accepts.
    pub fn with_filter(mut self, filter: impl Fn(&Event) -> bool + Send + 'static) -> Self {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Replaces the output (a log file opened again), writing what is buffered to
    /// the old one first.
    pub fn replace_output(&mut self, out: W) {
        self.write_buffer();
        self.out = out;
        self.broken = false;
    }

    /// Writes one event (same as [`EventSink::event`], without taking it).
    pub fn write_event(&mut self, event: &Event) {
        self.catch_up();
        if event_level(event).is_some_and(|level| level < self.min_level) {
            return;
        }
        if let Some(filter) = &self.filter {
            if !filter(event) {
                return;
            }
        }
        match self.format {
            LogFormat::Text => {
                self.time.clear();
                if let Some(stamps) = &mut self.stamps {
                    stamps.push(&mut self.time, event_time(event));
                }
                match self.start_errors.shorten(event) {
                    Some(shorter) => format_text_with(&mut self.buf, &shorter, &self.time),
                    None => format_text_with(&mut self.buf, event, &self.time),
                }
            }
            LogFormat::Json => format_json(&mut self.buf, event),
        }
        if self.buf.len() >= FLUSH_AT {
            self.write_buffer();
        }
    }

    /// Writes what is buffered.
    pub fn flush_now(&mut self) {
        self.write_buffer();
    }

    /// Calls `f` once when writing fails (the reader of a pipe went away, the disk
    /// is full): the output is gone, and the caller decides what that means (the
    /// CLI stops the run cleanly). Later output is dropped.
    pub fn on_write_error(mut self, f: impl FnMut(&std::io::Error) + Send + 'static) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }

    /// Shows only lines at `level` or more severe.
    pub fn with_min_level(mut self, level: Level) -> Self {
        self.min_level = level;
        self
    }

    fn write_buffer(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if !self.broken {
            // A failed write (closed stdout) must not take the master down: it is
            // reported once, and the rest is dropped.
            let written = self
                .out
                .write_all(&self.buf)
                .and_then(|()| self.out.flush());
            if let Err(e) = written {
                self.broken = true;
                if let Some(f) = self.on_error.as_mut() {
                    f(&e);
                }
            }
        }
        self.buf.clear();
    }
}

impl<W: Write + Send + 'static> EventSink for LogWriter<W> {
    fn event(&mut self, event: Event) {
        self.write_event(&event);
    }

    fn event_shared(&mut self, event: std::sync::Arc<Event>) {
        self.write_event(&event);
    }

    fn flush(&mut self) {
        self.write_buffer();
    }
}

impl<W: Write + Send + 'static> crate::sink::EventObserver for LogWriter<W> {
    fn observe(&mut self, event: &Event) {
        self.write_event(event);
    }

    fn flush(&mut self) {
        self.write_buffer();
    }
}

/// What the master says about an event, as (instance, level, text); `None` for
/// events it does not print.
fn describe(event: &Event) -> Option<(Option<&InstanceLabel>, Level, String)> {
    Some(match event {
        Event::RunStarting { run_id, instances } => (
            None,
            Level::Info,
            format!("run {run_id}: starting {instances} instance(s)"),
        ),
        Event::RunStarted { .. } => return None,
        Event::RunStopping { reason, forced } => (
            None,
            Level::Warn,
            if *forced {
                format!("stopping everything now: {reason}")
            } else {
                format!("stopping everything: {reason}")
            },
        ),
        Event::RunStopped { run_id, exit_code } => (
            None,
            Level::Info,
            format!("run {run_id}: all instances ended (exit code {exit_code})"),
        ),
        Event::InstanceCreated(_) | Event::InstanceSeen(_) => return None,
        Event::InstanceStarted {
            instance,
            description,
        } => (
            Some(instance),
            Level::Debug,
            format!("started ({description})"),
        ),
        Event::InstanceReady(i) => (Some(i), Level::Debug, "ready".into()),
        Event::InstanceStatus { instance, text } => {
            (Some(instance), Level::Info, format!("status: {text}"))
        }
        Event::InstanceTimedOut { instance, after } => (
            Some(instance),
            Level::Warn,
            format!(
                "no output for {}: considered hung",
                humantime::format_duration(*after)
            ),
        ),
        Event::InstanceFailedToStart { instance, error } => (
            Some(instance),
            Level::Error,
            format!("failed to start: {error}"),
        ),
        Event::InstanceStopped {
            instance,
            exit,
            stopped_by,
        } => {
            let how = match stopped_by {
                None => String::new(),
                Some(StopStep::StopFrame) => " after a stop request".into(),
                Some(StopStep::Terminate) => " after being terminated".into(),
                Some(StopStep::Kill) => " after being killed".into(),
            };
            let level = if exit.success() || matches!(stopped_by, Some(s) if *s < StopStep::Kill) {
                Level::Info
            } else {
                Level::Warn
            };
            (Some(instance), level, format!("ended{how}: {exit}"))
        }
        Event::InstanceRestarting {
            instance,
            restart,
            delay,
        } => (
            Some(instance),
            Level::Info,
            format!(
                "restarting in {} (restart {restart})",
                humantime::format_duration(round_ms(*delay))
            ),
        ),
        Event::Log(_) | Event::Lines(_) => return None,
    })
}

/// The level an event is shown at (`None` for events that are never shown).
pub fn event_level(event: &Event) -> Option<Level> {
    match event {
        Event::Log(r) => Some(r.level),
        Event::Lines(l) => Some(l.level),
        other => describe(other).map(|(_, level, _)| level),
    }
}

fn round_ms(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(d.as_millis() as u64)
}

fn level_tag(level: Level) -> &'static str {
    match level {
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    }
}

fn prefix(buf: &mut Vec<u8>, instance: Option<&InstanceLabel>) {
    match instance {
        Some(i) => buf.extend_from_slice(i.text_prefix().as_bytes()),
        None => buf.extend_from_slice(b"[master] "),
    }
}

/// Appends `event` as a text line (nothing for events that are not shown).
pub fn format_text(buf: &mut Vec<u8>, event: &Event) {
    format_text_at(buf, event, None);
}

/// The time an event happened (when the master received it), or now.
fn event_time(event: &Event) -> SystemTime {
    match event {
        Event::Log(r) => r.time,
        Event::Lines(l) => l.time,
        _ => SystemTime::now(),
    }
}

/// Appends `event` as a text line, each line starting with its time in `zone`
/// when one is given (nothing for events that are not shown).
pub fn format_text_at(buf: &mut Vec<u8>, event: &Event, zone: Option<TimeZone>) {
    let time = zone.map(|z| stamp(event_time(event), z));
    format_text_with(buf, event, time.as_deref().unwrap_or("").as_bytes());
}

/// Appends `event` as a text line, each line starting with `time`.
fn format_text_with(buf: &mut Vec<u8>, event: &Event, time: &[u8]) {
    match event {
        Event::Log(record) => return format_text_record(buf, record, time),
        Event::Lines(lines) => return format_text_lines(buf, lines, time),
        _ => {}
    }
    if let Some((instance, level, text)) = describe(event) {
        buf.extend_from_slice(time);
        prefix(buf, instance);
        let _ = write!(buf, "{} distarch: ", level_tag(level));
        push_single_line(buf, &text);
        buf.push(b'\n');
    }
}

fn format_text_lines(buf: &mut Vec<u8>, lines: &LogLines, time: &[u8]) {
    // Every line of a batch starts the same (time, labels, level): that head is
    // put together once, for the first line, and copied from there for the
    // others, so a line costs two copies (head and text) and its newline. Room
    // for a plain batch is made once (escapes and cut marks make their own).
    let prefix = lines.instance.text_prefix().as_bytes();
    let tag = level_tag(lines.level).as_bytes();
    let head_len = time.len() + prefix.len() + tag.len() + 1;
    buf.reserve(lines.text_len() + lines.len() * (head_len + 1));
    let plain = lines.plain().text;
    let mut head: Option<std::ops::Range<usize>> = None;
    for (line, truncated) in lines.iter() {
        match &head {
            Some(range) => buf.extend_from_within(range.clone()),
            None => {
                let start = buf.len();
                buf.extend_from_slice(time);
                buf.extend_from_slice(prefix);
                buf.extend_from_slice(tag);
                buf.push(b' ');
                head = Some(start..buf.len());
            }
        }
        if plain {
            buf.extend_from_slice(line.as_bytes());
        } else {
            push_single_line(buf, line);
        }
        if truncated {
            buf.extend_from_slice(b" [line truncated]");
        }
        buf.push(b'\n');
    }
}

fn format_text_record(buf: &mut Vec<u8>, r: &LogRecord, time: &[u8]) {
    buf.extend_from_slice(time);
    prefix(buf, r.instance.as_deref());
    buf.extend_from_slice(level_tag(r.level).as_bytes());
    // The master's own lines read like its other lines: `LEVEL distarch: text`.
    let from_master = r.instance.is_none() || is_master_record(r);
    if from_master {
        buf.extend_from_slice(b" distarch:");
    }
    buf.push(b' ');
    push_single_line(buf, &r.message);
    if let Some(fields) = &r.fields {
        for (k, v) in fields {
            if from_master && k == "source" {
                continue;
            }
            buf.push(b' ');
            push_single_line(buf, k);
            buf.push(b'=');
            match v {
                Value::String(s) => push_single_line(buf, &format!("{s:?}")),
                other => push_single_line(buf, &other.to_string()),
            }
        }
    }
    if r.truncated {
        buf.extend_from_slice(b" [line truncated]");
    }
    buf.push(b'\n');
}

/// True for a record the master wrote about an instance (`source=master`).
fn is_master_record(r: &LogRecord) -> bool {
    r.fields
        .as_ref()
        .and_then(|f| f.get("source"))
        .is_some_and(|v| v == "master")
}

/// Appends text with control characters escaped, so one record stays one line
/// and a worker cannot drive the terminal or forge a master line.
fn push_single_line(buf: &mut Vec<u8>, text: &str) {
    crate::escape::push_escaped(buf, text);
}

fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn instance_fields(obj: &mut Map<String, Value>, i: &InstanceLabel) {
    obj.insert("group".into(), json!(&*i.group));
    obj.insert("host".into(), json!(&*i.host));
    obj.insert("id".into(), json!(i.id));
    obj.insert("group_id".into(), json!(i.group_id));
    obj.insert("restart".into(), json!(i.restart));
}

/// Appends every line of a batch as a JSON object line. The lines of a batch share
/// everything but their text, so the shared fields are serialised once: the
/// objects are those of a `serde_json` map (keys in sorted order), written as
/// `{<fields before "message">,"message":<text>,<fields after>[,"truncated":true]}`.
fn format_json_lines(buf: &mut Vec<u8>, lines: &LogLines) {
    let mut before = Map::new();
    before.insert("level".into(), json!(lines.level.as_str()));
    instance_fields(&mut before, &lines.instance);
    let restart = before.remove("restart").unwrap_or(Value::Null);
    let mut after = Map::new();
    after.insert("restart".into(), restart);
    after.insert("stream".into(), json!(stream_name(lines.stream)));
    after.insert("time".into(), json!(timestamp(lines.time)));
    // `{"group":…,"level":"info"` and `"restart":…,"time":"…"`: the objects
    // without their closing and opening braces.
    let mut head = serde_json::to_vec(&Value::Object(before)).unwrap_or_default();
    head.pop();
    let tail = serde_json::to_vec(&Value::Object(after)).unwrap_or_default();
    let tail = tail
        .get(1..tail.len().saturating_sub(1))
        .unwrap_or_default();
    let plain = lines.plain().json;
    for (line, truncated) in lines.iter() {
        buf.extend_from_slice(&head);
        buf.extend_from_slice(b",\"message\":");
        if plain {
            buf.push(b'"');
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'"');
        } else {
            crate::escape::push_json_str(buf, line);
        }
        buf.push(b',');
        buf.extend_from_slice(tail);
        if truncated {
            buf.extend_from_slice(b",\"truncated\":true");
        }
        buf.extend_from_slice(b"}\n");
    }
}

/// Appends `event` as one JSON object line (nothing for events that are not shown).
pub fn format_json(buf: &mut Vec<u8>, event: &Event) {
    let mut obj = Map::new();
    match event {
        Event::Lines(lines) => {
            format_json_lines(buf, lines);
            return;
        }
        Event::Log(r) => {
            obj.insert("time".into(), json!(timestamp(r.time)));
            obj.insert("level".into(), json!(r.level.as_str()));
            match &r.instance {
                Some(i) => instance_fields(&mut obj, i),
                None => {
                    obj.insert("source".into(), json!("master"));
                }
            }
            if let Some(stream) = r.stream {
                obj.insert("stream".into(), json!(stream_name(stream)));
            }
            obj.insert("message".into(), json!(r.message));
            if let Some(fields) = &r.fields {
                obj.insert("fields".into(), Value::Object(fields.clone()));
            }
            if r.truncated {
                obj.insert("truncated".into(), json!(true));
            }
        }
        other => {
            let Some((instance, level, text)) = describe(other) else {
                return;
            };
            obj.insert("time".into(), json!(timestamp(SystemTime::now())));
            obj.insert("level".into(), json!(level.as_str()));
            obj.insert("source".into(), json!("master"));
            obj.insert("event".into(), json!(event_name(other)));
            if let Some(i) = instance {
                instance_fields(&mut obj, i);
            }
            match other {
                Event::RunStopped { exit_code, .. } => {
                    obj.insert("exit_code".into(), json!(exit_code));
                }
                Event::InstanceStopped { exit, .. } => {
                    obj.insert("exit".into(), json!(exit.to_string()));
                }
                _ => {}
            }
            obj.insert("message".into(), json!(text));
        }
    }
    let _ = serde_json::to_writer(&mut *buf, &Value::Object(obj));
    buf.push(b'\n');
}

fn stream_name(stream: LogStream) -> &'static str {
    match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::RunStarting { .. } => "run_starting",
        Event::RunStarted { .. } => "run_started",
        Event::RunStopping { .. } => "run_stopping",
        Event::RunStopped { .. } => "run_stopped",
        Event::InstanceCreated(_) => "instance_created",
        Event::InstanceStarted { .. } => "instance_started",
        Event::InstanceSeen(_) => "instance_seen",
        Event::InstanceReady(_) => "instance_ready",
        Event::InstanceStatus { .. } => "instance_status",
        Event::InstanceTimedOut { .. } => "instance_timed_out",
        Event::InstanceFailedToStart { .. } => "instance_failed_to_start",
        Event::InstanceStopped { .. } => "instance_stopped",
        Event::InstanceRestarting { .. } => "instance_restarting",
        Event::Log(_) | Event::Lines(_) => "log",
    }
}
