//! End-to-end tests of `distarch launch` / `distarch gc` with the kubernetes
//! transport, through the built binary and a kubeconfig. They run against the test
//! API server (tests/kube-apiserver), which runs each pod as a container on a
//! private dockerd; and the same checks run against a real cluster when
//! `KUBECONFIG` points at a reachable one (see `real_cluster_suite`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

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

const LIMIT: Duration = Duration::from_secs(120);
/// `/worker` = the test worker (entrypoint), `/example-worker` = the SDK example.
const IMAGE: &str = "distarch-test/worker:1";

/// The shared engine, with the test image built.
fn engine() -> Arc<Dockerd> {
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

fn run_id(name: &str) -> String {
    format!("{name}{}", std::process::id() % 100_000)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The pods of run `run` on `t`.
fn pods_of_run(t: &KubeTarget, run: &str) -> Vec<Pod> {
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
fn owner_of_run(t: &KubeTarget, run: &str) -> Option<ConfigMap> {
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

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn label<'a>(p: &'a Pod, key: &str) -> &'a str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or("")
}

/// Waits until the run has no pod and no owner object left.
fn assert_run_gone(t: &KubeTarget, run: &str) {
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
fn check_identity_labels_and_clean_stop(t: &KubeTarget) {
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
            .and_then(|d| d.get("master_pid"))
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
fn check_exit_codes_and_restarts(t: &KubeTarget) {
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
fn check_stop_escalation(t: &KubeTarget) {
    let run = run_id("kst");
    let cfg = format!(
        "[launcher]\nmax_running_time = \"3s\"\nstop_grace = \"1s\"\nkill_after = \"2s\"\n[groups.g]\ncommand = [\"/worker\", \"ignore-stop\"]\nplacements.k8s = {}\n",
        t.placement(1, "")
    );
    let started = std::time::Instant::now();
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
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
fn check_terminate_delivers_sigterm(t: &KubeTarget) {
    let run = run_id("ktm");
    let cfg = format!(
        "[launcher]\nmax_running_time = \"2s\"\nstop_grace = \"1s\"\nkill_after = \"30s\"\n[groups.g]\ncommand = [\"/bin/sh\", \"-c\", \"trap 'echo got TERM; exit 3' TERM; echo up; while true; do sleep 0.1; done\"]\nplacements.k8s = {}\n",
        t.placement(1, "")
    );
    let started = std::time::Instant::now();
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    out.assert_has("INFO up");
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

/// `output = "attach"`: stdout and stderr come apart over the attach stream
/// (stderr lines are `warn`), and stdin carries the stop frame.
fn check_attach_output(t: &KubeTarget) {
    let run = run_id("kat");
    let cfg = format!(
        "[launcher]\nmax_running_time = \"3s\"\nstop_grace = \"10s\"\n[groups.g]\ncommand = [\"/bin/sh\", \"-c\", \"sleep 1; echo to-stdout; echo to-stderr >&2; read line; echo got-a-line; exit 0\"]\nplacements.k8s = {}\n",
        t.placement(1, ", output = \"attach\"")
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("INFO to-stdout");
    out.assert_has("WARN to-stderr");
    out.assert_has("INFO got-a-line");
    out.assert_has("exit code 0");
    assert_run_gone(t, &run);
}

/// The master is SIGKILLed: its attach connections drop, so the workers see stdin
/// EOF and end; `distarch gc` then deletes the run's owner and pods.
fn check_master_sigkill_then_gc(t: &KubeTarget) {
    let run = run_id("kgc");
    let cfg = format!(
        "[groups.g]\ncommand = [\"/example-worker\"]\nplacements.k8s = {}\n",
        t.placement(2, "")
    );
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("distarch: ready", 2, LIMIT);
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

// ---------------------------------------------------------------------------
// Against the test API server.
// ---------------------------------------------------------------------------

#[test]
fn identity_labels_and_clean_stop() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    check_identity_labels_and_clean_stop(&t);
    let (_, by) = t.server.as_ref().expect("fake").requests();
    // No polling: one watch for the run, a fixed handful of requests per pod
    // (the test's own lists and gets of the run are counted apart).
    let n = |k: &str| by[k].as_u64().unwrap_or(0);
    assert_eq!(n("watch pods"), 1, "{by}");
    assert_eq!(n("create pods"), 3, "{by}");
    assert_eq!(n("create pods/attach"), 3, "{by}");
    assert_eq!(n("get pods/log"), 3, "{by}");
    assert_eq!(n("delete pods"), 3, "{by}");
    assert_eq!(n("get pods"), 0, "the transport never polls a pod: {by}");
    assert_eq!(n("create configmaps"), 1, "{by}");
    assert_eq!(n("delete configmaps"), 1, "{by}");
}

#[test]
fn exit_codes_and_restarts() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    check_exit_codes_and_restarts(&t);
}

#[test]
fn stop_escalates_to_grace_then_kill() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    check_stop_escalation(&t);
}

#[test]
fn terminate_delivers_sigterm_with_the_grace() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    check_terminate_delivers_sigterm(&t);
}

#[test]
fn attach_output_keeps_stderr_apart() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    check_attach_output(&t);
}

#[test]
fn an_overloaded_api_server_is_waited_for() {
    // The first 6 creates and deletes answer 429 with Retry-After: the client backs
    // off as the server says and every pod still starts and goes.
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &["--throttle", "6"]);
    let run = run_id("kth");
    let cfg = format!(
        "[groups.g]\ncommand = [\"/worker\", \"hello\"]\nplacements.k8s = {}\n",
        t.placement(3, "")
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_count("hello id=", 3);
    let (_, by) = t.server.as_ref().expect("fake").requests();
    let throttled: u64 = by
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("throttled "))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(throttled, 6, "{by}");
    assert_run_gone(&t, &run);
}

#[test]
fn the_placement_context_picks_cluster_and_default_namespace() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    let server = t.server.as_ref().expect("fake");
    // Two contexts on the same server: the current one points at a dead port, the
    // placement's one at the server, with kube-system as its namespace.
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:1\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: broken\n  context:\n    cluster: dead\n    user: u\n- name: sys\n  context:\n    cluster: fake\n    user: u\n    namespace: kube-system\ncurrent-context: broken\nusers:\n- name: u\n  user: {{}}\n",
        server.url()
    );
    let run = run_id("kcx");
    let dir = Distarch::new().file("kubeconfig", &kc);
    let cfg = format!(
        "[groups.g]\ncommand = [\"/worker\", \"hello\"]\nplacements.k8s = {{ transport = \"kubernetes\", image = \"{IMAGE}\", kubeconfig = {}, context = \"sys\", instances = 1 }}\n",
        toml_str(dir.path("kubeconfig").display().to_string())
    );
    let out = dir.config(&cfg).run(&["launch", "--run-id", &run], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(&format!("(pod kube-system/distarch-{run}-g-1)"));
    out.assert_has("[g] [sys] [1/1]");
    out.assert_has("host=sys");
}

#[test]
fn master_sigkill_leaves_no_running_pod_after_gc() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    check_master_sigkill_then_gc(&t);
    let run = run_id("kgc");
    assert!(
        d.wait_no_containers(
            &[&format!("distarch.run={run}")],
            true,
            Duration::from_secs(30)
        ),
        "containers of the run left"
    );
}

#[test]
fn mixed_group_local_docker_kubernetes() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
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
        k8s[0].contains("host=default") && k8s[0].contains("params={\"n\":7}"),
        "{out}"
    );
    assert_run_gone(&t, &run);
}

#[test]
fn clear_errors_for_images_namespaces_scheduling_and_rbac() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    let run = run_id("ker");
    let kc = toml_str(t.kubeconfig_str());
    let cfg = format!(
        "[groups.img]\ncommand = [\"/worker\"]\nplacements.k = {{ transport = \"kubernetes\", image = \"nope/missing:1\", kubeconfig = {kc}, instances = 1 }}\n\
         [groups.ns]\ncommand = [\"/worker\"]\nplacements.k = {{ transport = \"kubernetes\", image = \"{IMAGE}\", kubeconfig = {kc}, namespace = \"nope\", instances = 1 }}\n\
         [groups.sched]\ncommand = [\"/worker\"]\nplacements.k = {{ transport = \"kubernetes\", image = \"{IMAGE}\", kubeconfig = {kc}, node_selector = {{ disk = \"ssd\" }}, pending_timeout = \"1s\", instances = 1 }}\n"
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    assert_ne!(out.code, 0, "{out}");
    out.assert_has(&format!("pod default/distarch-{run}-img-1 cannot start its container: ErrImagePull: failed to pull and unpack image \"nope/missing:1\""));
    out.assert_has(&format!(
        "namespace \"nope\" does not exist on {}",
        t.server.as_ref().expect("fake").url()
    ));
    out.assert_has(&format!("pod default/distarch-{run}-sched-3 cannot be scheduled: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."));
    assert_run_gone(&t, &run);

    let denied = KubeTarget::fake(&d, IMAGE, &["--forbid", "create:pods"]);
    let cfg = format!(
        "[groups.g]\ncommand = [\"/worker\"]\nplacements.k = {}\n",
        denied.placement(1, "")
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_ne!(out.code, 0, "{out}");
    out.assert_has(
        "forbidden: the Kubernetes account may not create pods in namespace \"default\"",
    );
    out.assert_has("grant RBAC verb \"create\" on resource \"pods\"");
}

// ---------------------------------------------------------------------------
// Against a real cluster.
// ---------------------------------------------------------------------------

#[test]
fn real_cluster_suite() {
    let t = match KubeTarget::real() {
        Ok(t) => t,
        Err(why) => {
            println!("skipping the real-cluster Kubernetes tests: {why}");
            return;
        }
    };
    println!(
        "running the Kubernetes checks against the cluster of {}",
        t.kubeconfig_str()
    );
    check_identity_labels_and_clean_stop(&t);
    check_exit_codes_and_restarts(&t);
    check_stop_escalation(&t);
    check_terminate_delivers_sigterm(&t);
    check_attach_output(&t);
    check_master_sigkill_then_gc(&t);
}

// ---------------------------------------------------------------------------
// The test API server itself answers as the API reference says.
// ---------------------------------------------------------------------------

#[test]
fn test_api_server_follows_the_reference() {
    use k8s_openapi::api::core::v1::Event;
    use kube::api::{DeleteParams, PostParams};
    use serde_json::json;
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    block_on(async {
        let key = ClusterKey {
            kubeconfig: Some(t.kubeconfig.clone()),
            context: None,
            in_cluster: false,
        };
        let c = connect(&key, 50.0, 100).await.expect("cluster");
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let events: Api<Event> = Api::namespaced(c.client.clone(), "default");

        let owner: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
        let owner = cms
            .create(&PostParams::default(), &owner)
            .await
            .expect("create configmap");
        let uid = owner.metadata.uid.clone().expect("uid");
        let err = cms
            .create(&PostParams::default(), &owner)
            .await
            .expect_err("duplicate");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
            "{err:?}"
        );

        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p1", "labels": {"x": "y"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "worker", "image": IMAGE, "command": ["/worker", "silent"]}]}
        }))
        .unwrap();
        let created = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        assert_eq!(phase(&created), "Pending");
        assert!(created.metadata.resource_version.is_some());
        let running = wait_for_phase(&pods, "p1", "Running").await;
        let cs = &running
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert!(
            cs.ready && cs.state.as_ref().unwrap().running.is_some(),
            "{cs:?}"
        );
        assert_eq!(
            running.spec.as_ref().unwrap().node_name.as_deref(),
            Some("fake-node")
        );

        let err = pods.get("nope").await.expect_err("missing pod");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 404 && s.message == "pods \"nope\" not found"),
            "{err:?}"
        );

        // Deleting the owner cascades: the pod gets the graceful delete (its own
        // grace), SIGTERM is ignored by PID 1 without a handler, SIGKILL after 5 s.
        cms.delete("owner", &DeleteParams::default())
            .await
            .expect("delete owner");
        let deleting = pods.get("p1").await.expect("still terminating");
        assert_eq!(deleting.metadata.deletion_grace_period_seconds, Some(5));
        assert!(deleting.metadata.deletion_timestamp.is_some());
        let gone = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if pods.get_opt("p1").await.expect("get").is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "the owned pod must be deleted");
        let evs = events
            .list(&ListParams::default().fields("involvedObject.name=p1"))
            .await
            .expect("events");
        let reasons: Vec<String> = evs.items.iter().filter_map(|e| e.reason.clone()).collect();
        assert_eq!(
            reasons,
            ["Scheduled", "Pulled", "Created", "Started", "Killing"],
            "{reasons:?}"
        );
    });
}

async fn wait_for_phase(pods: &Api<Pod>, name: &str, want: &str) -> Pod {
    for _ in 0..300 {
        let p = pods.get(name).await.expect("get pod");
        if phase(&p) == want {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pod {name} never reached {want}");
}
