//! The fetcher: asks the run's control API for what the view shows, and carries
//! out confirmed commands, without ever blocking the view.

use crate::app::{Action, LogScope};
use distarch_control::wire::{GroupsRequest, IdsAnswer, ScaleRequest, TargetsRequest};
use distarch_control::Client;
use distarch_core::{InstanceSnapshot, ScaleOutcome, Selector};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the instances and the log pane are fetched.
pub(crate) const REFRESH: Duration = Duration::from_millis(1000);
/// Lines of output the log pane asks for.
const LOG_LINES: usize = 200;
/// Failed fetches in a row after which the run is considered gone.
const GONE_AFTER: u32 = 3;

/// What the fetcher tells the view.
#[derive(Debug)]
pub(crate) enum ToView {
    Instances(Vec<InstanceSnapshot>),
    Log(Vec<String>),
    Status(String),
    /// The run cannot be reached any more (it ended).
    Gone(String),
}

/// What the view asks the fetcher.
#[derive(Debug)]
pub(crate) enum ToFetcher {
    /// The log pane now shows this (or nothing).
    LogTarget(Option<(LogScope, String)>),
    /// Carry out this command.
    Run(Action),
}

/// Runs until the view goes away (its sender is dropped).
pub(crate) async fn fetcher(
    client: Client,
    mut from_view: mpsc::UnboundedReceiver<ToFetcher>,
    to_view: std_mpsc::Sender<ToView>,
) {
    let mut target: Option<(LogScope, String)> = None;
    let mut failures = 0;
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            msg = from_view.recv() => match msg {
                None => return,
                Some(ToFetcher::LogTarget(t)) => {
                    // A new selection: its output now, the instances at the next tick.
                    target = t;
                    if let Some(t) = &target {
                        if let Some(lines) = fetch_log(&client, t).await {
                            let _ = to_view.send(ToView::Log(lines));
                        }
                    }
                    continue;
                }
                Some(ToFetcher::Run(action)) => {
                    let client = client.clone();
                    let to_view = to_view.clone();
                    tokio::spawn(async move {
                        let text = run_action(&client, &action).await;
                        let _ = to_view.send(ToView::Status(text));
                    });
                    continue;
                }
            },
        }
        match client.get::<Vec<InstanceSnapshot>>("/instances").await {
            Ok(instances) => {
                failures = 0;
                if to_view.send(ToView::Instances(instances)).is_err() {
                    return;
                }
            }
            Err(e) => {
                failures += 1;
                if failures >= GONE_AFTER {
                    let _ = to_view.send(ToView::Gone(format!("the run cannot be reached: {e}")));
                    return;
                }
                continue;
            }
        }
        if let Some(t) = &target {
            if let Some(lines) = fetch_log(&client, t).await {
                if to_view.send(ToView::Log(lines)).is_err() {
                    return;
                }
            }
        }
    }
}

async fn fetch_log(client: &Client, (scope, key): &(LogScope, String)) -> Option<Vec<String>> {
    let query = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        match scope {
            LogScope::Instance => q.append_pair("id", key),
            LogScope::Group => q.append_pair("group", key),
        };
        q.append_pair("tail", &LOG_LINES.to_string());
        q.append_pair("format", "text");
        q.finish()
    };
    let mut lines = Vec::new();
    client
        .lines(&format!("/logs?{query}"), |line| {
            lines.push(String::from_utf8_lossy(line).into_owned());
            true
        })
        .await
        .ok()?;
    Some(lines)
}

fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sends a command; returns the status line to show.
async fn run_action(client: &Client, action: &Action) -> String {
    let groups = |g: &str| GroupsRequest {
        groups: vec![g.to_string()],
    };
    let targets = |g: &str| TargetsRequest {
        targets: vec![Selector::Group(g.to_string())],
        rolling: false,
    };
    let answer = match action {
        Action::Stop(g) => client
            .post::<_, IdsAnswer>("/stop", &targets(g))
            .await
            .map(|a| format!("stopped group {g}: {}", ids(&a.ids))),
        Action::Restart(g) => client
            .post::<_, IdsAnswer>("/restart", &targets(g))
            .await
            .map(|a| format!("restarted group {g}: {}", ids(&a.ids))),
        Action::Suspend(g) => client
            .post::<_, IdsAnswer>("/suspend", &groups(g))
            .await
            .map(|a| format!("suspended group {g}: {}", ids(&a.ids))),
        Action::Resume(g) => client
            .post::<_, IdsAnswer>("/resume", &groups(g))
            .await
            .map(|a| format!("resumed group {g}: {}", ids(&a.ids))),
        Action::Scale(g, n) => client
            .post::<_, ScaleOutcome>(
                "/scale",
                &ScaleRequest {
                    group: g.clone(),
                    placement: None,
                    count: *n,
                },
            )
            .await
            .map(|o| format!("group {g} now has {} instance(s)", o.count)),
        Action::StopRun => client
            .post::<_, IdsAnswer>(
                "/stop",
                &TargetsRequest {
                    targets: Vec::new(),
                    rolling: false,
                },
            )
            .await
            .map(|_| "stopping the run".to_string()),
    };
    answer.unwrap_or_else(|e| format!("refused: {e}"))
}
