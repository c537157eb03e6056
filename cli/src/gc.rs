//! `distarch gc`: remove what runs whose master is gone left behind, transport by
//! transport (each one's [`distarch_core::Transport::gc`]). Everything it says (and
//! what the transports log meanwhile) goes through the master's log writer, so
//! `--log-format json` prints JSON lines.

use crate::args::{GcArgs, LogFormatArg};
use distarch_core::protocol::Level;
use distarch_core::trace::MasterLog;
use distarch_core::{Config, Event, GcRequest, LogFormat, LogRecord, LogWriter};
use std::io::Write;

/// The writer of `gc`'s lines, with the `tracing` records of the transports.
struct GcOut {
    writer: LogWriter<Box<dyn Write + Send>>,
    master_log: Option<MasterLog>,
}

impl GcOut {
    /// Writes the waiting `tracing` records, then `text` at `level`.
    fn say(&mut self, level: Level, text: &str) {
        self.drain();
        self.writer
            .write_event(&Event::Log(LogRecord::master(level, text)));
        self.writer.flush_now();
    }

    fn drain(&mut self) {
        if let Some(log) = &mut self.master_log {
            while let Some(event) = log.try_next() {
                self.writer.write_event(&event);
            }
        }
        self.writer.flush_now();
    }
}

/// Runs `gc`; returns the exit code.
pub async fn run(args: &GcArgs, config: Option<&Config>, master_log: Option<MasterLog>) -> i32 {
    let format = match args.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.map(|c| c.launcher.log_format).unwrap_or_default(),
    };
    let mut out = GcOut {
        writer: LogWriter::new(crate::stdout_file(), format),
        master_log,
    };
    let code = gc(args, config, &mut out).await;
    out.drain();
    code
}

/// Asks every transport of this binary to clean and says what each did; returns
/// the exit code: 1 when a place that should have been cleaned could not be.
async fn gc(args: &GcArgs, config: Option<&Config>, out: &mut GcOut) -> i32 {
    let request = GcRequest {
        config,
        dry_run: args.dry_run,
    };
    let mut registry = crate::transports::registry();
    if let Some(config) = config {
        // Plugins the configuration names clean what their runs left, too.
        registry.resolve_config(config);
    }
    let mut code = 0;
    let mut printed = 0;
    for transport in registry.all() {
        let report = transport.gc(&request).await;
        if report.failed {
            code = 1;
        }
        for (level, text) in report.lines {
            out.say(level, &format!("gc: {}: {text}", transport.name()));
            printed += 1;
        }
    }
    if printed == 0 {
        let names = registry.names().join(", ");
        out.say(
            Level::Info,
            &format!(
                "gc: nothing to check for the transports of this build ({names}): no docker \
                 or kubernetes placement in the configuration, no Docker engine (DOCKER_HOST, \
                 /var/run/docker.sock), no Kubernetes context and no run cgroup of a gone \
                 master here"
            ),
        );
    }
    code
}
