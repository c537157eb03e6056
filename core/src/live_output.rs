//! The output settings of `[launcher]` that a reload applies while the run goes on
//! (`log_format`, `log_level`, `timestamps`, `time_zone`): the launcher holds them,
//! a reload changes them, and every [`crate::LogWriter`] bound to them with
//! [`crate::LogWriter::following`] picks the change up at its next event.

use crate::config::{LauncherConfig, LogFormat, TimeZone};
use distarch_protocol::Level;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The output settings a reload applies at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSettings {
    /// `launcher.log_format`.
    pub format: LogFormat,
    /// `launcher.log_level`.
    pub level: Level,
    /// `launcher.timestamps` (standard output).
    pub timestamps: bool,
    /// `launcher.time_zone` (standard output and files).
    pub zone: TimeZone,
}

impl OutputSettings {
    /// The output settings of a launcher configuration.
    pub fn of(l: &LauncherConfig) -> Self {
        OutputSettings {
            format: l.log_format,
            level: l.log_level,
            timestamps: l.timestamps,
            zone: l.time_zone,
        }
    }
}

/// Which of the live settings a writer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// All of them (standard output).
    All,
    /// The level and the time zone; the format and timestamps stay the writer's
    /// own (a log file, which has its own `format` and `timestamps`).
    LevelAndZone,
}

/// The run's live output settings, shared by the launcher and its writers.
#[derive(Debug, Clone)]
pub struct LiveOutput(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    settings: Mutex<OutputSettings>,
    /// Bumped by every applied reload, whether the settings changed or not (a log
    /// file is opened again when it changes).
    generation: AtomicU64,
}

impl LiveOutput {
    /// Settings that start as `settings`.
    pub fn new(settings: OutputSettings) -> Self {
        LiveOutput(Arc::new(Inner {
            settings: Mutex::new(settings),
            generation: AtomicU64::new(0),
        }))
    }

    /// The settings now.
    pub fn settings(&self) -> OutputSettings {
        *self.0.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many reloads were applied so far (cheap: one atomic load).
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// Applies a reload's settings.
    pub fn set(&self, settings: OutputSettings) {
        *self.0.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
        self.0.generation.fetch_add(1, Ordering::Release);
    }
}
