//! The run's log files: the launcher's (everything) and each group's (its own
//! instances' lines and the master's lines about them), as written on the file
//! thread (see [`crate::writer`]).

use crate::rotate::RotatingFile;
use distarch_core::{Config, Event, Follow, LiveOutput, LogFileConfig, LogWriter};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What is called when writing a file fails (once per file until it is reopened).
pub(crate) type ErrorHook = Arc<dyn Fn(&std::path::Path, &std::io::Error) + Send + Sync>;

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
    /// The config key that names it.
    key: String,
    config: LogFileConfig,
    writer: LogWriter<RotatingFile>,
}

/// Every log file of a run, written by the file thread.
pub(crate) struct Files {
    files: Vec<File>,
    reopen: Reopen,
    seen: u64,
    /// The run's live output settings: a reload (a new generation) also opens the
    /// files again.
    live: LiveOutput,
    seen_live: u64,
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

impl Files {
    /// Opens every file `config` names (none: an empty set). The least severe
    /// level written and the time zone of text timestamps follow `live`.
    pub(crate) fn open(
        config: &Config,
        live: &LiveOutput,
        on_error: ErrorHook,
    ) -> Result<Files, LogFileError> {
        let mut wanted: Vec<(String, Option<String>, &LogFileConfig)> = Vec::new();
        if let Some(f) = &config.launcher.log_file {
            wanted.push(("launcher.log_file".into(), None, f));
        }
        for (name, g) in &config.groups {
            if let Some(f) = &g.log_file {
                wanted.push((format!("groups.{name}.log_file"), Some(name.clone()), f));
            }
        }
        let mut files = Vec::new();
        for (key, group, f) in wanted {
            let out = match RotatingFile::open(f) {
                Ok(out) => out,
                Err(source) => {
                    let path = f.path.clone();
                    return Err(LogFileError { key, path, source });
                }
            };
            let writer = writer_for(f, out, live, group, on_error.clone());
            files.push(File {
                key,
                config: f.clone(),
                writer,
            });
        }
        Ok(Files {
            files,
            reopen: Reopen::default(),
            seen: 0,
            seen_live: live.generation(),
            live: live.clone(),
            on_error,
        })
    }

    /// The config key and the path of each file.
    pub(crate) fn names(&self) -> impl Iterator<Item = (&str, &std::path::Path)> {
        self.files
            .iter()
            .map(|f| (f.key.as_str(), f.config.path.as_path()))
    }

    /// A handle that makes these files open again.
    pub(crate) fn reopen_handle(&self) -> Reopen {
        self.reopen.clone()
    }

    /// Formats `event` into the buffer of each file that takes it (a full buffer
    /// is written at once).
    pub(crate) fn write_event(&mut self, event: &Event) {
        self.reopen_if_asked();
        for file in &mut self.files {
            file.writer.write_event(event);
        }
    }

    /// Writes what is buffered.
    pub(crate) fn flush(&mut self) {
        self.reopen_if_asked();
        for file in &mut self.files {
            file.writer.flush_now();
        }
    }

    fn reopen_if_asked(&mut self) {
        let (wanted, reloads) = (self.reopen.generation(), self.live.generation());
        if wanted == self.seen && reloads == self.seen_live {
            return;
        }
        (self.seen, self.seen_live) = (wanted, reloads);
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
    live: &LiveOutput,
    group: Option<String>,
    on_error: ErrorHook,
) -> LogWriter<RotatingFile> {
    let path = f.path.clone();
    let mut writer = LogWriter::new(out, f.format)
        .with_timestamps(f.timestamps.then_some(live.settings().zone))
        .following(live.clone(), Follow::LevelAndZone)
        .on_write_error(move |e| on_error(&path, e));
    if let Some(group) = group {
        writer = writer.with_filter(move |event| event_group(event) == Some(group.as_str()));
    }
    writer
}
