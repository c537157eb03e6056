//! What `launch` adds for the control plane: the API server on the run's socket
//! (and TCP when configured), SIGHUP = reload, and systemd notifications
//! (`READY=1` once the API answers, `RELOADING=1`, `STOPPING=1`).

use crate::args::{ConfigArgs, RunArgs};
use crate::output::Outputs;
use distarch_control::{serve, ServeOptions};
use distarch_core::{config, Config, Control, Launcher, RunReport, EXIT_CONFIG};
use distarch_logfile::Reopen;
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
    outputs: Outputs,
    tui: bool,
) -> i32 {
    let control = launcher.control();
    let reopen = outputs.reopen.clone();
    // A reload (SIGHUP or `distarch reload`) also opens the log files again.
    let reloader: distarch_control::Reloader = Arc::new(move || {
        reopen.request();
        load_for_run(&args, &run)
    });
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
            tracing::info!(
                "run {} is steered through {} (distarch ps {})",
                control.run_id(),
                server.socket().display(),
                control.run_id()
            );
            if let (Some(addr), Some(file)) = (server.tcp_addr(), server.token_file()) {
                tracing::info!("control API also on {addr}; token in {}", file.display());
            }
            Some(server)
        }
        Err(e @ distarch_control::ServeError::Listen { .. }) => {
            eprintln!("distarch: {e}");
            return EXIT_CONFIG;
        }
        Err(e) => {
            tracing::warn!("the control API is not available: {e}");
            None
        }
    };
    let metrics = match (&outputs.metrics, &config.launcher.metrics.listen) {
        (Some(m), Some(addr)) => {
            match distarch_metrics::serve(addr, m.clone(), control.clone()).await {
                Ok(server) => {
                    tracing::info!("metrics on http://{}/metrics", server.local_addr());
                    Some(server)
                }
                Err(e) => {
                    eprintln!("distarch: {e}: {}", e.source);
                    return EXIT_CONFIG;
                }
            }
        }
        _ => None,
    };
    let hangups = tokio::spawn(reload_on_hangup(
        control.clone(),
        reloader,
        outputs.reopen.clone(),
    ));
    let view = match (&server, tui) {
        (Some(server), true) => Some(start_view(server.socket(), &control)),
        _ => None,
    };
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
    let report: RunReport = launcher.run(outputs.sink).await;
    notify(&[NotifyState::Stopping]);
    if let Some((task, ended)) = view {
        ended.store(true, std::sync::atomic::Ordering::Relaxed);
        // The view ends within a fraction of a second; a terminal gone bad must not
        // keep the master from exiting.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), task).await;
        // The view is gone and its log with it: say how the run ended.
        eprintln!(
            "[master] INFO distarch: run {}: all instances ended (exit code {})",
            report.run_id,
            report.exit_code()
        );
    }
    hangups.abort();
    drop(metrics);
    if let Some(server) = server {
        // Requests being answered (a `stop` that ended the run) get their answer.
        server.close(std::time::Duration::from_secs(2)).await;
    }
    report.exit_code()
}

/// `launch --tui`: the view of `distarch top` on this run's own socket. Returns
/// its task and the flag that ends it once the run has ended.
fn start_view(
    socket: &std::path::Path,
    control: &Control,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = distarch_control::Client::unix(socket);
    let options = distarch_tui::TopOptions {
        title: control.run_id().to_string(),
        owns_run: true,
    };
    let stop = control.clone();
    let flag = ended.clone();
    let task = tokio::spawn(async move {
        let exit = distarch_tui::run_until(client, options, flag).await;
        if let Err(e) = exit {
            tracing::error!("the terminal view failed: {e}; stopping the run");
        }
        // However the view ended, the run does not go on without it.
        stop.stop_run();
    });
    (task, ended)
}

/// SIGHUP: read the configuration again and apply it, like `distarch reload`.
async fn reload_on_hangup(control: Control, reloader: distarch_control::Reloader, reopen: Reopen) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        notify(&[NotifyState::Reloading]);
        reopen.request();
        tracing::info!("SIGHUP: reading the configuration again");
        let result = match reloader() {
            Ok(config) => control.reload(config).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("invalid configuration:\n{e}")),
        };
        match result {
            Ok(o) => tracing::info!(
                "reloaded: added [{}], removed [{}], changed [{}], unchanged [{}]",
                o.added.join(", "),
                o.removed.join(", "),
                o.changed.join(", "),
                o.unchanged.join(", ")
            ),
            Err(e) => tracing::error!("reload refused, nothing changed: {e}"),
        }
        notify(&[NotifyState::Ready, NotifyState::Status("running")]);
    }
}
