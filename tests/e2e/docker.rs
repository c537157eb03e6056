//! End-to-end tests of `distarch launch` with the docker transport, against a
//! private dockerd started by the harness, with a test image built from the test
//! and example workers (no registry involved).

use distarch_e2e::dockerd::{Dockerd, DockerdOptions, SocketProxy};
use distarch_e2e::image::ImageBuilder;
use distarch_e2e::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);
/// `/worker` = the test worker (entrypoint), `/example-worker` = the SDK example
/// worker, plus busybox.
const IMAGE: &str = "distarch-test/worker:1";

/// The shared engine, with the test image built.
fn engine() -> Arc<Dockerd> {
    static BUILD: Mutex<()> = Mutex::new(());
    let d = Dockerd::shared();
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if !d.docker(&["image", "inspect", IMAGE]).status.success() {
        build_image(&d);
    }
    d
}

/// An engine of the test's own, for tests that kill a master: any launch or gc on
/// a shared engine would clean up after them before they look.
fn own_engine() -> Dockerd {
    let d = Dockerd::start();
    build_image(&d);
    d
}

fn build_image(d: &Dockerd) {
    ImageBuilder::new(IMAGE)
        .binary(&test_worker_bin(), "/worker")
        .binary(&example_worker_bin(), "/example-worker")
        .busybox()
        .entrypoint(&["/worker"])
        .build(d);
}

/// A docker placement on `d` with `n` instances and `extra` settings
/// (`, key = value, ...`).
fn placement(d: &Dockerd, n: u32, extra: &str) -> String {
    format!(
        "{{ transport = \"docker\", image = \"{IMAGE}\", host = {h}, network = \"none\", instances = {n}{extra} }}",
        h = toml_str(d.host())
    )
}

/// A config with one group `g`, `command`, and one docker placement `box`.
fn config(d: &Dockerd, launcher: &str, command: &str, group: &str, n: u32, extra: &str) -> String {
    format!(
        "[launcher]\n{launcher}\n[groups.g]\ncommand = {command}\n{group}\nplacements.box = {}\n",
        placement(d, n, extra)
    )
}

fn run_id(name: &str) -> String {
    format!("{name}{}", std::process::id() % 100_000)
}

#[test]
fn one_instance_sees_its_identity_and_params_and_is_removed() {
    // `pull` is left at its default, "missing": the image is on the engine, so no
    // pull is tried (one would fail here: there is no registry to reach).
    let d = engine();
    let run = run_id("one");
    let cfg = config(
        &d,
        "",
        "[\"hello\"]",
        "params = { message = \"Hello World!\", n = 3 }",
        1,
        "",
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(r#"[g] [docker] [1/1] INFO hello id=1 group=g group_id=1 count=1 host=docker restart=0 params={"message":"Hello World!","n":3}"#);
    out.assert_has(&format!("container distarch-{run}-g-1 "));
    assert!(
        d.run_containers(&run, true).is_empty(),
        "auto_remove leaves nothing"
    );
}

#[test]
fn several_instances_have_their_own_ids() {
    let d = engine();
    let run = run_id("several");
    let cfg = config(&d, "", "[\"hello\"]", "", 4, "");
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    for i in 1..=4 {
        out.assert_has(&format!(
            "[g] [docker] [{i}/{i}] INFO hello id={i} group=g group_id={i} count=4"
        ));
    }
    assert!(d.run_containers(&run, true).is_empty());
}

#[test]
fn stdout_and_stderr_arrive_labelled_and_command_overrides_work() {
    let d = engine();
    let cfg = config(
        &d,
        "",
        "[\"ignored\"]",
        "",
        1,
        ", entrypoint = [\"/bin/sh\", \"-c\"], command = [\"echo to-out; echo to-err >&2; exit 3\"], label = \"box1\"",
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "exit 3 is a failure\n{out}");
    out.assert_has("[g] [box1] [1/1] INFO to-out");
    out.assert_has("[g] [box1] [1/1] WARN to-err");
    out.assert_has("[g] [box1] [1/1] WARN distarch: ended: exit code 3");
}

#[test]
fn max_running_time_stops_sdk_workers_cleanly() {
    let d = engine();
    let run = run_id("maxrun");
    let cfg = config(
        &d,
        "max_running_time = \"2s\"\nstop_grace = \"10s\"",
        "[\"/example-worker\"]",
        "params = { message = \"from the box\" }",
        2,
        ", entrypoint = []",
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("[g] [docker] [1/1] INFO I am instance 1 (1/2 of group g) on docker, restart 0");
    out.assert_has("[g] [docker] [2/2] INFO message: from the box");
    out.assert_has("stopping everything: max running time reached");
    out.assert_count("ended after a stop request: exit code 0", 2);
    assert!(d.run_containers(&run, true).is_empty());
}

#[test]
fn a_container_that_ignores_stop_is_killed_after_the_grace_period() {
    let d = engine();
    let run = run_id("ignore");
    let cfg = config(
        &d,
        "max_running_time = \"3s\"\nstop_grace = \"1s\"\nkill_after = \"1s\"",
        "[\"ignore-stop\"]",
        "",
        1,
        "",
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    out.assert_has("INFO ignoring stop");
    out.assert_has("ended after being killed: killed by signal 9");
    assert_eq!(out.code, 1, "a forced kill is a failure\n{out}");
    assert!(d.run_containers(&run, true).is_empty());
}

#[test]
fn a_container_that_ignores_the_stop_frame_gets_sigterm_from_docker_stop() {
    let d = engine();
    let run = run_id("term");
    let cfg = config(
        &d,
        "max_running_time = \"3s\"\nstop_grace = \"500ms\"\nkill_after = \"20s\"",
        "[\"echo up; exec sleep 3600\"]",
        "",
        1,
        ", entrypoint = [\"/bin/sh\", \"-c\"]",
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    out.assert_has("INFO up");
    out.assert_has("ended after being terminated: killed by signal 15");
    assert!(d.run_containers(&run, true).is_empty());
}

#[test]
fn restarts_get_new_containers_and_see_their_restart_count() {
    let d = engine();
    let run = run_id("restart");
    let cfg = config(
        &d,
        "",
        "[\"fail-until\", \"2\"]",
        "restart = \"on-failure\"\nmax_restarts = 5\nbackoff = { initial = \"50ms\", factor = 1.0, jitter = 0.0 }",
        1,
        "",
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("INFO failing at restart 0");
    out.assert_has("INFO failing at restart 1");
    out.assert_has("INFO succeeded at restart 2");
    out.assert_count("ended: exit code 1", 2);
    out.assert_has(&format!("container distarch-{run}-g-1-r2 "));
    assert!(d.run_containers(&run, true).is_empty());
}

#[test]
fn memory_limit_oom_kill_is_reported_as_such() {
    let d = engine();
    let cfg = config(
        &d,
        "",
        "[\"head -c 300m /dev/zero | tail\"]",
        "",
        1,
        ", entrypoint = [\"/bin/sh\", \"-c\"], memory = \"32m\"",
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_has("[g] [docker] [1/1] WARN distarch: ended: killed: out of memory");
}

#[test]
fn a_mixed_group_runs_local_and_docker_instances() {
    let d = engine();
    let run = run_id("mixed");
    let cfg = format!(
        "[launcher]\nmax_running_time = \"2s\"\n[groups.g]\ncommand = [{w}]\nplacements.a_here = {{ transport = \"local\", instances = 2 }}\nplacements.b_box = {}\n",
        placement(&d, 1, ", command = [\"/example-worker\"], entrypoint = []"),
        w = toml_str(example_worker_bin().display().to_string()),
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("[g] [localhost] [1/1] INFO I am instance 1 (1/3 of group g) on localhost");
    out.assert_has("[g] [localhost] [2/2] INFO I am instance 2 (2/3 of group g) on localhost");
    out.assert_has("[g] [docker] [3/3] INFO I am instance 3 (3/3 of group g) on docker");
    out.assert_count("ended after a stop request: exit code 0", 3);
}

#[test]
fn sigint_stops_every_container_and_labels_and_limits_are_set() {
    let d = engine();
    let run = run_id("sigint");
    let cfg = config(
        &d,
        "stop_grace = \"10s\"",
        "[\"serve\"]",
        "",
        3,
        ", memory = \"64m\", cpus = 0.5, pids_limit = 50, labels = { team = \"blue\" }",
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO serving", 3, LIMIT);
    let names = d.containers(&[&format!("distarch.run={run}"), "distarch.group=g"], false);
    let expected: Vec<String> = (1..=3).map(|i| format!("distarch-{run}-g-{i}")).collect();
    assert_eq!(names, expected);
    let first = &expected[0];
    let inspect = d.docker_ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{index .Config.Labels \"team\"}} {{index .Config.Labels \"distarch.id\"}}",
        first,
    ]);
    assert_eq!(inspect.trim(), format!("{} 500000000 50 blue 1", 64 << 20));
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    out.assert_count("INFO got stop", 3);
    assert!(d.run_containers(&run, true).is_empty(), "{out}");
}

#[test]
fn sigkill_of_the_master_ends_sdk_workers_and_gc_removes_the_rest() {
    let d = own_engine();
    let run = run_id("sigkill");
    let sdk = config(&d, "", "[\"/example-worker\"]", "", 2, ", entrypoint = []");
    let dist = Distarch::new().config(&sdk);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO I am instance", 2, LIMIT);
    assert_eq!(d.run_containers(&run, false).len(), 2);
    // The reaper would run gc itself: this test is about what gc alone cleans.
    distarch_e2e::procs::kill_reaper_of(running.pid());
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    // The engine closes the workers' stdin with the master's attach: they exit.
    assert!(
        d.wait_no_containers(
            &[&format!("distarch.run={run}")],
            false,
            Duration::from_secs(20)
        ),
        "SDK workers still running after the master was killed: {:?}",
        d.run_containers(&run, false)
    );
    // What is left (stopped containers) goes with gc.
    assert_eq!(d.run_containers(&run, true).len(), 2);
    let gc = dist.run(&["gc"], LIMIT);
    assert_eq!(gc.code, 0, "{gc}");
    gc.assert_has("removed 2 container(s) of gone runs");
    assert!(d.run_containers(&run, true).is_empty(), "{gc}");
}

#[test]
fn gc_removes_a_running_container_of_a_killed_master() {
    let d = own_engine();
    let run = run_id("stubborn");
    // A worker that ignores stdin, without the stdin watcher: only gc can end it
    // once the master is gone.
    let cfg = config(
        &d,
        "",
        "[\"echo up; exec sleep 3600\"]",
        "",
        1,
        ", entrypoint = [\"/bin/sh\", \"-c\"], end_with_master = false",
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO up", 1, LIMIT);
    // The reaper would run gc itself: this test is about what gc alone cleans.
    distarch_e2e::procs::kill_reaper_of(running.pid());
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    assert_eq!(d.run_containers(&run, false).len(), 1, "it keeps running");
    let dry = dist.run(&["gc", "--dry-run"], LIMIT);
    dry.assert_has("would remove 1 container(s)");
    assert_eq!(
        d.run_containers(&run, false).len(),
        1,
        "a dry run removes nothing"
    );
    let gc = dist.run(&["gc"], LIMIT);
    assert_eq!(gc.code, 0, "{gc}");
    gc.assert_has(&format!(
        "removed 1 container(s) of gone runs (distarch-{run}-g-1)"
    ));
    assert!(d.run_containers(&run, true).is_empty());
}

#[test]
fn gc_keeps_the_containers_of_a_live_run() {
    let d = engine();
    let run = run_id("live");
    let cfg = config(&d, "", "[\"serve\"]", "", 1, "");
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO serving", 1, LIMIT);
    let gc = dist.run(&["gc"], LIMIT);
    assert_eq!(gc.code, 0, "{gc}");
    assert_eq!(d.run_containers(&run, false).len(), 1, "{gc}");
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
}

#[test]
fn two_engines_in_one_run_one_over_tcp_with_tls_from_the_docker_environment() {
    let a = engine();
    let b = Dockerd::start_with(DockerdOptions { tls_tcp: true });
    build_image(&b);
    let tls_host = b.tls_host().unwrap();
    let certs = b.client_certs().unwrap().display().to_string();
    // Placement `far` names no host: DOCKER_HOST, DOCKER_TLS_VERIFY and
    // DOCKER_CERT_PATH say where and how, as for the docker CLI.
    let cfg = format!(
        "[groups.g]\ncommand = [\"hello\"]\nplacements.a_near = {}\nplacements.b_far = {{ transport = \"docker\", image = \"{IMAGE}\", network = \"none\", instances = 2 }}\n",
        placement(&a, 1, "")
    );
    let run = run_id("tls");
    let out = Distarch::new()
        .config(&cfg)
        .env("DOCKER_HOST", &tls_host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &certs)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("[g] [docker] [1/1] INFO hello id=1 group=g group_id=1 count=3 host=docker");
    out.assert_has(
        "[g] [127.0.0.1] [2/2] INFO hello id=2 group=g group_id=2 count=3 host=127.0.0.1",
    );
    out.assert_has(
        "[g] [127.0.0.1] [3/3] INFO hello id=3 group=g group_id=3 count=3 host=127.0.0.1",
    );
    out.assert_has(&format!("on {tls_host}"));

    // Without the TLS variables the engine refuses the plain connection: a clear error.
    let out = Distarch::new()
        .config(&cfg)
        .env("DOCKER_HOST", &tls_host)
        .run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    // The reason in full once, with whichever far instance failed first.
    let full = format!(
        "ERROR distarch: failed to start: groups.g.placements.b_far: cannot reach the docker engine at {tls_host}"
    );
    assert!(
        ["[g] [127.0.0.1] [2/2] ", "[g] [127.0.0.1] [3/3] "]
            .iter()
            .any(|label| out.stdout.contains(&format!("{label}{full}"))),
        "{out}"
    );
    out.assert_has("[g] [docker] [1/1] INFO hello id=1");
}

#[test]
fn an_unreachable_engine_is_a_clear_error_naming_the_placement() {
    let cfg = format!(
        "[groups.g]\ncommand = [\"hello\"]\nplacements.box = {{ transport = \"docker\", image = \"{IMAGE}\", host = \"unix:///nonexistent/docker.sock\", instances = 1 }}\n"
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_has("[g] [docker] [1/1] ERROR distarch: failed to start: groups.g.placements.box: cannot reach the docker engine at unix:///nonexistent/docker.sock");
}

#[test]
fn a_missing_image_with_pull_never_is_a_clear_error() {
    let d = engine();
    let cfg = format!(
        "[groups.g]\ncommand = [\"hello\"]\nplacements.box = {{ transport = \"docker\", image = \"distarch-test/nope:1\", pull = \"never\", host = {h}, instances = 1 }}\n",
        h = toml_str(d.host())
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_has(&format!(
        "failed to start: groups.g.placements.box: image `distarch-test/nope:1` is not on the docker engine at {} (pull = \"never\")",
        d.host()
    ));
}

#[test]
fn a_bad_mount_and_a_name_clash_are_clear_errors() {
    let d = engine();
    let cfg = config(
        &d,
        "",
        "[\"hello\"]",
        "",
        1,
        ", mounts = [{ type = \"bind\", source = \"/nonexistent-distarch-src\", target = \"/data\" }]",
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    let line = out.lines_with("failed to start").join("\n");
    assert!(
        line.contains("groups.g.placements.box: the docker engine at"),
        "{out}"
    );
    assert!(line.contains("/nonexistent-distarch-src"), "{out}");

    let run = run_id("clash");
    let name = format!("distarch-{run}-g-1");
    d.docker_ok(&[
        "create",
        "--name",
        &name,
        "--label",
        &format!("distarch.run={run}"),
        IMAGE,
    ]);
    let cfg = config(&d, "", "[\"hello\"]", "", 1, "");
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_has(&format!(
        "failed to start: groups.g.placements.box: a container named {name} already exists on the docker engine at {}",
        d.host()
    ));
    d.docker_ok(&["rm", "-f", &name]);
}

#[test]
fn bad_docker_settings_are_config_errors() {
    let cfg = format!(
        "[groups.g]\ncommand = [\"hello\"]\nplacements.box = {{ transport = \"docker\", image = \"{IMAGE}\", memory = \"lots\", instances = 1 }}\n"
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("groups.g.placements.box") && out.stderr.contains("lots"),
        "{out}"
    );
    let cfg = format!(
        "[groups.g]\ncommand = [\"hello\"]\nplacements.box = {{ transport = \"docker\", image = \"{IMAGE}\", pul = \"never\", instances = 1 }}\n"
    );
    let out = Distarch::new().config(&cfg).run(&["validate"], LIMIT);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("pul"), "{out}");
    // A placement's env follows the same rules as a group's.
    for env in [
        "{ \"DISTARCH_ID=9\" = \"z\" }",
        "{ DISTARCH_ID = \"9\" }",
        "{ \"\" = \"x\" }",
    ] {
        let cfg = format!(
            "[groups.g]\ncommand = [\"hello\"]\nplacements.box = {{ transport = \"docker\", image = \"{IMAGE}\", env = {env}, instances = 1 }}\n"
        );
        let out = Distarch::new().config(&cfg).run(&["validate"], LIMIT);
        assert_eq!(out.code, 2, "{env}: {out}");
        assert!(
            out.stderr.contains("groups.g.placements.box.env"),
            "{env}: {out}"
        );
    }
}

/// At the transport level: when the master closes the worker's stdin (the attach's
/// write side), the worker in the container reads EOF and exits on its own.
#[test]
fn closing_stdin_reaches_the_worker_in_the_container() {
    use distarch_core::{ExitStatus, InstanceSpec, Transport};
    use distarch_transport_docker::DockerTransport;
    use tokio::io::AsyncBufReadExt;

    let d = engine();
    let run = run_id("stdin");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let transport = DockerTransport::new().collect_on_connect(false);
        let settings = serde_json::json!({"image": IMAGE, "host": d.host(), "network": "none"});
        let spec = InstanceSpec::builder(["serve"])
            .run_id(run.clone())
            .names("g", "box")
            .stop_times(Duration::from_secs(1), Duration::from_secs(1))
            .plan(&transport, &settings)
            .expect("plan");
        let mut instance = transport.spawn(&spec).await.expect("spawn");
        let io = instance.take_io().expect("io");
        let mut lines = tokio::io::BufReader::new(io.stdout).lines();
        let limit = Duration::from_secs(30);
        assert!(
            tokio::time::timeout(limit, line_with(&mut lines, "serving"))
                .await
                .unwrap_or(false)
        );
        drop(io.stdin);
        assert!(
            tokio::time::timeout(limit, line_with(&mut lines, "stdin closed"))
                .await
                .unwrap_or(false)
        );
        let status = tokio::time::timeout(limit, instance.wait())
            .await
            .expect("ends")
            .expect("status");
        assert_eq!(status, ExitStatus::Exited(0));
        instance.cleanup().await;
    });
    assert!(d.run_containers(&run, true).is_empty());
}

async fn line_with<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    want: &str,
) -> bool {
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains(want) {
            return true;
        }
    }
    false
}

/// At the transport level: `shutdown` ends containers that no supervisor cleaned up
/// (a start cancelled by Ctrl-C, a task that went away), here one kept on purpose
/// (`auto_remove = false`), which is killed but not removed.
#[test]
fn shutdown_ends_containers_left_without_cleanup() {
    use distarch_core::{InstanceSpec, Transport};
    use distarch_transport_docker::DockerTransport;

    let d = engine();
    let run = run_id("shutdown");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let transport = DockerTransport::new().collect_on_connect(false);
        let settings = serde_json::json!({"image": IMAGE, "host": d.host(), "network": "none", "auto_remove": false});
        let mut spec = InstanceSpec::builder(["silent"])
            .run_id(run.clone())
            .names("g", "box")
            .stop_times(Duration::from_secs(1), Duration::from_secs(1))
            .plan(&transport, &settings)
            .expect("plan");
        let first = transport.spawn(&spec).await.expect("spawn");
        spec.id = 2;
        let second = transport.spawn(&spec).await.expect("spawn");
        assert_eq!(d.run_containers(&run, false).len(), 2);
        drop(first);
        drop(second);
        transport.shutdown().await;
    });
    assert!(d.run_containers(&run, false).is_empty(), "none running");
    assert_eq!(d.run_containers(&run, true).len(), 2, "kept, as asked");
    for name in d.run_containers(&run, true) {
        d.docker_ok(&["rm", "-f", &name]);
    }
}

#[test]
fn sigint_while_containers_are_still_starting_leaves_none() {
    let d = engine();
    let run = run_id("early");
    let cfg = config(&d, "stop_grace = \"5s\"", "[\"serve\"]", "", 12, "");
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    // Interrupt as soon as the first container runs: the others are being created,
    // attached or started, and those starts are cancelled.
    running.expect_lines("DEBUG distarch: started", 1, LIMIT);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    assert!(
        d.run_containers(&run, true).is_empty(),
        "left: {:?}\n{out}",
        d.run_containers(&run, true)
    );
}

#[test]
fn the_docker_example_runs_as_documented() {
    let d = engine();
    let root = repo_root();
    let build = std::process::Command::new(root.join("examples/build-docker-image.sh"))
        .arg(example_worker_bin())
        .env("DOCKER_HOST", d.host())
        .output()
        .expect("run examples/build-docker-image.sh");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let config = root.join("examples/docker.toml").display().to_string();
    let out = Distarch::new().env("DOCKER_HOST", &d.host()).run(
        &["launch", "-c", &config, "--max-running-time", "2s"],
        LIMIT,
    );
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(
        "[boxed] [docker] [3/3] INFO I am instance 3 (3/3 of group boxed) on docker, restart 0",
    );
    out.assert_has("[boxed] [docker] [1/1] INFO message: Hello from a container!");
    out.assert_count("ended after a stop request: exit code 0", 3);
}

#[test]
fn the_next_launch_removes_what_a_killed_master_left() {
    let d = own_engine();
    let run = run_id("left");
    let stubborn = config(
        &d,
        "",
        "[\"echo up; exec sleep 3600\"]",
        "",
        2,
        ", entrypoint = [\"/bin/sh\", \"-c\"], end_with_master = false",
    );
    let dist = Distarch::new().config(&stubborn);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO up", 2, LIMIT);
    // The reaper would run gc itself: this test is about what gc alone cleans.
    distarch_e2e::procs::kill_reaper_of(running.pid());
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    assert_eq!(d.run_containers(&run, false).len(), 2, "they keep running");
    // Any later launch against the engine collects them, even a short one.
    let next = config(&d, "", "[\"hello\"]", "", 1, "");
    let out = Distarch::new().config(&next).run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        d.run_containers(&run, true).is_empty(),
        "left: {:?}",
        d.run_containers(&run, true)
    );
}

#[test]
fn workdir_user_env_and_volumes_reach_the_container() {
    let d = engine();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("note.txt"), "from the host\n").unwrap();
    let extra = format!(
        ", entrypoint = [\"/bin/sh\", \"-c\"], workdir = \"/tmp\", user = \"65534:65534\", env = {{ COLOUR = \"blue\" }}, volumes = [{v}]",
        v = toml_str(format!("{}:/shared:ro", shared.path().display()))
    );
    let cfg = config(
        &d,
        "",
        "[\"echo dir=$(pwd) uid=$(id -u) colour=$COLOUR id=$DISTARCH_ID; cat /shared/note.txt; touch /shared/x || echo read-only\"]",
        "env = { COLOUR = \"red\" }",
        1,
        &extra,
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("INFO dir=/tmp uid=65534 colour=blue id=1");
    out.assert_has("INFO from the host");
    out.assert_has("WARN touch: /shared/x: Read-only file system");
    out.assert_has("INFO read-only");
}

/// The numbers of the `INFO line N` lines of `out`, in order.
fn numbered_lines(out: &Output) -> Vec<u64> {
    out.stdout
        .lines()
        .filter_map(|l| l.split_once("INFO line ").map(|(_, n)| n.trim()))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// A printing worker whose connection to the engine drops for 0.3 s: its output
/// is not lost (what it printed meanwhile is read back from the container's log,
/// once, in order), and it is reported lost at once with the reason, since the
/// engine closed its stdin with the attach.
#[test]
fn an_engine_connection_blip_loses_no_output_and_reports_the_instance_lost() {
    let d = engine();
    let proxy = SocketProxy::start(&d.socket());
    let run = run_id("blip");
    let cfg = format!(
        "[launcher]\nmax_running_time = \"40s\"\n[groups.g]\ncommand = [{script}]\nplacements.box = {{ transport = \"docker\", image = \"{IMAGE}\", host = {h}, network = \"none\", instances = 1, entrypoint = [\"/bin/sh\", \"-c\"] }}\n",
        script = toml_str("i=0; trap 'echo \"term after $i\"; exit 0' TERM; while :; do i=$((i+1)); echo \"line $i\"; sleep 0.05; done"),
        h = toml_str(proxy.host()),
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO line 20", 1, LIMIT);
    proxy.blip(Duration::from_millis(300));
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 1, "a lost instance is a failure\n{out}");
    out.assert_has(&format!(
        "lost: the connection to the docker engine at {} dropped",
        proxy.host()
    ));
    out.assert_has("the engine closed the worker's stdin, so the container was stopped; it then ended: exit code 0");
    let lines = numbered_lines(&out);
    let expected: Vec<u64> = (1..=lines.len() as u64).collect();
    assert_eq!(lines, expected, "every line once, in order\n{out}");
    assert!(lines.len() > 20, "{out}");
    out.assert_has(&format!("INFO term after {}", lines.len()));
    assert!(
        !out.stdout.contains("max running time"),
        "reported at once, not at the end of the run\n{out}"
    );
    assert!(d.run_containers(&run, true).is_empty(), "{out}");
}

/// The same blip under an SDK worker: it reads the end of its stdin (the engine
/// closes it with the attach) and exits at once, cleanly; what it printed after
/// the drop still arrives (from the container's log) and the instance is lost,
/// not a clean exit.
#[test]
fn an_engine_connection_blip_under_an_sdk_worker_is_lost_not_a_clean_exit() {
    let d = engine();
    let proxy = SocketProxy::start(&d.socket());
    let run = run_id("sdkblip");
    let cfg = format!(
        "[launcher]\nmax_running_time = \"40s\"\n[groups.g]\ncommand = [\"/example-worker\"]\nplacements.box = {{ transport = \"docker\", image = \"{IMAGE}\", host = {h}, network = \"none\", instances = 1, entrypoint = [] }}\n",
        h = toml_str(proxy.host()),
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("DEBUG distarch: ready", 1, LIMIT);
    proxy.blip(Duration::from_millis(300));
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_has("the master is gone");
    out.assert_has(&format!(
        "ended: lost: the connection to the docker engine at {} dropped",
        proxy.host()
    ));
    assert!(d.run_containers(&run, true).is_empty(), "{out}");
}

/// Chaos: the engine is restarted mid-run (same data root). Its containers are
/// stopped with it; every instance is reported lost with the reason, restarted
/// per its policy on the engine that came back, and nothing is left behind.
#[test]
fn an_engine_restart_mid_run_reports_instances_lost_and_restarts_them() {
    let mut d = own_engine();
    let run = run_id("restart");
    let cfg = config(
        &d,
        "stop_grace = \"5s\"",
        "[\"/example-worker\"]",
        "restart = \"on-failure\"\nbackoff = { initial = \"100ms\", factor = 1.0, jitter = 0.0 }",
        2,
        ", entrypoint = []",
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO I am instance", 2, LIMIT);
    d.restart();
    // Reported lost either way dockerd's shutdown was seen: the engine stopping
    // answering as the container ended, or an attach that dropped first.
    running.expect_lines("ended: lost: the ", 2, LIMIT);
    running.expect_lines("on docker, restart 1", 2, LIMIT);
    assert_eq!(d.run_containers(&run, false).len(), 2);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    out.assert_count("ended: lost: the ", 2);
    assert!(
        d.run_containers(&run, true).is_empty(),
        "left: {:?}\n{out}",
        d.run_containers(&run, true)
    );
}

/// Zero orphans: 10 s after a SIGKILL of the master, no container of its run is
/// still running, neither an SDK worker's nor a plain program's (`sleep 300`,
/// which never reads stdin: the stdin watcher ends it).
#[test]
fn sigkill_of_the_master_ends_plain_and_sdk_containers_within_10s() {
    let d = own_engine();
    let run = run_id("orphans");
    let cfg = format!(
        "[groups.sdk]\ncommand = [\"/example-worker\"]\nplacements.box = {}\n[groups.plain]\ncommand = [\"sleep\", \"300\"]\nplacements.box = {}\n",
        placement(&d, 2, ", entrypoint = []"),
        placement(&d, 2, ", entrypoint = []"),
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("DEBUG distarch: started", 4, LIMIT);
    running.expect_lines("INFO I am instance", 2, LIMIT);
    assert_eq!(d.run_containers(&run, false).len(), 4);
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    let killed = std::time::Instant::now();
    let gone = d.wait_no_containers(
        &[&format!("distarch.run={run}")],
        false,
        Duration::from_secs(10),
    );
    println!(
        "containers running after the master's SIGKILL: gone after {:?}",
        killed.elapsed()
    );
    assert!(
        gone,
        "still running 10 s after the master was killed: {:?}",
        d.run_containers(&run, false)
    );
}

/// An image without a shell (built from scratch: one static binary) cannot run the
/// stdin watcher: the container runs its command as it is.
#[test]
fn an_image_without_a_shell_runs_its_command_unwrapped() {
    let d = engine();
    let tag = "distarch-test/noshell:1";
    ImageBuilder::new(tag)
        .binary(&test_worker_bin(), "/worker")
        .entrypoint(&["/worker"])
        .build(&d);
    let cfg = format!(
        "[groups.g]\ncommand = [\"hello\"]\nplacements.box = {{ transport = \"docker\", image = \"{tag}\", host = {h}, network = \"none\", instances = 2 }}\n",
        h = toml_str(d.host())
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_count("INFO hello id=", 2);
}
