//! The verbs that talk to a running launch through its control API: `ps`, `stop`,
//! `suspend`, `resume`, `scale`, `restart`, `logs`, `reload`; and what `launch`
//! adds for them (the API server, SIGHUP = reload, systemd notifications).

/// `println!` that ignores a closed standard output (`distarch ps | head`).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::verbs::out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that ignores a closed standard output.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::verbs::out(&format!($($arg)*))
    };
}

mod commands;
pub mod launch;
mod logs;
mod ps;
mod reload;
mod table;
mod top;

use crate::args::ConfigArgs;
use clap::{Args, Subcommand, ValueEnum};
use distarch_control::{find_run, ClientError, FindError, FoundRun};

/// The master refused the command (unknown group or id, bad count, stopping).
pub const EXIT_REFUSED: i32 = 1;
/// No running run matches, or several do. (Not 4 or 5: `launch` gives those other
/// meanings, and one number means one thing across distarch's commands.)
pub const EXIT_NO_RUN: i32 = 6;
/// The run's master cannot be reached (permission denied, connection broken).
pub const EXIT_UNREACHABLE: i32 = 7;

/// The control verbs.
#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// List the runs on this machine, or the instances of one run.
    Ps(PsArgs),
    /// Stop a whole run cleanly (like Ctrl-C), or some of its groups or instances.
    Stop(TargetArgs),
    /// Stop every instance of these groups cleanly and keep them stopped (no
    /// restarts, no hang timeouts) until `resume`.
    Suspend(GroupArgs),
    /// Start the suspended instances of these groups again, with the same ids.
    Resume(GroupArgs),
    /// Set the number of instances of a group: GROUP=N, or GROUP.PLACEMENT=N for a
    /// group with several placements. New instances get new ids; fewer stops the
    /// highest group ids.
    Scale(ScaleArgs),
    /// Restart a run's instances (all, or some groups or ids).
    Restart(RestartArgs),
    /// Show a run's recent output, and follow it with -f.
    Logs(LogsArgs),
    /// Follow a run's events (starts, readiness, statuses, exits, restarts, log
    /// lines) as JSON lines, the records of `--log-format json`, until the run ends
    /// or Ctrl-C.
    Events(EventsArgs),
    /// Apply a changed configuration to a running launch: new groups start, removed
    /// groups stop, changed groups restart one instance at a time. Without config
    /// flags the master reads its own configuration again (like SIGHUP).
    ///
    /// Of [launcher]: stop_grace, kill_after, max_line_bytes and service are applied
    /// (groups that use the first three restart one instance at a time); log_level,
    /// log_format, timestamps and time_zone apply from the next line written; the
    /// log files are opened again. Other changed launcher keys take effect when the
    /// run is started again; the answer's notes name them.
    Reload(ReloadArgs),
    /// A live view of a running launch: groups with counts by state, the instances
    /// (sortable, filterable), the output of the selected one, and keys to stop,
    /// restart, suspend, resume and scale its group.
    Top(TopArgs),
}

/// Arguments of `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The run (id, unique id prefix, name or config file); may be left out when
    /// only one run is live.
    pub run: Option<String>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// Arguments shared by verbs that print data.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Arguments of `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// A run: its id, a unique prefix of it, its name, or its config file. Without
    /// it, every run on this machine is listed.
    pub run: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `stop` and friends.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The run (id, unique id prefix, name or config file).
    pub run: String,
    /// Groups or instance ids; none means the whole run.
    pub targets: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `suspend` and `resume`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// The run (id, unique id prefix, name or config file).
    pub run: String,
    /// Groups.
    #[arg(required = true)]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The run (id, unique id prefix, name or config file).
    pub run: String,
    /// GROUP=N or GROUP.PLACEMENT=N (repeatable).
    #[arg(required = true, value_name = "GROUP[.PLACEMENT]=N")]
    pub counts: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The run (id, unique id prefix, name or config file).
    pub run: String,
    /// Groups or instance ids; none means every instance.
    pub targets: Vec<String>,
    /// One instance at a time: the next once the previous sent `ready` (or ran for
    /// `launcher.control.rolling_delay`).
    #[arg(long)]
    pub rolling: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run (id, unique id prefix, name or config file).
    pub run: String,
    /// Keep printing new lines until the run ends or Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only this group (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Only this instance id (repeatable).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<u64>,
    /// Only lines from the last DURATION (e.g. "10m").
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only the last N buffered lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The run (id, unique id prefix, name or config file).
    pub run: String,
}

/// Arguments of `reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The run (id, unique id prefix, name or config file).
    pub run: String,
    /// The new configuration; without any of these flags, the master reads its own
    /// configuration sources again.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Groups to keep and launcher-wide flags, as for `launch`.
    #[command(flatten)]
    pub settings: crate::args::RunArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs a control verb; returns the exit code.
pub async fn run(command: ControlCommand) -> i32 {
    let result = match command {
        ControlCommand::Ps(a) => ps::ps(a).await,
        ControlCommand::Stop(a) => commands::stop(a).await,
        ControlCommand::Suspend(a) => commands::suspend(a).await,
        ControlCommand::Resume(a) => commands::resume(a).await,
        ControlCommand::Scale(a) => commands::scale(a).await,
        ControlCommand::Restart(a) => commands::restart(a).await,
        ControlCommand::Logs(a) => logs::logs(a).await,
        ControlCommand::Events(a) => logs::events(a).await,
        ControlCommand::Reload(a) => reload::reload(a).await,
        ControlCommand::Top(a) => top::top(a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("distarch: {}", e.message);
            e.code
        }
    }
}

/// A failed verb: what to print and the exit code.
#[derive(Debug)]
pub struct VerbError {
    message: String,
    code: i32,
}

impl VerbError {
    /// A failure with this code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        VerbError {
            message: message.into(),
            code,
        }
    }
}

impl From<FindError> for VerbError {
    fn from(e: FindError) -> Self {
        let code = match &e {
            FindError::NoMatch(_) | FindError::Ambiguous { .. } => EXIT_NO_RUN,
            FindError::RunDir(_) | FindError::Client(_) => EXIT_UNREACHABLE,
        };
        VerbError::new(code, e.to_string())
    }
}

impl From<ClientError> for VerbError {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Refused { status: 422, .. } => distarch_core::EXIT_CONFIG,
            ClientError::Refused { status, .. } if *status == 401 || *status == 403 => {
                EXIT_UNREACHABLE
            }
            ClientError::Refused { .. } => EXIT_REFUSED,
            _ => EXIT_UNREACHABLE,
        };
        VerbError::new(code, e.to_string())
    }
}

/// The run `query` names.
pub async fn locate(query: &str) -> Result<FoundRun, VerbError> {
    Ok(find_run(query).await?)
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => out(&format!("{s}\n")),
        Err(e) => eprintln!("distarch: cannot print JSON: {e}"),
    }
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
