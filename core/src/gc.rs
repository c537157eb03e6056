//! What `distarch gc` asks of each transport: remove what runs whose master is gone
//! left behind (containers, pods, cgroups), and say what was done.

use crate::config::Config;
use distarch_protocol::Level;

/// What to clean.
#[derive(Debug, Clone, Copy)]
pub struct GcRequest<'a> {
    /// The configuration, if one was given or found: its placements name the
    /// engines, clusters or hosts to look at. Without it (or without a placement of
    /// the transport) a transport looks at its defaults (`DOCKER_HOST`, the current
    /// kube context), if they exist.
    pub config: Option<&'a Config>,
    /// Only report what would be removed.
    pub dry_run: bool,
}

/// What one transport's gc did: lines for the user, and whether something failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// One line per engine, cluster or run looked at, with its level; the text
    /// without the transport's name (the caller adds it).
    pub lines: Vec<(Level, String)>,
    /// A place that should have been cleaned could not be.
    pub failed: bool,
}

impl GcReport {
    /// Adds an `info` line.
    pub fn info(&mut self, text: impl Into<String>) {
        self.lines.push((Level::Info, text.into()));
    }

    /// Adds a `warn` line (something skipped that does not fail the gc).
    pub fn warn(&mut self, text: impl Into<String>) {
        self.lines.push((Level::Warn, text.into()));
    }

    /// Adds an `error` line and marks the gc failed.
    pub fn error(&mut self, text: impl Into<String>) {
        self.lines.push((Level::Error, text.into()));
        self.failed = true;
    }
}
