//! The one output path of `launch`: every event goes to an [`Observed`] sink whose
//! observers are standard output (or the progress line over it), the log files
//! and the metrics; and distarch's own `tracing` records join the same stream.

use crate::progress::Progress;
use distarch_core::protocol::Level;
use distarch_core::trace::{tracing_layer, MasterLog};
use distarch_core::{Config, LiveOutput, LogFormat, LogWriter, Observed};
use distarch_logfile::{LogFiles, Reopen};
use distarch_metrics::RunMetrics;
use std::io::{IsTerminal, Write};

/// Installs the process's `tracing` subscriber: distarch's records become events
/// (see [`distarch_core::trace`]). Returns their receiver, or `None` if a
/// subscriber was already installed.
pub fn install_tracing() -> Option<MasterLog> {
    use tracing_subscriber::layer::SubscriberExt;
    let (layer, log) = tracing_layer();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(subscriber)
        .ok()
        .map(|()| log)
}

/// What `launch` writes to and keeps.
pub struct Outputs {
    /// The sink to run the launcher with.
    pub sink: Observed,
    /// Reopens the log files (SIGHUP, reload).
    pub reopen: Reopen,
    /// The metrics, when `launcher.metrics.listen` is set.
    pub metrics: Option<RunMetrics>,
}

/// Builds the outputs of a run. `stdout` is the writer of standard output, left
/// out in `launch --tui`; the log files follow `live` (level, time zone, and
/// opened again at each reload).
pub fn build(
    config: &Config,
    live: &LiveOutput,
    stdout: Option<LogWriter<Box<dyn Write + Send>>>,
) -> Result<Outputs, String> {
    let l = &config.launcher;
    let mut sink = Observed::new();
    if let Some(writer) = stdout {
        // The per-instance "started"/"ready" lines are debug: when they are hidden
        // on a terminal, a progress line says how far the start is.
        let progress = l.log_format == LogFormat::Text
            && l.log_level > Level::Debug
            && std::io::stdout().is_terminal();
        if progress {
            sink.push(Box::new(Progress::new(writer)));
        } else {
            sink.push(Box::new(writer));
        }
    }
    let files = LogFiles::open(config, live, |path, e| {
        eprintln!(
            "[master] ERROR distarch: cannot write the log file {}: {e}",
            path.display()
        );
    })
    .map_err(|e| format!("{e}: {}", e.source))?;
    let reopen = files.reopen_handle();
    if !files.is_empty() {
        sink.push(Box::new(files));
    }
    let metrics = l.metrics.listen.as_ref().map(|_| RunMetrics::new());
    if let Some(m) = &metrics {
        sink.push(Box::new(m.observer()));
    }
    Ok(Outputs {
        sink,
        reopen,
        metrics,
    })
}
