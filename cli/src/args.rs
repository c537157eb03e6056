//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Start and supervise many copies of worker programs: local processes, SSH hosts,
/// Docker containers, Kubernetes pods. Every copy knows who it is (DISTARCH_ID,
/// DISTARCH_GROUP_ID, DISTARCH_GROUP_COUNT, DISTARCH_PARAMS, ...), all logs arrive
/// in one place with a `[group] [host] [id/group_id]` label, hung or crashed copies
/// are handled per policy, and Ctrl-C stops everything cleanly.
#[derive(Debug, Parser)]
#[command(name = "distarch", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 all instances ended cleanly; 1 at least one failed; \
2 bad configuration or usage; 3 the launcher-wide no-output timeout fired; \
4 instances not ready within --ready-timeout; 5 some job of a job pool failed \
for good or was never finished; 74 the master's output was gone; \
130 interrupted (SIGINT); 143 terminated (SIGTERM); 70 internal error."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every instance of the configured groups and supervise them until all
    /// have ended (or Ctrl-C: a first one stops cleanly, a second one kills).
    Launch(LaunchArgs),
    /// Feed jobs (lines of a file, of stdin or of a command) to a pool of workers
    /// and write their results as JSON lines: `distarch run -j 8 --input jobs.jsonl
    /// -- ./worker`. Workers take jobs through the protocol (docs/protocol.md,
    /// "Jobs"); exit code 5 when some job failed for good.
    Run(Box<crate::run_cmd::RunCmdArgs>),
    /// Check the configuration and print the placement plan (which instance ids go
    /// where) without starting anything.
    Validate(ValidateArgs),
    /// Remove containers and pods left behind by runs whose master is gone.
    Gc(GcArgs),
    /// Print a shell completion script for bash, zsh or fish.
    ///
    /// bash: `distarch completions bash > /etc/bash_completion.d/distarch`; zsh: save
    /// it as `_distarch` in a directory of $fpath; fish: save it as
    /// ~/.config/fish/completions/distarch.fish.
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `distarch man > distarch.1; man ./distarch.1`.
    Man,
    /// Drive a transport plugin through the plugin protocol's scenarios
    /// (docs/plugins.md) and print `N passed, M failed`; exit 1 when one failed.
    PluginCheck(PluginCheckArgs),
    /// Control verbs (ps, stop, suspend, resume, scale, restart, logs, reload).
    #[command(flatten)]
    Control(crate::verbs::ControlCommand),
}

/// `distarch plugin-check -- CMD [ARGS]`.
#[derive(Debug, Args, Clone)]
pub struct PluginCheckArgs {
    /// The plugin command, e.g. `-- distarch-transport-pgroup`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Where the configuration comes from and how to override it.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Config file (TOML, YAML or JSON by extension). Default: ./distarch.toml if it
    /// exists. Environment variables DISTARCH_<KEY>__<SUBKEY> override the file, and
    /// flags override both.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override one config key, e.g. `--set groups.first.instances=5` or
    /// `--set 'groups.first.params={ message = "hi" }'`. The value is read as TOML
    /// when it parses as TOML, else as a string. Repeatable; applied last.
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,

    /// Ignore DISTARCH_* environment variables.
    #[arg(long)]
    pub no_env: bool,
}

/// What to run and the launcher-wide settings (`launch` and `validate`).
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Run only this group (repeat for several). Ids are given out among the groups
    /// that run.
    #[arg(short = 'g', long = "group", value_name = "NAME")]
    pub groups: Vec<String>,

    /// Launcher-wide no-output timeout: when no worker has printed or pinged for this
    /// long, everything is stopped (e.g. "5m"; 0 disables). Same as
    /// --set launcher.timeout=...
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Stop everything cleanly after this long (e.g. "1h"; 0 = unlimited).
    #[arg(long, value_name = "DURATION")]
    pub max_running_time: Option<String>,

    /// How long a worker has to exit after the stop frame before it is terminated.
    #[arg(long, value_name = "DURATION")]
    pub stop_grace: Option<String>,

    /// How long a worker has to exit after being terminated before it is killed.
    #[arg(long, value_name = "DURATION")]
    pub kill_after: Option<String>,

    /// Every instance must be ready (its `ready` frame, or its group's `ready` rule)
    /// within this long, or everything is stopped with exit code 4, naming the
    /// instances that never became ready (e.g. "60s"; 0 = do not wait).
    #[arg(long, value_name = "DURATION")]
    pub ready_timeout: Option<String>,

    /// Output format of the master's log: `text` lines prefixed
    /// `[group] [host] [id/group_id] LEVEL`, or one `json` object per line.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    /// Least severe level shown: trace, debug (default), info, warn or error. `info`
    /// hides the master's "started"/"ready" lines and workers' debug logs.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Start each text line of standard output with its time (RFC 3339 with
    /// milliseconds; `launcher.time_zone` = utc or local). Log files have them by
    /// default. Same as --set launcher.timestamps=true
    #[arg(long)]
    pub timestamps: bool,

    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9464 (GET
    /// /metrics). Same as --set launcher.metrics.listen=ADDR
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Most instances this run may plan; a plan above it is an error before anything
    /// is listed or started (a guard against a typo such as `instances = 1000000000`).
    #[arg(long, value_name = "N", env = "DISTARCH_MAX_INSTANCES",
          default_value_t = distarch_core::DEFAULT_MAX_INSTANCES,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_instances: u64,

    /// More overrides made from other flags (`distarch run`): (flag, key, value).
    #[arg(skip)]
    pub extra: Vec<(String, String, String)>,
}

/// Arguments of `launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Configuration and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,

    /// What to run and how.
    #[command(flatten)]
    pub run: RunArgs,

    /// Print the placement plan and exit without starting anything (like `validate`).
    #[arg(long)]
    pub dry_run: bool,

    /// Use this run id instead of a random one (labels containers, pods, temp files):
    /// 1 to 32 characters out of a-z, 0-9 and `-`, starting and ending with a letter
    /// or digit.
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    pub run_id: Option<String>,

    /// Service mode: run until stopped (a stop request, SIGINT/SIGTERM), whatever
    /// the instances do; `restart` defaults to `always`. Same as
    /// --set launcher.service=true
    #[arg(long)]
    pub service: bool,

    /// Show the live view of `distarch top` instead of the scrolling log (the log
    /// still goes to the configured log files); quitting it stops the run.
    #[arg(long)]
    pub tui: bool,
}

/// Arguments of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Configuration and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,

    /// What would run and how.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Arguments of `gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Configuration whose docker/kubernetes placements say which engines and
    /// clusters to clean (default: ./distarch.toml if it exists, and DOCKER_HOST /
    /// the current kube context).
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,

    /// Output format: `text` lines or one `json` object per line.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
}

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// Shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellArg {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Prefixed text lines.
    Text,
    /// JSON lines.
    Json,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "`{s}` is not KEY=VALUE (e.g. groups.first.instances=5)"
        )),
    }
}

/// Longest `--run-id`.
pub const MAX_RUN_ID: usize = 32;

/// Checks a `--run-id`: it names containers, pods, labels and temp files, so it is
/// kept to what every one of them accepts.
pub(crate) fn parse_run_id(s: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let alnum = |c: Option<char>| c.is_some_and(|c| c != '-');
    if s.is_empty() || s.len() > MAX_RUN_ID {
        return Err(format!("must be 1 to {MAX_RUN_ID} characters long"));
    }
    if !s.chars().all(ok_char) || !alnum(s.chars().next()) || !alnum(s.chars().last()) {
        return Err(format!(
            "`{}` may hold only a-z, 0-9 and `-`, and must start and end with a letter or digit",
            s.escape_debug()
        ));
    }
    Ok(s.to_string())
}

impl RunArgs {
    /// The dedicated flags as `(flag, key, value)` overrides, in the order they apply.
    pub fn flag_overrides(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut quoted = |flag: &str, key: &str, v: Option<&str>| {
            if let Some(v) = v {
                out.push((flag.to_string(), key.to_string(), format!("{v:?}")));
            }
        };
        quoted("--timeout", "launcher.timeout", self.timeout.as_deref());
        quoted(
            "--max-running-time",
            "launcher.max_running_time",
            self.max_running_time.as_deref(),
        );
        quoted(
            "--stop-grace",
            "launcher.stop_grace",
            self.stop_grace.as_deref(),
        );
        quoted(
            "--kill-after",
            "launcher.kill_after",
            self.kill_after.as_deref(),
        );
        quoted(
            "--log-level",
            "launcher.log_level",
            self.log_level.as_deref(),
        );
        let format = self.log_format.map(|f| match f {
            LogFormatArg::Text => "text",
            LogFormatArg::Json => "json",
        });
        quoted("--log-format", "launcher.log_format", format);
        quoted(
            "--ready-timeout",
            "launcher.ready_timeout",
            self.ready_timeout.as_deref(),
        );
        quoted(
            "--metrics",
            "launcher.metrics.listen",
            self.metrics.as_deref(),
        );
        if self.timestamps {
            out.push((
                "--timestamps".into(),
                "launcher.timestamps".into(),
                "true".into(),
            ));
        }
        out.extend(self.extra.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_checked() {
        assert_eq!(parse_run_id("nightly-42").as_deref(), Ok("nightly-42"));
        for bad in [
            "",
            "a b",
            "a\nb",
            "../../x",
            "-a",
            "a-",
            "Upper",
            &"x".repeat(33),
        ] {
            assert!(parse_run_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
