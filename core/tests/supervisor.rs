//! The supervisor's state machine, driven through a fake transport whose instances
//! follow a script and record what the supervisor asked of them. No processes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use async_trait::async_trait;
use distarch_core::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// What a fake instance does.
#[derive(Clone, Default)]
struct Script {
    /// Lines printed on stdout at start.
    lines: Vec<String>,
    /// Exit by itself after this long, with `exit_code`.
    exit_after: Option<Duration>,
    /// Exit codes per start (index = restart count); the last one repeats.
    exit_codes: Vec<i32>,
    /// Exit 0 on the stop frame.
    obey_stop: bool,
    /// End on terminate (SIGTERM).
    obey_terminate: bool,
    /// Fail to spawn.
    fail_spawn: bool,
}

#[derive(Default)]
struct Calls {
    spawns: AtomicU32,
    terminates: AtomicU32,
    kills: AtomicU32,
}

struct FakeTransport {
    script: Script,
    calls: Arc<Calls>,
}

struct FakeInstance {
    io: Option<InstanceIo>,
    exit: watch::Sender<Option<ExitStatus>>,
    exit_rx: watch::Receiver<Option<ExitStatus>>,
    script: Script,
    calls: Arc<Calls>,
}

#[async_trait]
impl Transport for FakeTransport {
    fn name(&self) -> &str {
        "fake"
    }

    fn plan(&self, p: &PlacementRef<'_>) -> Result<Vec<Target>, ConfigError> {
        Ok(vec![Target {
            address: "fake".into(),
            host: "fakehost".into(),
            instances: p.instances,
        }])
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        self.calls.spawns.fetch_add(1, Ordering::SeqCst);
        if self.script.fail_spawn {
            return Err(SpawnError::new("fakehost is unreachable"));
        }
        let (stdin_master, stdin_worker) = tokio::io::duplex(4096);
        let (mut stdout_worker, stdout_master) = tokio::io::duplex(4096);
        let (exit, exit_rx) = watch::channel(None);
        let script = self.script.clone();
        let code = *script
            .exit_codes
            .get(spec.restart as usize)
            .or(script.exit_codes.last())
            .unwrap_or(&0);
        let lines = script.lines.clone();
        let exit_after = script.exit_after;
        let obey_stop = script.obey_stop;
        let exit_tx = exit.clone();
        tokio::spawn(async move {
            for l in lines {
                let _ = stdout_worker.write_all(format!("{l}\n").as_bytes()).await;
            }
            let mut stdin = BufReader::new(stdin_worker).lines();
            let sleep = tokio::time::sleep(exit_after.unwrap_or(Duration::from_secs(3600)));
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => { let _ = exit_tx.send(Some(ExitStatus::Exited(code))); break; }
                    line = stdin.next_line() => match line {
                        Ok(Some(l)) if obey_stop && l.contains("\"stop\"") => {
                            let _ = exit_tx.send(Some(ExitStatus::Exited(0)));
                            break;
                        }
                        Ok(Some(_)) => {}
                        _ => { let _ = exit_tx.send(Some(ExitStatus::Exited(0))); break; }
                    },
                }
            }
            drop(stdout_worker);
        });
        Ok(Box::new(FakeInstance {
            io: Some(InstanceIo {
                stdin: Box::new(stdin_master),
                stdout: Box::new(stdout_master),
                stderr: None,
            }),
            exit,
            exit_rx,
            script,
            calls: self.calls.clone(),
        }))
    }
}

#[async_trait]
impl Instance for FakeInstance {
    fn take_io(&mut self) -> Option<InstanceIo> {
        self.io.take()
    }
    fn describe(&self) -> String {
        "fake".into()
    }
    async fn terminate(&mut self) -> Result<(), InstanceError> {
        self.calls.terminates.fetch_add(1, Ordering::SeqCst);
        if self.script.obey_terminate {
            let _ = self.exit.send(Some(ExitStatus::Signaled(15)));
        }
        Ok(())
    }
    async fn kill(&mut self) -> Result<(), InstanceError> {
        self.calls.kills.fetch_add(1, Ordering::SeqCst);
        let _ = self.exit.send(Some(ExitStatus::Signaled(9)));
        Ok(())
    }
    async fn wait(&mut self) -> Result<ExitStatus, InstanceError> {
        let status = self
            .exit_rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| InstanceError::new("gone"))?;
        Ok(status.clone().unwrap_or(ExitStatus::Lost("?".into())))
    }
}

fn group(extra: impl FnOnce(&mut GroupConfig)) -> GroupConfig {
    let mut g = GroupConfig {
        command: CommandLine::Argv(vec!["fake-worker".into()]),
        params: Default::default(),
        env: Default::default(),
        workdir: None,
        priority: None,
        instances: Some(1),
        timeout: HumanDuration::from_secs(0),
        stop_grace: None,
        kill_after: None,
        restart: None,
        max_restarts: 5,
        backoff: BackoffConfig {
            initial: HumanDuration::from_millis(10),
            max: HumanDuration::from_millis(50),
            jitter: 0.0,
            ..BackoffConfig::default()
        },
        order: 0,
        placements: [(
            "p".to_string(),
            PlacementConfig {
                transport: "fake".into(),
                instances: None,
                settings: Default::default(),
            },
        )]
        .into_iter()
        .collect(),
    };
    extra(&mut g);
    g
}

async fn run(
    script: Script,
    g: GroupConfig,
    launcher: LauncherConfig,
) -> (RunReport, Arc<Calls>, Vec<Event>) {
    let calls = Arc::new(Calls::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let report = Launcher::builder()
        .launcher(launcher)
        .group("g", g)
        .transport(FakeTransport {
            script,
            calls: calls.clone(),
        })
        .build()
        .expect("valid config")
        .run(move |e| sink_events.lock().unwrap().push(e))
        .await;
    let events = events.lock().unwrap().clone();
    (report, calls, events)
}

fn launcher(max_running: u64) -> LauncherConfig {
    LauncherConfig {
        max_running_time: HumanDuration::from_millis(max_running),
        stop_grace: HumanDuration::from_millis(100),
        kill_after: HumanDuration::from_millis(100),
        ..LauncherConfig::default()
    }
}

#[tokio::test]
async fn a_stop_frame_is_enough_for_an_obedient_worker() {
    let script = Script {
        obey_stop: true,
        lines: vec!["hi".into()],
        ..Script::default()
    };
    let (report, calls, events) = run(script, group(|_| {}), launcher(100)).await;
    assert_eq!(
        report.instances[0].outcome,
        Outcome::Stopped {
            exit: ExitStatus::Exited(0),
            step: StopStep::StopFrame
        }
    );
    assert_eq!(calls.terminates.load(Ordering::SeqCst), 0);
    assert_eq!(report.exit_code(), EXIT_OK);
    // Life cycle in order: created, started, seen, the line, stopped.
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::InstanceCreated(_) => Some("created"),
            Event::InstanceStarted { .. } => Some("started"),
            Event::InstanceSeen(_) => Some("seen"),
            Event::Lines(l) if l.iter().any(|(t, _)| t == "hi") => Some("line"),
            Event::InstanceStopped { .. } => Some("stopped"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["created", "started", "seen", "line", "stopped"]);
}

#[tokio::test]
async fn a_worker_deaf_to_stop_is_terminated_after_the_grace() {
    let script = Script {
        obey_terminate: true,
        ..Script::default()
    };
    let (report, calls, _) = run(script, group(|_| {}), launcher(50)).await;
    assert_eq!(
        report.instances[0].outcome,
        Outcome::Stopped {
            exit: ExitStatus::Signaled(15),
            step: StopStep::Terminate
        }
    );
    assert_eq!(calls.terminates.load(Ordering::SeqCst), 1);
    assert_eq!(calls.kills.load(Ordering::SeqCst), 0);
    assert_eq!(report.exit_code(), EXIT_OK);
}

#[tokio::test]
async fn a_worker_deaf_to_everything_is_killed_and_the_run_fails() {
    let (report, calls, _) = run(Script::default(), group(|_| {}), launcher(50)).await;
    assert_eq!(
        report.instances[0].outcome,
        Outcome::Stopped {
            exit: ExitStatus::Signaled(9),
            step: StopStep::Kill
        }
    );
    assert_eq!(
        (
            calls.terminates.load(Ordering::SeqCst),
            calls.kills.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test]
async fn on_failure_restarts_until_success() {
    let script = Script {
        exit_after: Some(Duration::from_millis(10)),
        exit_codes: vec![1, 1, 0],
        ..Script::default()
    };
    let g = group(|g| g.restart = Some(RestartPolicy::OnFailure));
    let (report, calls, events) = run(script, g, launcher(0)).await;
    assert_eq!(report.instances[0].restarts, 2);
    assert_eq!(
        report.instances[0].outcome,
        Outcome::Exited(ExitStatus::Exited(0))
    );
    assert_eq!(calls.spawns.load(Ordering::SeqCst), 3);
    let delays: Vec<u128> = events
        .iter()
        .filter_map(|e| match e {
            Event::InstanceRestarting { delay, .. } => Some(delay.as_millis()),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [10, 20], "exponential backoff without jitter");
}

#[tokio::test]
async fn max_restarts_bounds_a_crash_loop() {
    let script = Script {
        exit_after: Some(Duration::from_millis(1)),
        exit_codes: vec![2],
        ..Script::default()
    };
    let g = group(|g| {
        g.restart = Some(RestartPolicy::Always);
        g.max_restarts = 3;
    });
    let (report, calls, _) = run(script, g, launcher(0)).await;
    assert_eq!(calls.spawns.load(Ordering::SeqCst), 4);
    assert_eq!(
        report.instances[0].outcome,
        Outcome::Exited(ExitStatus::Exited(2))
    );
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test]
async fn a_spawn_failure_is_reported_and_follows_the_policy() {
    let script = Script {
        fail_spawn: true,
        ..Script::default()
    };
    let (report, calls, events) = run(script.clone(), group(|_| {}), launcher(0)).await;
    assert_eq!(
        report.instances[0].outcome,
        Outcome::FailedToStart("fakehost is unreachable".into())
    );
    assert_eq!(calls.spawns.load(Ordering::SeqCst), 1);
    assert!(events.iter().any(
        |e| matches!(e, Event::InstanceFailedToStart { error, .. } if error.contains("unreachable"))
    ));
    let g = group(|g| {
        g.restart = Some(RestartPolicy::OnFailure);
        g.max_restarts = 2;
    });
    let (_, calls, _) = run(script, g, launcher(0)).await;
    assert_eq!(
        calls.spawns.load(Ordering::SeqCst),
        3,
        "first try + 2 restarts"
    );
}

#[tokio::test]
async fn a_silent_instance_is_hung_after_the_group_timeout() {
    let script = Script {
        obey_terminate: true,
        ..Script::default()
    };
    let g = group(|g| g.timeout = HumanDuration::from_millis(100));
    let (report, calls, events) = run(script, g, launcher(0)).await;
    assert_eq!(
        report.instances[0].outcome,
        Outcome::TimedOut(ExitStatus::Signaled(15))
    );
    assert_eq!(
        calls.terminates.load(Ordering::SeqCst),
        1,
        "hung: terminate without a stop frame"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::InstanceTimedOut { .. })));
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test]
async fn the_launcher_timeout_stops_everything_with_exit_code_3() {
    let script = Script {
        obey_terminate: true,
        ..Script::default()
    };
    let mut l = launcher(0);
    l.timeout = HumanDuration::from_millis(100);
    let g = group(|g| g.instances = Some(3));
    let (report, calls, _) = run(script, g, l).await;
    assert_eq!(report.stop_reason, Some(StopReason::Timeout));
    assert_eq!(report.exit_code(), EXIT_TIMEOUT);
    assert_eq!(calls.terminates.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_stop_handle_stops_a_library_run() {
    let calls = Arc::new(Calls::default());
    let launcher = Launcher::builder()
        .launcher(launcher(0))
        .group("g", group(|g| g.instances = Some(2)))
        .transport(FakeTransport {
            script: Script {
                obey_stop: true,
                ..Script::default()
            },
            calls,
        })
        .build()
        .unwrap();
    let handle = launcher.stop_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.stop();
    });
    let report = launcher.run(|_e: Event| {}).await;
    assert_eq!(report.stop_reason, Some(StopReason::Requested));
    assert!(report.instances.iter().all(|i| matches!(
        i.outcome,
        Outcome::Stopped {
            step: StopStep::StopFrame,
            ..
        }
    )));
}
