//! `[groups.NAME.jobs]`: what makes a group a job pool.

use crate::config::{CommandLine, HumanDuration};
use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How input records become job payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// One JSON value per line (the payload is that value).
    #[default]
    Json,
    /// One text line per job (the payload is the line as a JSON string).
    Text,
}

/// A job pool's settings (`jobs = { ... }` in a group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Where the jobs come from: a file, or `-` for the master's stdin. Exactly one
    /// of `input` and `input_command` is set.
    pub input: Option<PathBuf>,
    /// A program run by the master (locally, never through a shell unless written
    /// `sh -c`) whose stdout lines are the jobs.
    pub input_command: Option<CommandLine>,
    /// How each input line is read: `json` (default) or `text`.
    pub format: InputFormat,
    /// Where results go, as JSON lines `{"id":N,"result":...}`: a file, or `-`
    /// (default) for the master's stdout (its log then goes to stderr).
    pub output: Option<PathBuf>,
    /// Where jobs that failed for good go, as JSON lines
    /// `{"id":N,"payload":...,"error":"...","attempts":K}`; when unset they are
    /// logged at `error`.
    pub dead_letter: Option<PathBuf>,
    /// Attempts per job before it is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// Write results in input order (held back at most `window` jobs).
    pub keep_order: bool,
    /// Most jobs read from the input and not yet written out (queued, in flight,
    /// or held back for order): bounds the master's memory and makes a slow
    /// output slow the input down.
    pub window: usize,
    /// A journal of finished jobs: a restarted run with the same journal and
    /// input skips them (and appends to `output`).
    pub journal: Option<PathBuf>,
    /// How often progress is logged (0 = never).
    pub progress: HumanDuration,
}

/// Default `max_attempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default `window`.
pub const DEFAULT_WINDOW: usize = 10_000;
/// Longest input record, in bytes (a `job` frame must stay well under the
/// workers' line bound).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            input: None,
            input_command: None,
            format: InputFormat::Json,
            output: None,
            dead_letter: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            keep_order: false,
            window: DEFAULT_WINDOW,
            journal: None,
            progress: HumanDuration::from_secs(5),
        }
    }
}

impl JobsConfig {
    /// True when results go to the master's stdout.
    pub fn output_is_stdout(&self) -> bool {
        self.output.as_deref().is_none_or(|p| p.as_os_str() == "-")
    }

    /// True when jobs are read from the master's stdin.
    pub fn input_is_stdin(&self) -> bool {
        self.input_command.is_none() && self.input.as_deref().is_some_and(|p| p.as_os_str() == "-")
    }

    /// Every problem, each with its key under `path` (`groups.NAME.jobs`).
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        match (&self.input, &self.input_command) {
            (None, None) => errors.push(ConfigError::new(
                format!("{path}.input"),
                "a job pool needs `input` (a file, or \"-\" for stdin) or `input_command`",
            )),
            (Some(_), Some(_)) => errors.push(ConfigError::new(
                format!("{path}.input_command"),
                "`input` and `input_command` are exclusive",
            )),
            (None, Some(c)) => match c.argv() {
                Ok(argv) if argv.is_empty() => errors.push(ConfigError::new(
                    format!("{path}.input_command"),
                    "the command is empty",
                )),
                Ok(_) => {}
                Err(e) => errors.push(ConfigError::new(format!("{path}.input_command"), e)),
            },
            (Some(_), None) => {}
        }
        if self.max_attempts == 0 {
            errors.push(ConfigError::new(
                format!("{path}.max_attempts"),
                "max_attempts must be at least 1",
            ));
        }
        if self.window == 0 {
            errors.push(ConfigError::new(
                format!("{path}.window"),
                "window must be at least 1",
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_needs_exactly_one_input_and_sane_bounds() {
        let mut errors = Vec::new();
        JobsConfig::default().validate("groups.g.jobs", &mut errors);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("groups.g.jobs.input"));

        let mut errors = Vec::new();
        let both = JobsConfig {
            input: Some("in.txt".into()),
            input_command: Some(CommandLine::Line("seq 3".into())),
            max_attempts: 0,
            window: 0,
            ..JobsConfig::default()
        };
        both.validate("groups.g.jobs", &mut errors);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].contains("exclusive"));
        assert!(text[1].contains("max_attempts"));
        assert!(text[2].contains("window"));
    }

    #[test]
    fn stdin_and_stdout_are_spelled_dash() {
        let c = JobsConfig {
            input: Some("-".into()),
            ..JobsConfig::default()
        };
        assert!(c.input_is_stdin());
        assert!(c.output_is_stdout());
        let c = JobsConfig {
            output: Some("out.jsonl".into()),
            ..c
        };
        assert!(!c.output_is_stdout());
    }
}
