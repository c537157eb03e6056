//! The `distarch` command: `launch`, `validate`, `gc`, and the control verbs.
#![forbid(unsafe_code)]

mod args;
mod command_check;
mod docs;
mod gc;
mod output;
mod plan_table;
mod progress;
mod run_cmd;
mod transports;
mod verbs;
mod watchdog;

use args::{Cli, Command, ConfigArgs, RunArgs};
use clap::Parser;
use distarch_core::{config, ConfigErrors, Launcher, LogWriter, EXIT_CONFIG};
use std::io::Write;
use std::os::fd::AsFd;

/// Exit code for an internal error (EX_SOFTWARE).
const EXIT_INTERNAL: i32 = 70;

fn main() {
    let cli = Cli::parse();
    match &cli.command {
        Command::Completions(args) => {
            docs::completions(args.shell, &mut std::io::stdout().lock());
            return;
        }
        Command::Man => {
            if let Err(e) = docs::man(&mut std::io::stdout().lock()) {
                eprintln!("distarch: cannot write the manual page: {e}");
                std::process::exit(1);
            }
            return;
        }
        _ => {}
    }
    let cli = match cli.command {
        Command::Run(args) => match args.into_launch() {
            Ok(launch) => Cli {
                command: Command::Launch(launch),
            },
            Err(e) => {
                eprintln!("distarch run: {e}");
                std::process::exit(EXIT_CONFIG);
            }
        },
        command => Cli { command },
    };
    if let Command::Launch(args) = &cli.command {
        // Forked while this process still has one thread; see the local transport.
        watchdog::start(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("distarch: cannot start the async runtime: {e}");
            std::process::exit(EXIT_INTERNAL);
        }
    };
    let master_log = output::install_tracing();
    let code = runtime.block_on(run(cli, master_log));
    // Do not wait for stray blocking tasks (a hung transport call) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

async fn run(cli: Cli, master_log: Option<distarch_core::trace::MasterLog>) -> i32 {
    match cli.command {
        Command::Launch(mut args) => {
            if args.service {
                args.config
                    .set
                    .push(("launcher.service".into(), "true".into()));
            }
            let Some((loaded, launcher)) =
                prepare(&args.config, &args.run, args.run_id.clone(), master_log)
            else {
                return EXIT_CONFIG;
            };
            if args.dry_run {
                print!(
                    "{}",
                    plan_table::render(launcher.plan(), loaded.file.as_deref())
                );
                return 0;
            }
            let l = &loaded.config.launcher;
            let stop = launcher.stop_handle();
            // Job results on stdout: the log goes to stderr.
            let results_on_stdout = loaded
                .config
                .groups
                .values()
                .any(|g| g.jobs.as_ref().is_some_and(|j| j.output_is_stdout()));
            let (log_out, log_name) = if results_on_stdout {
                (stderr_file(), "stderr")
            } else {
                (stdout_file(), "stdout")
            };
            // Level, format and timestamps follow a reload (`launcher.log_*`).
            let live = launcher.control().live_output();
            let writer = LogWriter::new(log_out, l.log_format)
                .following(live.clone(), distarch_core::Follow::All)
                .on_write_error(move |e| {
                    eprintln!(
                        "distarch: cannot write the log to {log_name} ({e}); stopping everything"
                    );
                    stop.stop_for(distarch_core::StopReason::OutputLost);
                });
            let outputs = match output::build(&loaded.config, &live, (!args.tui).then_some(writer))
            {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("distarch: {e}");
                    return EXIT_CONFIG;
                }
            };
            watchdog::arm(&launcher);
            let file = loaded.file.clone();
            let code = verbs::launch::run(
                launcher,
                &loaded.config,
                file,
                args.config,
                args.run,
                outputs,
                args.tui,
            )
            .await;
            watchdog::disarm();
            code
        }
        Command::Control(command) => verbs::run(command).await,
        Command::PluginCheck(args) => {
            let (_, failed) =
                distarch_plugin_host::check::check(&args.command, &mut std::io::stdout()).await;
            i32::from(failed > 0)
        }
        Command::Validate(args) => {
            let Some((loaded, launcher)) = prepare(&args.config, &args.run, None, None) else {
                return EXIT_CONFIG;
            };
            print!(
                "{}",
                plan_table::render(launcher.plan(), loaded.file.as_deref())
            );
            for warning in command_check::missing_local_commands(launcher.plan()) {
                eprintln!("distarch: warning: {warning}");
            }
            0
        }
        // Handled in main, before the runtime starts (`run` became a `launch`).
        Command::Completions(_) | Command::Man | Command::Run(_) => 0,
        Command::Gc(args) => {
            let loaded = match load(&args.config, None) {
                Ok(l) => Some(l),
                Err(_) if args.config.config.is_none() => None,
                Err(errors) => {
                    report_config_errors(&errors);
                    return EXIT_CONFIG;
                }
            };
            gc::run(&args, loaded.as_ref().map(|l| &l.config), master_log).await
        }
    }
}

fn load(args: &ConfigArgs, run: Option<&RunArgs>) -> Result<config::LoadedConfig, ConfigErrors> {
    config::load(&config::ConfigSources {
        file: args.config.clone(),
        dir: None,
        ignore_env: args.no_env,
        overrides: args.set.clone(),
        flag_overrides: run.map(RunArgs::flag_overrides).unwrap_or_default(),
    })
}

/// Loads the configuration and builds the launcher, printing every problem.
fn prepare(
    args: &ConfigArgs,
    run: &RunArgs,
    run_id: Option<String>,
    master_log: Option<distarch_core::trace::MasterLog>,
) -> Option<(config::LoadedConfig, Launcher)> {
    let loaded = match load(args, Some(run)) {
        Ok(l) => l,
        Err(errors) => {
            report_config_errors(&errors);
            return None;
        }
    };
    if loaded.file.is_none() && loaded.config.groups.is_empty() {
        eprintln!(
            "distarch: no {} here; use -c FILE (see examples/ for some)",
            config::DEFAULT_CONFIG_FILE
        );
        return None;
    }
    let mut builder = Launcher::builder()
        .config(loaded.config.clone())
        .registry(transports::registry())
        .only_groups(run.groups.clone())
        .max_instances(run.max_instances)
        .handle_signals(true);
    if let Some(id) = run_id {
        builder = builder.run_id(id);
    }
    if let Some(log) = master_log {
        builder = builder.master_log(log);
    }
    match builder.build() {
        Ok(launcher) => Some((loaded, launcher)),
        Err(errors) => {
            report_config_errors(&loaded.locate(errors));
            None
        }
    }
}

fn report_config_errors(errors: &ConfigErrors) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "distarch: invalid configuration:");
    for e in &errors.0 {
        let _ = writeln!(err, "  {e}");
    }
}

/// Standard error as a plain file (the log, when stdout carries job results).
fn stderr_file() -> Box<dyn Write + Send> {
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::stderr()),
    }
}

/// Standard output as a plain file, so the log writer's whole-line buffers go out
/// in single writes instead of through std's line buffering.
pub(crate) fn stdout_file() -> Box<dyn Write + Send> {
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::stdout()),
    }
}
