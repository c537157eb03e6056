//! `distarch top [RUN]`, and the view of `launch --tui`.

use super::{locate, TopArgs, VerbError, EXIT_NO_RUN};
use distarch_control::{live_runs, Client};
use distarch_tui::{Exit, TopOptions};

pub async fn top(args: TopArgs) -> Result<i32, VerbError> {
    let found = match args.run {
        Some(run) => locate(&run).await?,
        None => {
            let (mut runs, _) = live_runs().await?;
            match runs.len() {
                1 => runs.remove(0),
                0 => {
                    return Err(VerbError::new(
                        EXIT_NO_RUN,
                        "no run is live (see `distarch ps`)",
                    ))
                }
                _ => {
                    let ids: Vec<_> = runs
                        .iter()
                        .map(|r| r.status.descriptor.run_id.clone())
                        .collect();
                    return Err(VerbError::new(
                        EXIT_NO_RUN,
                        format!("several runs are live ({}); name one", ids.join(", ")),
                    ));
                }
            }
        }
    };
    let d = &found.status.descriptor;
    let title = if d.name.is_empty() || d.name == d.run_id {
        d.run_id.clone()
    } else {
        format!("{} ({})", d.name, d.run_id)
    };
    show(found.client(), title, false).await
}

/// Runs the view on `client` until the user quits or the run goes away.
pub async fn show(client: Client, title: String, owns_run: bool) -> Result<i32, VerbError> {
    match distarch_tui::run(client, TopOptions { title, owns_run }).await {
        Ok(Exit::Quit) | Ok(Exit::Signal) => Ok(0),
        Ok(Exit::RunGone(why)) => {
            if !owns_run {
                eprintln!("distarch: the run has ended ({why})");
            }
            Ok(0)
        }
        Err(e) => Err(VerbError::new(1, format!("the terminal view failed: {e}"))),
    }
}
