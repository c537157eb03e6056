//! `distarch run`: a job pool from flags. `distarch run -j 8 --input jobs.jsonl --
//! ./worker` runs 8 local instances of `./worker` as the pool `run`; with
//! `--pool NAME` (and `-c FILE`) the flags make a configured group a pool instead.
//! Every flag is an override of a `groups.NAME.jobs` key, so errors name it.

use crate::args::{ConfigArgs, LaunchArgs, RunArgs};
use clap::Args;
use std::path::PathBuf;

/// The group `distarch run COMMAND` makes.
pub const RUN_GROUP: &str = "run";

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunCmdArgs {
    /// Configuration and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Launcher-wide settings.
    #[command(flatten)]
    pub run: RunArgs,

    /// Jobs from this file, one per line; `-` reads the master's stdin.
    #[arg(long, value_name = "FILE", conflicts_with = "input_command")]
    pub input: Option<PathBuf>,

    /// Jobs from the lines this command prints (split like a shell would, never run
    /// through one unless you write `sh -c`).
    #[arg(long, value_name = "COMMAND")]
    pub input_command: Option<String>,

    /// Each input line is one text job (a JSON string), not a JSON value.
    #[arg(long)]
    pub text: bool,

    /// Results as JSON lines in this file (default: stdout; the log then goes to
    /// stderr).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Jobs that failed for good, as JSON lines in this file (default: logged).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,

    /// Attempts per job before it fails for good (default 3).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,

    /// Write results in input order.
    #[arg(long)]
    pub keep_order: bool,

    /// Most jobs read and not yet written out (queued, in flight, held back for
    /// order); default 10000.
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,

    /// Journal of finished jobs: run again with the same journal and input to skip
    /// them.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// How often progress is logged (e.g. "2s"; 0 = never; default 5s).
    #[arg(long, value_name = "DURATION")]
    pub progress: Option<String>,

    /// Make this configured group the pool instead of running COMMAND.
    #[arg(long, value_name = "GROUP", conflicts_with = "command")]
    pub pool: Option<String>,

    /// Instances of COMMAND (local processes).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 4)]
    pub instances: u32,

    /// Use this run id instead of a random one.
    #[arg(long, value_name = "ID", value_parser = crate::args::parse_run_id)]
    pub run_id: Option<String>,

    /// The worker program and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn quoted(text: &str) -> String {
    // A JSON string is a TOML basic string.
    serde_json::Value::String(text.to_string()).to_string()
}

impl RunCmdArgs {
    /// The `launch` this stands for, or a usage error.
    pub fn into_launch(mut self) -> Result<LaunchArgs, String> {
        let group = match (&self.pool, self.command.is_empty()) {
            (Some(g), _) => g.clone(),
            (None, false) => RUN_GROUP.to_string(),
            (None, true) => {
                return Err(
                    "give the worker command after `--`, or a configured group with --pool".into(),
                )
            }
        };
        if self.input.is_none() && self.input_command.is_none() {
            return Err(
                "give the jobs with --input FILE (`-` for stdin) or --input-command".into(),
            );
        }
        let key = |k: &str| format!("groups.{group}.{k}");
        let mut extra: Vec<(String, String, String)> = Vec::new();
        let mut add = |flag: &str, k: &str, v: String| extra.push((flag.into(), key(k), v));
        if self.pool.is_none() {
            let argv: Vec<String> = self.command.iter().map(|a| quoted(a)).collect();
            add("COMMAND", "command", format!("[{}]", argv.join(",")));
            add("-j", "instances", self.instances.to_string());
        }
        let path = |p: &PathBuf| quoted(&p.to_string_lossy());
        if let Some(p) = &self.input {
            add("--input", "jobs.input", path(p));
        }
        if let Some(c) = &self.input_command {
            add("--input-command", "jobs.input_command", quoted(c));
        }
        if self.text {
            add("--text", "jobs.format", quoted("text"));
        }
        match &self.output {
            Some(p) => add("--output", "jobs.output", path(p)),
            // A table must exist for the group to be a pool even with no other key.
            None => add("--output", "jobs.output", quoted("-")),
        }
        if let Some(p) = &self.dead_letter {
            add("--dead-letter", "jobs.dead_letter", path(p));
        }
        if let Some(n) = self.max_attempts {
            add("--max-attempts", "jobs.max_attempts", n.to_string());
        }
        if self.keep_order {
            add("--keep-order", "jobs.keep_order", "true".into());
        }
        if let Some(n) = self.window {
            add("--window", "jobs.window", n.to_string());
        }
        if let Some(p) = &self.journal {
            add("--journal", "jobs.journal", path(p));
        }
        if let Some(d) = &self.progress {
            add("--progress", "jobs.progress", quoted(d));
        }
        self.run.extra.extend(extra);
        Ok(LaunchArgs {
            config: self.config,
            run: self.run,
            dry_run: false,
            run_id: self.run_id,
            service: false,
            tui: false,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: RunCmdArgs,
    }

    #[test]
    fn flags_become_keys_of_the_pool_group() {
        let t = T::parse_from([
            "x",
            "-j",
            "3",
            "--input",
            "in.txt",
            "--keep-order",
            "--max-attempts",
            "2",
            "--",
            "./w",
            "a b",
        ]);
        let l = t.a.into_launch().unwrap();
        let keys: Vec<(String, String)> = l
            .run
            .extra
            .iter()
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(keys.contains(&("groups.run.command".into(), r#"["./w","a b"]"#.into())));
        assert!(keys.contains(&("groups.run.instances".into(), "3".into())));
        assert!(keys.contains(&("groups.run.jobs.input".into(), r#""in.txt""#.into())));
        assert!(keys.contains(&("groups.run.jobs.keep_order".into(), "true".into())));
        assert!(keys.contains(&("groups.run.jobs.max_attempts".into(), "2".into())));
    }

    #[test]
    fn a_pool_needs_a_command_or_group_and_an_input() {
        let t = T::parse_from(["x", "--", "./w"]);
        assert!(t.a.into_launch().unwrap_err().contains("--input"));
        let t = T::parse_from(["x", "--input", "-"]);
        assert!(t.a.into_launch().unwrap_err().contains("--pool"));
        let t = T::parse_from(["x", "--input", "-", "--pool", "g"]);
        let l = t.a.into_launch().unwrap();
        assert!(l
            .run
            .extra
            .iter()
            .all(|(_, k, _)| k.starts_with("groups.g.jobs.")));
    }
}
