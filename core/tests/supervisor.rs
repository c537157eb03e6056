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
    /// `stop` frames the workers read.
    stop_frames: Arc<AtomicU32>,
    /// Command and environment of each spawn.
    specs: std::sync::Mutex<Vec<SpawnedSpec>>,
}

/// The command and environment one spawn was given.
type SpawnedSpec = (Vec<String>, std::collections::BTreeMap<String, String>);

/// The first frame an SDK sends.
const HELLO: &str = "\u{1e}{\"type\":\"hello\",\"protocol\":1}";

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

    fn plan(&self, p: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        let target = Target {
            address: "fake".into(),
            host: "fakehost".into(),
            instances: p.instances,
        };
        Ok(PlacementPlan::new(vec![target], Prepared::default()))
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        self.calls.spawns.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut specs) = self.calls.specs.lock() {
            specs.push((spec.command.clone(), spec.env.clone()));
        }
        let stop_frames = self.calls.stop_frames.clone();
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
                        Ok(Some(l)) if l.contains("\"stop\"") => {
                            stop_frames.fetch_add(1, Ordering::SeqCst);
                            if obey_stop {
                                let _ = exit_tx.send(Some(ExitStatus::Exited(0)));
                                break;
                            }
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
        instances: Some(1),
        timeout: Some(HumanDuration::from_secs(0)),
        restart: Some(RestartPolicy::Never),
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
                params: Default::default(),
                settings: Default::default(),
            },
        )]
        .into_iter()
        .collect(),
        ..GroupConfig::new(CommandLine::Argv(vec!["fake-worker".into()]))
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
        lines: vec![HELLO.into(), "hi".into()],
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
        lines: vec![HELLO.into()],
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
    let script = Script {
        lines: vec![HELLO.into()],
        ..Script::default()
    };
    let (report, calls, _) = run(script, group(|_| {}), launcher(50)).await;
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
    let g = group(|g| g.timeout = Some(HumanDuration::from_millis(100)));
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
                lines: vec![HELLO.into()],
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

/// Runs several groups on the fake transport; returns the report, calls, events.
async fn run_groups(
    script: Script,
    groups: Vec<(&str, GroupConfig)>,
    launcher: LauncherConfig,
) -> (RunReport, Arc<Calls>, Vec<Event>) {
    let calls = Arc::new(Calls::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let mut builder = Launcher::builder()
        .launcher(launcher)
        .transport(FakeTransport {
            script,
            calls: calls.clone(),
        });
    for (name, g) in groups {
        builder = builder.group(name, g);
    }
    let report = builder
        .build()
        .expect("valid config")
        .run(move |e| sink_events.lock().unwrap().push(e))
        .await;
    let events = events.lock().unwrap().clone();
    (report, calls, events)
}

#[tokio::test]
async fn a_plain_program_gets_its_stop_signal_at_once_not_a_stop_frame() {
    // No frame ever: a plain program. A long grace must not be waited for.
    let script = Script {
        obey_terminate: true,
        lines: vec!["plain output".into()],
        ..Script::default()
    };
    let mut l = launcher(50);
    l.stop_grace = HumanDuration::from_secs(3600);
    let (report, calls, _) = run(script, group(|_| {}), l).await;
    assert_eq!(
        report.instances[0].outcome,
        Outcome::Stopped {
            exit: ExitStatus::Signaled(15),
            step: StopStep::Terminate
        }
    );
    assert_eq!(calls.stop_frames.load(Ordering::SeqCst), 0, "no stop frame");
    assert_eq!(calls.terminates.load(Ordering::SeqCst), 1);
    assert_eq!(report.exit_code(), EXIT_OK);
}

#[tokio::test]
async fn a_protocol_speaker_gets_the_stop_frame() {
    let script = Script {
        obey_stop: true,
        lines: vec![HELLO.into()],
        ..Script::default()
    };
    let (report, calls, _) = run(script, group(|_| {}), launcher(50)).await;
    assert_eq!(calls.stop_frames.load(Ordering::SeqCst), 1);
    assert_eq!(calls.terminates.load(Ordering::SeqCst), 0);
    assert_eq!(report.exit_code(), EXIT_OK);
}

#[test]
fn the_default_hang_timeout_applies_to_protocol_speakers_only() {
    let g = group(|g| g.timeout = None);
    assert_eq!(g.hang_timeout(true), Some(Duration::from_secs(30)));
    assert_eq!(g.hang_timeout(false), None);
    let g = group(|g| g.timeout = Some(HumanDuration::from_secs(5)));
    assert_eq!(g.hang_timeout(false), Some(Duration::from_secs(5)));
    let g = group(|g| g.timeout = Some(HumanDuration::from_secs(0)));
    assert_eq!(g.hang_timeout(true), None);
}

#[tokio::test]
async fn a_silent_plain_program_is_not_hung_by_default() {
    // Silent for longer than any explicit timeout in these tests, with the default
    // (unset) timeout: it must end by itself, not be judged hung.
    let script = Script {
        exit_after: Some(Duration::from_millis(300)),
        ..Script::default()
    };
    let (report, calls, events) = run(script, group(|g| g.timeout = None), launcher(0)).await;
    assert_eq!(
        report.instances[0].outcome,
        Outcome::Exited(ExitStatus::Exited(0))
    );
    assert_eq!(calls.terminates.load(Ordering::SeqCst), 0);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::InstanceTimedOut { .. })));
}

#[tokio::test]
async fn placeholders_expand_per_instance_and_per_restart() {
    let script = Script {
        exit_codes: vec![1, 0],
        exit_after: Some(Duration::from_millis(10)),
        ..Script::default()
    };
    let g = group(|g| {
        g.command = CommandLine::Argv(vec![
            "w".into(),
            "--shard={group_id}/{group_count}".into(),
            "{{id}".into(),
        ]);
        g.env
            .insert("OUT".into(), "/tmp/{run_id}-{id}.{restart}".into());
        g.params
            .insert("who".into(), serde_json::json!(["{host}", 1]));
        g.instances = Some(2);
        g.restart = Some(RestartPolicy::OnFailure);
    });
    let (report, calls, _) = run(script, g, launcher(0)).await;
    let specs = calls.specs.lock().unwrap().clone();
    let run_id = report.run_id.clone();
    let mut seen: Vec<(String, String, String)> = specs
        .iter()
        .map(|(cmd, env)| {
            (
                cmd[1..].join(" "),
                env["OUT"].clone(),
                env["DISTARCH_PARAMS"].clone(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "--shard=1/2 {id}".to_string(),
                format!("/tmp/{run_id}-1.0"),
                r#"{"who":["fakehost",1]}"#.to_string()
            ),
            (
                "--shard=1/2 {id}".to_string(),
                format!("/tmp/{run_id}-1.1"),
                r#"{"who":["fakehost",1]}"#.to_string()
            ),
            (
                "--shard=2/2 {id}".to_string(),
                format!("/tmp/{run_id}-2.0"),
                r#"{"who":["fakehost",1]}"#.to_string()
            ),
            (
                "--shard=2/2 {id}".to_string(),
                format!("/tmp/{run_id}-2.1"),
                r#"{"who":["fakehost",1]}"#.to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn an_unknown_placeholder_is_a_config_error() {
    let g = group(|g| g.command = CommandLine::Argv(vec!["w".into(), "{gorup_id}".into()]));
    let errors = Launcher::builder()
        .group("g", g)
        .transport(FakeTransport {
            script: Script::default(),
            calls: Arc::default(),
        })
        .build()
        .err()
        .expect("an error");
    let text = errors.to_string();
    assert!(
        text.contains("groups.g.command") && text.contains("{gorup_id}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_group_starts_after_its_dependency_completed() {
    let script = Script {
        exit_after: Some(Duration::from_millis(100)),
        ..Script::default()
    };
    let db = group(|g| g.instances = Some(2));
    let app = group(|g| {
        g.depends_on.insert(
            "db".into(),
            distarch_core::config::DependencyCondition::Completed,
        );
    });
    let (report, _, events) = run_groups(script, vec![("db", db), ("app", app)], launcher(0)).await;
    assert_eq!(report.exit_code(), EXIT_OK);
    let order: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::InstanceStarted { instance, .. } => Some(format!("start {}", instance.group)),
            Event::InstanceStopped { instance, .. } => Some(format!("stop {}", instance.group)),
            _ => None,
        })
        .collect();
    let first_app = order
        .iter()
        .position(|e| e == "start app")
        .expect("app started");
    let db_stops = order.iter().filter(|e| *e == "stop db").count();
    let db_stops_before = order[..first_app]
        .iter()
        .filter(|e| *e == "stop db")
        .count();
    assert_eq!((db_stops, db_stops_before), (2, 2), "{order:?}");
}

#[tokio::test]
async fn a_failed_dependency_keeps_its_dependents_from_starting() {
    let script = Script {
        exit_after: Some(Duration::from_millis(50)),
        exit_codes: vec![1],
        ..Script::default()
    };
    let db = group(|_| {});
    let app = group(|g| {
        g.depends_on.insert(
            "db".into(),
            distarch_core::config::DependencyCondition::Completed,
        );
    });
    let (report, calls, _) = run_groups(script, vec![("db", db), ("app", app)], launcher(0)).await;
    assert_eq!(calls.spawns.load(Ordering::SeqCst), 1, "only db started");
    let app = report
        .instances
        .iter()
        .find(|i| &*i.group == "app")
        .unwrap();
    assert!(
        matches!(&app.outcome, Outcome::FailedToStart(why) if why.contains("`db` can no longer be completed")),
        "{:?}",
        app.outcome
    );
}

#[test]
fn dependency_cycles_and_unknown_groups_are_config_errors() {
    use distarch_core::config::DependencyCondition::Ready;
    let a = group(|g| {
        g.depends_on.insert("b".into(), Ready);
    });
    let b = group(|g| {
        g.depends_on.insert("a".into(), Ready);
        g.depends_on.insert("nope".into(), Ready);
    });
    let errors = Launcher::builder()
        .group("a", a)
        .group("b", b)
        .transport(FakeTransport {
            script: Script::default(),
            calls: Arc::default(),
        })
        .build()
        .err()
        .expect("errors");
    let text = errors.to_string();
    assert!(text.contains("dependency cycle: a → b → a"), "{text}");
    assert!(
        text.contains("groups.b.depends_on.nope") && text.contains("no such group `nope`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_log_line_matching_the_ready_rule_makes_an_instance_ready() {
    let script = Script {
        lines: vec!["booting".into(), "listening on :8080".into()],
        exit_after: Some(Duration::from_millis(200)),
        ..Script::default()
    };
    let g = group(|g| {
        g.ready = Some(distarch_core::config::ReadyRule::Log(
            "listening on :\\d+".into(),
        ))
    });
    let (_, _, events) = run(script, g, launcher(0)).await;
    let ready = events
        .iter()
        .filter(|e| matches!(e, Event::InstanceReady(_)))
        .count();
    assert_eq!(ready, 1);
}

#[tokio::test]
async fn instances_not_ready_in_time_stop_the_run_with_exit_code_4() {
    let script = Script {
        obey_terminate: true,
        ..Script::default()
    };
    let mut l = launcher(0);
    l.ready_timeout = HumanDuration::from_millis(200);
    let g = group(|g| {
        g.instances = Some(2);
        g.ready = Some(distarch_core::config::ReadyRule::Log("never".into()));
    });
    let (report, _, events) = run(script, g, l).await;
    assert_eq!(report.exit_code(), distarch_core::EXIT_NOT_READY);
    assert!(events.iter().any(|e| matches!(e, Event::Log(r)
        if r.message.contains("2 instance(s) did not become ready") && r.message.contains("group g: id 1, 2"))));
}
