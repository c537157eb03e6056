//! `distarch gc`: remove what runs whose master is gone left behind, transport by
//! transport (each one's [`distarch_core::Transport::gc`]).

use crate::args::GcArgs;
use distarch_core::protocol::Level;
use distarch_core::{Config, Event, EventSink, GcRequest, LogFormat, LogRecord, LogWriter};

/// Asks every transport of this binary to clean, prints what each did through the
/// master's log writer (text, or JSON with `launcher.log_format = "json"`), and
/// returns the exit code: 1 when a place that should have been cleaned could not be.
pub async fn gc(args: &GcArgs, config: Option<&Config>) -> anyhow::Result<i32> {
    let format = config.map_or(LogFormat::Text, |c| c.launcher.log_format);
    let mut out = LogWriter::new(std::io::stdout(), format);
    let request = GcRequest {
        config,
        dry_run: args.dry_run,
    };
    let registry = crate::transports::registry();
    let mut code = 0;
    let mut printed = 0;
    for transport in registry.all() {
        let report = transport.gc(&request).await;
        if report.failed {
            code = 1;
        }
        for (level, text) in report.lines {
            out.event(Event::Log(LogRecord::master(
                level,
                format!("gc: {}: {text}", transport.name()),
            )));
            printed += 1;
        }
    }
    if printed == 0 {
        let names = registry.names().join(", ");
        out.event(Event::Log(LogRecord::master(
            Level::Info,
            format!(
                "gc: nothing to check for the transports of this build ({names}): no docker \
                 or kubernetes placement in the configuration, no Docker engine (DOCKER_HOST, \
                 /var/run/docker.sock), no Kubernetes context and no run cgroup of a gone \
                 master here"
            ),
        )));
    }
    out.flush();
    Ok(code)
}
