//! End-to-end tests of `distarch launch` / `distarch gc` with the kubernetes
//! transport, through the built binary and a kubeconfig. The checks (kubernetes/
//! checks.rs) run against the test API server (tests/kube-apiserver, which runs each
//! pod as a container on a private dockerd and can inject faults), and against a
//! real cluster built from the Kubernetes Go modules (tests/k8s-cluster: etcd, API
//! server, controller manager, scheduler, kubelet with containerd), as the user
//! `distarch` holding only docs/kubernetes-rbac.yaml's Role (`real_cluster_suite`,
//! with the checks only a real cluster can make in kubernetes/real.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

#[path = "kubernetes/checks.rs"]
mod checks;
#[path = "kubernetes/real.rs"]
mod real;

use checks::*;
use distarch_e2e::apiserver::KubeTarget;
use distarch_e2e::*;
use distarch_transport_kubernetes::{connect, ClusterKey};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::ListParams;
use kube::Api;
use std::time::Duration;

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
    // Pods reported running 1.5 s after their container started, as a real kubelet
    // does (later than that under load): the worker's start is written before the
    // attach can connect.
    let t = KubeTarget::fake(&d, IMAGE, &["--running-lag", "1500"]);
    check_attach_output(&t);
}

#[test]
fn attach_output_of_a_worker_that_ended_before_the_attach_comes_from_its_log() {
    // The worker has ended before its pod is reported running: there is nothing to
    // attach to, its output is all in the log.
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &["--running-lag", "1500"]);
    let run = run_id("kae");
    let cfg = format!(
        "[groups.g]\ncommand = [\"/bin/sh\", \"-c\", \"echo quick-out; echo quick-err >&2; exit 3\"]\nplacements.k8s = {}\n",
        t.placement(1, ", output = \"attach\"")
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    out.assert_count("INFO quick-out", 1);
    out.assert_count("INFO quick-err", 1);
    out.assert_count("exit code 3", 1);
    assert_run_gone(&t, &run);
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
fn expired_watches_are_relisted() {
    // Fault injection: every watch ends with 410 Gone after 1 s. The master re-lists
    // each time and still follows every pod to its end.
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &["--expire-watches", "1"]);
    let run = run_id("kex");
    let cfg = format!(
        "[groups.g]\ncommand = [\"/bin/sh\", \"-c\", \"for i in 0 1 2 3 4 5 6 7; do echo tick $i; sleep 0.5; done; exit 4\"]\nplacements.k8s = {}\n",
        t.placement(2, "")
    );
    let out = Distarch::new()
        .config(&cfg)
        .run(&["launch", "--run-id", &run], LIMIT);
    for i in 0..8 {
        out.assert_count(&format!("INFO tick {i}"), 2);
    }
    out.assert_count("exit code 4", 2);
    let (_, by) = t.server.as_ref().expect("fake").requests();
    let n = |k: &str| by[k].as_u64().unwrap_or(0);
    assert!(n("expired watch pods") >= 2, "{by}");
    assert!(n("list pods") >= 3, "a 410 must lead to a re-list: {by}");
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
    check_mixed_group(&t, &d);
}

#[test]
fn clear_errors_for_images_namespaces_scheduling_and_rbac() {
    let d = engine();
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    check_clear_errors(&t);

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
    real::suite();
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
