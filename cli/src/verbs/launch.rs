//! What `launch` adds for the control plane: the API server on the run's socket
//! (and TCP when configured), SIGHUP = reload, and systemd notifications
//! (`READY=1` once the API answers, `RELOADING=1`, `STOPPING=1`).

use crate::args::{ConfigArgs, RunArgs};
use distarch_control::{serve, ServeOptions};
use distarch_core::{config, Config, Control, EventSink, Launcher, RunReport, EXIT_CONFIG};
use sd_notify::NotifyState;
use std::path::PathBuf;
use std::sync::Arc;

/// Loads the configuration the way `launch` does, keeping only the `-g` groups.
/// The error lists every problem, one per line.
pub fn load_for_run(args: &ConfigArgs, run: &RunArgs) -> Result<Config, String> {
    let loaded = config::load(&config::ConfigSources {
        file: args.config.clone(),
        dir: None,
        ignore_env: args.no_env,
        overrides: args.set.clone(),
        flag_overrides: run.flag_overrides(),
    })
    .map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut config = loaded.config;
    if !run.groups.is_empty() {
        for g in &run.groups {
            if !config.groups.contains_key(g) {
                return Err(format!("  groups.{g}: no such group"));
            }
        }
        config.groups.retain(|name, _| run.groups.contains(name));
    }
    Ok(config)
}

fn notify(states: &[NotifyState<'_>]) {
    // Not under systemd (no NOTIFY_SOCKET): nothing happens.
    let _ = sd_notify::notify(states);
}

/// Runs `launcher` with its control API served; returns the exit code.
pub async fn run(
    launcher: Launcher,
    config: &Config,
    config_file: Option<PathBuf>,
    args: ConfigArgs,
    run: RunArgs,
    sink: impl EventSink,
) -> i32 {
    let control = launcher.control();
    let reloader: distarch_control::Reloader = Arc::new(move || load_for_run(&args, &run));
    let c = &config.launcher.control;
    let options = ServeOptions {
        config_file,
        service: config.launcher.service,
        listen: c.listen.clone(),
        token: c.token.clone(),
        reload: Some(reloader.clone()),
    };
    let server = match serve(control.clone(), options).await {
        Ok(server) => {
            eprintln!(
                "[master] INFO distarch: run {} is steered through {} (distarch ps {})",
                control.run_id(),
                server.socket().display(),
                control.run_id()
            );
            if let (Some(addr), Some(file)) = (server.tcp_addr(), server.token_file()) {
                eprintln!(
                    "[master] INFO distarch: control API also on {addr}; token in {}",
                    file.display()
                );
            }
            Some(server)
        }
        Err(e @ distarch_control::ServeError::Listen { .. }) => {
            eprintln!("distarch: {e}");
            return EXIT_CONFIG;
        }
        Err(e) => {
            eprintln!("[master] WARN distarch: the control API is not available: {e}");
            None
        }
    };
    let hangups = tokio::spawn(reload_on_hangup(control.clone(), reloader));
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
    let report: RunReport = launcher.run(sink).await;
    notify(&[NotifyState::Stopping]);
    hangups.abort();
    if let Some(server) = server {
        // Requests being answered (a `stop` that ended the run) get their answer.
        server.close(std::time::Duration::from_secs(2)).await;
    }
    report.exit_code()
}

/// SIGHUP: read the configuration again and apply it, like `distarch reload`.
async fn reload_on_hangup(control: Control, reloader: distarch_control::Reloader) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        notify(&[NotifyState::Reloading]);
        eprintln!("[master] INFO distarch: SIGHUP: reading the configuration again");
        let result = match reloader() {
            Ok(config) => control.reload(config).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("invalid configuration:\n{e}")),
        };
        match result {
            Ok(o) => eprintln!(
                "[master] INFO distarch: reloaded: added [{}], removed [{}], changed [{}], unchanged [{}]",
                o.added.join(", "),
                o.removed.join(", "),
                o.changed.join(", "),
                o.unchanged.join(", ")
            ),
            Err(e) => eprintln!("[master] ERROR distarch: reload refused, nothing changed: {e}"),
        }
        notify(&[NotifyState::Ready, NotifyState::Status("running")]);
    }
}
