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
    /// Check the configuration and print the placement plan (which instance ids go
    /// where) without starting anything.
    Validate(ConfigArgs),
    /// Remove containers and pods left behind by runs whose master is gone.
    Gc(GcArgs),
    /// Control verbs (ps, stop, suspend, resume, scale, restart, logs, reload).
    #[command(flatten)]
    Control(crate::verbs::ControlCommand),
}

/// Where the configuration comes from and how to override it.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Config file (TOML, YAML or JSON by extension). Default: ./distarch.toml if it
    /// exists. Environment variables DISTARCH_<KEY>__<SUBKEY> override the file, and
    /// flags override both.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Run only this group (repeat for several). Ids are given out among the groups
    /// that run.
    #[arg(short = 'g', long = "group", value_name = "NAME")]
    pub groups: Vec<String>,

    /// Override one config key, e.g. `--set groups.first.instances=5` or
    /// `--set 'groups.first.params={ message = "hi" }'`. The value is read as TOML
    /// when it parses as TOML, else as a string. Repeatable; applied last.
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,

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

    /// Output format of the master's log: `text` lines prefixed
    /// `[group] [host] [id/group_id] LEVEL`, or one `json` object per line.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    /// Least severe level shown: trace, debug (default), info, warn or error. `info`
    /// hides the master's "started"/"ready" lines and workers' debug logs.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Ignore DISTARCH_* environment variables.
    #[arg(long)]
    pub no_env: bool,
}

/// Arguments of `launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Configuration and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Print the placement plan and exit without starting anything (like `validate`).
    #[arg(long)]
    pub dry_run: bool,

    /// Use this run id instead of a random one (labels containers, pods, temp files).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,

    /// Service mode: run until stopped (a stop request, SIGINT/SIGTERM), whatever
    /// the instances do; `restart` defaults to `always`. Same as
    /// --set launcher.service=true
    #[arg(long)]
    pub service: bool,
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

impl ConfigArgs {
    /// The overrides in the order they apply: --set flags, then the dedicated flags.
    pub fn overrides(&self) -> Vec<(String, String)> {
        let mut out = self.set.clone();
        let mut quoted = |key: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((key.to_string(), format!("{v:?}")));
            }
        };
        quoted("launcher.timeout", &self.timeout);
        quoted("launcher.max_running_time", &self.max_running_time);
        quoted("launcher.stop_grace", &self.stop_grace);
        quoted("launcher.kill_after", &self.kill_after);
        quoted("launcher.log_level", &self.log_level);
        if let Some(f) = self.log_format {
            let v = match f {
                LogFormatArg::Text => "text",
                LogFormatArg::Json => "json",
            };
            out.push(("launcher.log_format".into(), format!("{v:?}")));
        }
        out
    }
}
