//! The checks of the Kubernetes end-to-end tests, each run against a target: the
//! test API server (tests/kube-apiserver) or the real cluster (tests/k8s-cluster).
//! Each one runs the `distarch` binary and looks at the result through the API.

use distarch_e2e::apiserver::KubeTarget;
use distarch_e2e::dockerd::Dockerd;
use distarch_e2e::image::ImageBuilder;
use distarch_e2e::*;
use distarch_transport_kubernetes::{connect, ClusterKey};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::ListParams;
use kube::Api;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one run may take.
pub const LIMIT: Duration = Duration::from_secs(120);
/// `/worker` = the test worker (entrypoint), `/example-worker` = the SDK example.
pub const IMAGE: &str = "distarch-test/worker:1";

/// The shared engine, with the test image built.
pub fn engine() -> Arc<Dockerd> {
    static BUILD: Mutex<()> = Mutex::new(());
    let d = Dockerd::shared();
    let _one = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if !d.docker(&["image", "inspect", IMAGE]).status.success() {
        ImageBuilder::new(IMAGE)
            .binary(&test_worker_bin(), "/worker")
            .binary(&example_worker_bin(), "/example-worker")
            .busybox()
            .entrypoint(&["/worker"])
            .build(&d);
    }
    d
}

pub fn run_id(name: &str) -> String {
    format!("{name}{}", std::process::id() % 100_000)
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The pods of run `run` on `t`.
pub fn pods_of_run(t: &KubeTarget, run: &str) -> Vec<Pod> {
    block_on(async {
        let key = ClusterKey {
            kubeconfig: Some(t.kubeconfig.clone()),
            context: None,
            in_cluster: false,
        };
        let c = connect(&key, 50.0, 100).await.expect("cluster");
        let api: Api<Pod> = Api::namespaced(c.client, &t.namespace);
        api.list(&ListParams::default().labels(&format!("distarch.run={run}")))
            .await
            .expect("list pods")
            .items
    })
}

/// The owner ConfigMap of run `run`, if it exists.
pub fn owner_of_run(t: &KubeTarget, run: &str) -> Option<ConfigMap> {
    block_on(async {
        let key = ClusterKey {
            kubeconfig: Some(t.kubeconfig.clone()),
            context: None,
            in_cluster: false,
        };
        let c = connect(&key, 50.0, 100).await.expect("cluster");
        let api: Api<ConfigMap> = Api::namespaced(c.client, &t.namespace);
        api.get_opt(&format!("distarch-{run}"))
            .await
            .expect("get configmap")
    })
}

pub fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

pub fn label<'a>(p: &'a Pod, key: &str) -> &'a str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or("")
}

/// Waits until the run has no pod and no owner object left.
pub fn assert_run_gone(t: &KubeTarget, run: &str) {
    let gone = wait_until(Duration::from_secs(60), || {
        pods_of_run(t, run).is_empty() && owner_of_run(t, run).is_none()
    });
    assert!(
        gone,
        "pods of run {run} left: {:?}",
        pods_of_run(t, run)
            .iter()
            .map(|p| (p.metadata.name.clone(), phase(p)))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// Checks, run against a target (the test API server or a real cluster).
// ---------------------------------------------------------------------------

/// Ids, group size and params inside pods; labelled logs; pod labels and owner;
/// a clean stop on SIGINT leaves nothing behind.
pub fn check_identity_labels_and_clean_stop(t: &KubeTarget) {
    let run = run_id("kid");
    let cfg = format!(
        "[launcher]\nstop_grace = \"10s\"\n[groups.g]\ncommand = [\"/example-worker\"]\nparams = {{ message = \"Hello k8s\" }}\nplacements.k8s = {}\n",
        t.placement(3, "")
    );
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("distarch: ready", 3, LIMIT);
    let pods = pods_of_run(t, &run);
    assert_eq!(pods.len(), 3, "{pods:#?}");
    let mut ids: Vec<String> = pods
        .iter()
        .map(|p| label(p, "distarch.id").to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["1", "2", "3"]);
    for p in &pods {
        assert_eq!(phase(p), "Running");
        assert_eq!(label(p, "distarch.group"), "g");
        assert_eq!(label(p, "app.kubernetes.io/managed-by"), "distarch");
        assert_eq!(label(p, "app.kubernetes.io/instance"), run);
        let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ConfigMap", format!("distarch-{run}").as_str())
        );
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.containers[0].stdin, Some(true));
        assert_eq!(spec.containers[0].stdin_once, Some(true));
    }
    let owner = owner_of_run(t, &run).expect("the run's owner object exists while it runs");
    assert_eq!(
        owner
            .data
            .as_ref()
            .and_then(|d| d.get("distarch.master.pid"))
            .map(String::as_str),
        Some(running.pid().to_string().as_str())
    );
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, distarch_core::EXIT_INTERRUPTED, "{out}");
    for i in 1..=3 {
        let line = format!(
            "[g] [{}] [{i}/{i}] INFO I am instance {i} ({i}/3 of group g)",
            t.namespace
        );
        out.assert_has(&line);
    }
    out.assert_count("INFO message: Hello k8s", 3);
    out.assert_count("ended after a stop request: exit code 0", 3);
    assert_run_gone(t, &run);
}

/// Exit codes come from the container status; a restart gets a fresh pod.
pub fn check_exit_codes_and_restarts(t: &KubeTarget) {
    let run = run_id("krs");
    let cfg = format!(
        "[groups.g]\ncommand = [\"/worker\", \"fail-until\", \"2\"]\nrestart = \"on-failure\"\nmax_restarts = 5\nbackoff = {{ initial = \"100ms\", max = \"200ms\" }}\nplacements.k8s = {}\n",
        t.placement(1, "")
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("failing at restart 0");
    out.assert_has("failing at restart 1");
    out.assert_has("succeeded at restart 2");
    out.assert_count("exit code 1", 2);
    out.assert_has(&format!("(pod {}/distarch-{run}-g-1-r2)", t.namespace));
    assert_run_gone(t, &run);
}

/// A worker that ignores the stop frame and SIGTERM: the pod is deleted with the
/// grace period, then SIGKILLed (by the grace or a forced delete).
pub fn check_stop_escalation(t: &KubeTarget) {
    let run = run_id("kst");
    let cfg = format!(
        "[launcher]\nstop_grace = \"1s\"\nkill_after = \"2s\"\n[groups.g]\ncommand = [\"/worker\", \"ignore-stop\"]\nplacements.k8s = {}\n",
        t.placement(1, "")
    );
    // Stop once the worker runs and has spoken the protocol (a real pod may take
    // seconds to start; stopped before its first frame, it would be stopped as a
    // plain program, with SIGTERM, and never get the stop frame it ignores).
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO serving", 1, LIMIT);
    let started = std::time::Instant::now();
    running.signal("INT");
    let out = running.wait(LIMIT);
    out.assert_has("ignoring stop");
    let killed = out.stdout.contains("exit code 137") || out.stdout.contains("signal 9");
    assert!(killed, "the worker must end by SIGKILL:\n{out}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stop took {:?}",
        started.elapsed()
    );
    assert_run_gone(t, &run);
}

/// A worker that ignores the stop frame but handles SIGTERM: terminate (a delete
/// with the grace period) delivers SIGTERM, and its exit code comes back.
pub fn check_terminate_delivers_sigterm(t: &KubeTarget) {
    let run = run_id("ktm");
    let cfg = format!(
        "[launcher]\nstop_grace = \"1s\"\nkill_after = \"30s\"\n[groups.g]\ncommand = [\"/bin/sh\", \"-c\", \"trap 'echo got TERM; exit 3' TERM; echo up; while true; do sleep 0.1; done\"]\nplacements.k8s = {}\n",
        t.placement(1, "")
    );
    // Stop once it runs (a real pod may take seconds to start).
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO up", 1, LIMIT);
    let started = std::time::Instant::now();
    running.signal("INT");
    let out = running.wait(LIMIT);
    out.assert_has("INFO got TERM");
    out.assert_has("exit code 3");
    // Well before kill_after: SIGTERM came with the graceful delete, not a SIGKILL.
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "took {:?}\n{out}",
        started.elapsed()
    );
    assert_run_gone(t, &run);
}

/// `output = "attach"`: a worker that speaks the protocol from its first byte
/// (`hello` and `ready` frames, a stdout and a stderr line, written before the
/// attach can have connected: a real kubelet reports the container running only
/// after it started) is seen from its start (taken from the log, stderr among it as
/// `info`); once stdin carried the stop frame (Ctrl-C; so the attach is connected),
/// its stderr line is `warn`, its stdout line `info` and its `status` frame is shown.
pub fn check_attach_output(t: &KubeTarget) {
    let run = run_id("kat");
    let worker = "printf '\\\\036{\\\"type\\\":\\\"hello\\\",\\\"protocol\\\":1}\\\\n'; \
                  printf '\\\\036{\\\"type\\\":\\\"ready\\\"}\\\\n'; \
                  echo early-out; echo early-err >&2; read line; \
                  echo late-err >&2; \
                  printf '\\\\036{\\\"type\\\":\\\"status\\\",\\\"text\\\":\\\"stopping now\\\"}\\\\n'; \
                  echo late-out; exit 0";
    let cfg = format!(
        "[launcher]\nstop_grace = \"20s\"\n[groups.g]\ncommand = [\"/bin/sh\", \"-c\", \"{worker}\"]\nplacements.k8s = {}\n",
        t.placement(2, ", output = \"attach\"")
    );
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    // Stopped (stop frames on stdin) once both are seen ready, however long their
    // pods took to start.
    running.expect_lines("distarch: ready", 2, LIMIT);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    out.assert_count("distarch: ready", 2);
    out.assert_count(" early-out", 2);
    out.assert_count(" early-err", 2);
    out.assert_count("WARN late-err", 2);
    out.assert_count("INFO distarch: status: stopping now", 2);
    out.assert_count("INFO late-out", 2);
    out.assert_count("ended after a stop request: exit code 0", 2);
    assert_run_gone(t, &run);
}

/// The master is SIGKILLed: its attach connections drop, so the workers see stdin
/// EOF and end; `distarch gc` then deletes the run's owner and pods.
pub fn check_master_sigkill_then_gc(t: &KubeTarget) {
    let run = run_id("kgc");
    let cfg = format!(
        "[groups.g]\ncommand = [\"/example-worker\"]\nplacements.k8s = {}\n",
        t.placement(2, "")
    );
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("distarch: ready", 2, LIMIT);
    // The reaper would run gc itself: this check is about what gc alone cleans.
    distarch_e2e::procs::kill_reaper_of(running.pid());
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    let none_running = wait_until(Duration::from_secs(60), || {
        pods_of_run(t, &run).iter().all(|p| phase(p) != "Running")
    });
    assert!(
        none_running,
        "workers must end on stdin EOF: {:?}",
        pods_of_run(t, &run).iter().map(phase).collect::<Vec<_>>()
    );
    assert!(
        owner_of_run(t, &run).is_some(),
        "nothing but gc removes the owner of a killed master"
    );
    let dry = d.run(&["gc", "--dry-run"], LIMIT);
    assert_eq!(dry.code, 0, "{dry}");
    dry.assert_has(&format!(
        "run {run} in namespace {}: master gone, would delete its owner object and 2 pod(s)",
        t.namespace
    ));
    assert!(owner_of_run(t, &run).is_some(), "a dry run deletes nothing");
    let gc = d.run(&["gc"], LIMIT);
    assert_eq!(gc.code, 0, "{gc}");
    gc.assert_has(&format!(
        "run {run} in namespace {}: master gone, deleted its owner object and 2 pod(s)",
        t.namespace
    ));
    assert_run_gone(t, &run);
}

/// One group with a local, a docker and a kubernetes placement: ids, group size and
/// params are the same everywhere.
pub fn check_mixed_group(t: &KubeTarget, d: &Dockerd) {
    let run = run_id("kmx");
    let cfg = format!(
        "[groups.g]\ncommand = [{w}, \"hello\"]\nparams = {{ n = 7 }}\nplacements.a_here = {{ transport = \"local\", instances = 1 }}\nplacements.b_box = {{ transport = \"docker\", image = \"{IMAGE}\", host = {h}, network = \"none\", command = [\"hello\"], instances = 1 }}\nplacements.c_k8s = {}\n",
        t.placement(1, ", command = [\"/worker\", \"hello\"]"),
        w = toml_str(test_worker_bin().display().to_string()),
        h = toml_str(d.host()),
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    for i in 1..=3 {
        let want = format!("hello id={i} group=g group_id={i} count=3");
        out.assert_count(&want, 1);
    }
    let k8s = out.lines_with("hello id=3 ");
    assert!(
        k8s[0].contains(&format!("host={}", t.namespace)) && k8s[0].contains("params={\"n\":7}"),
        "{out}"
    );
    assert_run_gone(t, &run);
}

/// A missing image, a missing namespace and an unschedulable pod each fail their
/// start with the cluster's reason.
pub fn check_clear_errors(t: &KubeTarget) {
    let run = run_id("ker");
    let kc = toml_str(t.kubeconfig_str());
    let ns = toml_str(&t.namespace);
    let cfg = format!(
        "[groups.img]\ncommand = [\"/worker\"]\nplacements.k = {{ transport = \"kubernetes\", image = \"nope/missing:1\", kubeconfig = {kc}, namespace = {ns}, instances = 1 }}\n\
         [groups.ns]\ncommand = [\"/worker\"]\nplacements.k = {{ transport = \"kubernetes\", image = \"{IMAGE}\", kubeconfig = {kc}, namespace = \"nope\", instances = 1 }}\n\
         [groups.sched]\ncommand = [\"/worker\"]\nplacements.k = {{ transport = \"kubernetes\", image = \"{IMAGE}\", kubeconfig = {kc}, namespace = {ns}, node_selector = {{ disk = \"ssd\" }}, pending_timeout = \"1s\", instances = 1 }}\n"
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_ne!(out.code, 0, "{out}");
    out.assert_has(&format!(
        "pod {}/distarch-{run}-img-1 cannot start its container: ErrImagePull: ",
        t.namespace
    ));
    out.assert_has("nope/missing:1");
    if t.is_fake() {
        out.assert_has(&format!("namespace \"nope\" does not exist on {}", t.url()));
    } else {
        // RBAC answers before existence: the account has no rights in a namespace
        // that does not exist, which is what the real server says.
        out.assert_has("may not create configmaps in namespace \"nope\"");
    }
    out.assert_has(&format!("pod {}/distarch-{run}-sched-3 cannot be scheduled: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.", t.namespace));
    assert_run_gone(t, &run);
}
