//! `distarch gc`: remove what runs whose master is gone left behind. Everything it
//! says (and what the transports log meanwhile) goes through the master's log
//! writer, so `--log-format json` prints JSON lines.

use crate::args::{GcArgs, LogFormatArg};
use distarch_core::protocol::Level;
use distarch_core::trace::MasterLog;
use distarch_core::{Config, Event, LogFormat, LogRecord, LogWriter};
use std::io::Write;
use std::time::SystemTime;

/// The writer of `gc`'s lines, with the `tracing` records of the transports.
struct GcOut {
    writer: LogWriter<Box<dyn Write + Send>>,
    master_log: Option<MasterLog>,
}

impl GcOut {
    /// Writes the waiting `tracing` records, then `text` at `level`.
    fn say(&mut self, level: Level, text: &str) {
        self.drain();
        self.writer.write_event(&Event::Log(LogRecord {
            time: SystemTime::now(),
            instance: None,
            level,
            message: text.to_string(),
            fields: None,
            stream: None,
            truncated: false,
        }));
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

    /// A line the transports wrote in the master's text form
    /// (`[master] LEVEL distarch: text`), written again through the writer.
    fn relay(&mut self, line: &str) {
        let (level, text) = parse_master_line(line);
        self.say(level, text);
    }
}

/// Splits `[master] LEVEL distarch: text` into its level and text (a line of
/// another form is `info` text as it is).
fn parse_master_line(line: &str) -> (Level, &str) {
    let rest = line.strip_prefix("[master] ").unwrap_or(line);
    let (word, after) = rest.split_once(' ').unwrap_or(("", rest));
    let level = match word {
        "TRACE" => Level::Trace,
        "DEBUG" => Level::Debug,
        "INFO" => Level::Info,
        "WARN" => Level::Warn,
        "ERROR" => Level::Error,
        _ => return (Level::Info, line),
    };
    (level, after.strip_prefix("distarch: ").unwrap_or(after))
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
    let code = match gc(args, config, &mut out).await {
        Ok(code) => code,
        Err(e) => {
            out.say(Level::Error, &format!("gc failed: {e:#}"));
            1
        }
    };
    out.drain();
    code
}

/// Cleans every engine and cluster the configuration names; returns the exit code.
async fn gc(args: &GcArgs, config: Option<&Config>, out: &mut GcOut) -> anyhow::Result<i32> {
    // Without the docker and kubernetes features there is nothing to clean.
    let _ = (args, config);
    #[allow(unused_mut)]
    let mut code = 0;
    #[allow(unused_mut)]
    let mut printed = gc_local(args.dry_run, out);
    // Transports that leave objects behind (containers, pods) add their calls here.
    #[cfg(feature = "docker")]
    for report in distarch_transport_docker::gc_config(config, args.dry_run).await {
        out.relay(&report.to_string());
        printed += 1;
        if report.error.is_some() {
            code = 1;
        }
    }
    #[cfg(feature = "kubernetes")]
    {
        let (lines, ok) = distarch_transport_kubernetes::gc_config(config, args.dry_run).await;
        for line in lines {
            out.relay(&line);
            printed += 1;
        }
        if !ok {
            code = 1;
        }
    }
    if !cfg!(any(feature = "docker", feature = "kubernetes")) {
        out.say(
            Level::Info,
            "gc: nothing to clean for the transports in this build",
        );
    } else if printed == 0 {
        out.say(
            Level::Info,
            "gc: nothing to check: no docker or kubernetes placement \
             in the configuration, no Docker engine (DOCKER_HOST, /var/run/docker.sock) and \
             no Kubernetes context here",
        );
    }
    Ok(code)
}

/// Local instances: kills and removes the cgroups of runs whose master is gone;
/// returns the number of lines printed.
fn gc_local(dry_run: bool, out: &mut GcOut) -> usize {
    let lines = distarch_transport_local::gc_cgroups(dry_run);
    for line in &lines {
        out.say(Level::Info, &format!("gc: local: {line}"));
    }
    lines.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_lines_are_split() {
        assert_eq!(
            parse_master_line("[master] ERROR distarch: gc: docker engine x: refused"),
            (Level::Error, "gc: docker engine x: refused")
        );
        assert_eq!(parse_master_line("odd line"), (Level::Info, "odd line"));
    }
}
