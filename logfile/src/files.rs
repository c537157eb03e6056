//! The run's log files: the launcher's (everything) and each group's (its own
//! instances' lines and the master's lines about them).

use crate::rotate::RotatingFile;
use distarch_core::protocol::Level;
use distarch_core::{Config, Event, EventObserver, LogFileConfig, LogWriter, TimeZone};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What is called when writing a file fails (once per file until it is reopened).
type ErrorHook = Arc<dyn Fn(&std::path::Path, &std::io::Error) + Send + Sync>;

/// A log file that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the log file `{}` ({key})", path.display())]
pub struct LogFileError {
    /// The config key that names it.
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Asks [`LogFiles`] to open its files again (cheap to clone; any thread).
#[derive(Debug, Clone, Default)]
pub struct Reopen(Arc<AtomicU64>);

impl Reopen {
    /// The files are opened again before the next line is written.
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn generation(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One open file and what it takes.
struct File {
    config: LogFileConfig,
    writer: LogWriter<RotatingFile>,
}

/// Every log file of a run, as one [`EventObserver`].
pub struct LogFiles {
    files: Vec<File>,
    reopen: Reopen,
    seen: u64,
    /// Report of the first failed write of each file (to standard error).
    on_error: ErrorHook,
}

/// The group an event is about, if any.
fn event_group(event: &Event) -> Option<&str> {
    let label = match event {
        Event::Lines(l) => &l.instance,
        Event::Log(r) => r.instance.as_ref()?,
        Event::InstanceCreated(l) | Event::InstanceSeen(l) | Event::InstanceReady(l) => l,
        Event::InstanceStarted { instance, .. }
        | Event::InstanceStatus { instance, .. }
        | Event::InstanceTimedOut { instance, .. }
        | Event::InstanceFailedToStart { instance, .. }
        | Event::InstanceStopped { instance, .. }
        | Event::InstanceRestarting { instance, .. } => instance,
        _ => return None,
    };
    Some(&label.group)
}

impl LogFiles {
    /// Opens every file `config` names (none: an empty set). `level` is the least
    /// severe level written, `zone` the time zone of text timestamps.
    pub fn open(
        config: &Config,
        level: Level,
        zone: TimeZone,
        on_error: impl Fn(&std::path::Path, &std::io::Error) + Send + Sync + 'static,
    ) -> Result<LogFiles, LogFileError> {
        let mut wanted: Vec<(String, Option<String>, &LogFileConfig)> = Vec::new();
        if let Some(f) = &config.launcher.log_file {
            wanted.push(("launcher.log_file".into(), None, f));
        }
        for (name, g) in &config.groups {
            if let Some(f) = &g.log_file {
                wanted.push((format!("groups.{name}.log_file"), Some(name.clone()), f));
            }
        }
        let on_error: ErrorHook = Arc::new(on_error);
        let mut files = Vec::new();
        for (key, group, f) in wanted {
            let out = RotatingFile::open(f).map_err(|source| LogFileError {
                key,
                path: f.path.clone(),
                source,
            })?;
            let writer = writer_for(f, out, level, zone, group, on_error.clone());
            files.push(File {
                config: f.clone(),
                writer,
            });
        }
        Ok(LogFiles {
            files,
            reopen: Reopen::default(),
            seen: 0,
            on_error,
        })
    }

    /// True when no file is configured.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A handle that makes these files open again.
    pub fn reopen_handle(&self) -> Reopen {
        self.reopen.clone()
    }

    fn reopen_if_asked(&mut self) {
        let wanted = self.reopen.generation();
        if wanted == self.seen {
            return;
        }
        self.seen = wanted;
        for file in &mut self.files {
            match RotatingFile::open(&file.config) {
                Ok(out) => file.writer.replace_output(out),
                Err(e) => (self.on_error)(&file.config.path, &e),
            }
        }
    }
}

fn writer_for(
    f: &LogFileConfig,
    out: RotatingFile,
    level: Level,
    zone: TimeZone,
    group: Option<String>,
    on_error: ErrorHook,
) -> LogWriter<RotatingFile> {
    let path = f.path.clone();
    let mut writer = LogWriter::new(out, f.format)
        .with_min_level(level)
        .with_timestamps(f.timestamps.then_some(zone))
        .on_write_error(move |e| on_error(&path, e));
    if let Some(group) = group {
        writer = writer.with_filter(move |event| event_group(event) == Some(group.as_str()));
    }
    writer
}

impl EventObserver for LogFiles {
    fn observe(&mut self, event: &Event) {
        self.reopen_if_asked();
        for file in &mut self.files {
            file.writer.write_event(event);
        }
    }

    fn flush(&mut self) {
        self.reopen_if_asked();
        for file in &mut self.files {
            file.writer.flush_now();
        }
    }
}
