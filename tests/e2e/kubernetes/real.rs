//! The real-cluster suite: every check of checks.rs against a real control plane
//! and kubelet (tests/k8s-cluster, started by the harness), run as the user
//! `distarch` who holds exactly docs/kubernetes-rbac.yaml's Role; plus what only a
//! real cluster shows: one verb less in that Role is reported by name, the
//! controller manager's garbage collector deletes the pods of a deleted owner, and
//! the API server restarted mid-run (with etcd compacted meanwhile, so the resumed
//! watch is answered 410 Gone).

use super::checks::*;
use distarch_e2e::apiserver::KubeTarget;
use distarch_e2e::k8s_cluster::K8sCluster;
use distarch_e2e::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Role distarch documents as sufficient.
const RBAC: &str = include_str!("../../../docs/kubernetes-rbac.yaml");

/// A worker that does not read stdin and prints `tick 0` .. `tick N-1`, 2 a second.
fn ticker(n: u32) -> String {
    format!(
        "[\"/bin/sh\", \"-c\", \"i=0; while [ $i -lt {n} ]; do echo tick $i; i=$((i+1)); sleep 0.5; done\"]"
    )
}

/// Every `tick i` line, for i in 0..n, appears exactly `times` times.
fn assert_ticks(out: &Output, n: u32, times: usize) {
    for i in 0..n {
        let want = format!(" tick {i}");
        let found = out.stdout.lines().filter(|l| l.ends_with(&want)).count();
        assert_eq!(found, times, "line `tick {i}` seen {found} times:\n{out}");
    }
}

pub fn suite() {
    let begun = Instant::now();
    let d = engine();
    let c = K8sCluster::shared();
    c.load_image(&d, IMAGE);
    println!(
        "real cluster ready after {:.1} s",
        begun.elapsed().as_secs_f64()
    );
    let ready = begun.elapsed();
    let t = c.target("dt-main", RBAC, IMAGE);
    // Independent checks, two lanes at once.
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            check_identity_labels_and_clean_stop(&t);
            check_exit_codes_and_restarts(&t);
            check_stop_escalation(&t);
            check_terminate_delivers_sigterm(&t);
            check_owner_garbage_collection(&c);
        });
        let b = s.spawn(|| {
            check_attach_output(&t);
            check_master_sigkill_then_gc(&t);
            check_mixed_group(&t, &d);
            check_clear_errors(&t);
            check_one_verb_less_is_named(&c);
        });
        let (ra, rb) = (a.join(), b.join());
        if let Err(p) = ra.and(rb) {
            std::panic::resume_unwind(p);
        }
    });
    // A fault of the whole cluster, alone.
    check_apiserver_restart_and_expired_watch(&t, &c);
    let times = format!(
        "real-cluster suite (tests/e2e/kubernetes.rs): cluster up in {:.1} s, suite passed in {:.1} s\n",
        ready.as_secs_f64(),
        begun.elapsed().as_secs_f64()
    );
    print!("{times}");
    // scripts/test.sh prints it (cargo test keeps a passing test's output).
    let _ = std::fs::write(repo_root().join("target/k8s-cluster/last-suite.txt"), times);
}

/// The Role without one verb on one resource: the run fails, and says which verb on
/// which resource is missing.
fn check_one_verb_less_is_named(c: &Arc<K8sCluster>) {
    let cases = [
        (
            "dt-nowatch",
            "resources: [\"pods\"]\n    verbs: [\"create\", \"get\", \"list\", \"watch\", \"delete\"]",
            "resources: [\"pods\"]\n    verbs: [\"create\", \"get\", \"list\", \"delete\"]",
            "watch",
            "pods",
        ),
        (
            "dt-noattach",
            "resources: [\"pods/attach\"]\n    verbs: [\"create\", \"get\"]",
            "resources: [\"pods/attach\"]\n    verbs: [\"create\"]",
            "get",
            "pods/attach",
        ),
    ];
    for (ns, full, less, verb, resource) in cases {
        let rbac = RBAC.replace(full, less);
        assert_ne!(rbac, RBAC, "the manifest has the rule `{full}`");
        let t = c.target(ns, &rbac, IMAGE);
        let cfg = format!(
            "[launcher]\nstop_grace = \"2s\"\n[groups.g]\ncommand = [\"/bin/sh\", \"-c\", \"sleep 30\"]\nplacements.k = {}\n",
            t.placement(1, ", start_timeout = \"60s\"")
        );
        let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
        assert_ne!(out.code, 0, "{out}");
        out.assert_has(&format!(
            "forbidden: the Kubernetes account may not {verb} {resource} in namespace \"{ns}\""
        ));
        out.assert_has(&format!(
            "grant RBAC verb \"{verb}\" on resource \"{resource}\""
        ));
    }
}

/// Deleting a run's owner ConfigMap makes the controller manager's garbage
/// collector delete its pods (they carry an owner reference to it); the master
/// reports each instance lost, deleted by someone else.
fn check_owner_garbage_collection(c: &Arc<K8sCluster>) {
    let t = c.target("dt-gc", RBAC, IMAGE);
    let run = run_id("kog");
    let cfg = format!(
        "[launcher]\nkill_after = \"2s\"\n[groups.g]\ncommand = [\"/example-worker\"]\nplacements.k8s = {}\n",
        t.placement(2, "")
    );
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("distarch: ready", 2, LIMIT);
    c.kubectl_ok(&[
        "delete",
        "configmap",
        &format!("distarch-{run}"),
        "-n",
        &t.namespace,
        "--wait=false",
    ]);
    let collected = wait_until(Duration::from_secs(60), || pods_of_run(&t, &run).is_empty());
    assert!(
        collected,
        "the garbage collector must delete the pods of a deleted owner: {:?}\n{}",
        pods_of_run(&t, &run)
            .iter()
            .map(|p| (p.metadata.name.clone(), phase(p)))
            .collect::<Vec<_>>(),
        c.log_tail("kube-controller-manager", 20)
    );
    let out = running.wait(LIMIT);
    out.assert_count("was deleted by someone else", 2);
    assert_run_gone(&t, &run);
}

/// The API server stops mid-run, etcd's history is compacted while it is down, and
/// it starts again: every connection of the master dropped, and the pod watch
/// resumed from a resourceVersion that is gone (410). Workers that do not read
/// stdin run on; their output is followed again without a line lost or repeated,
/// the watch re-lists and sees them end.
fn check_apiserver_restart_and_expired_watch(t: &KubeTarget, c: &Arc<K8sCluster>) {
    let run = run_id("krt");
    let n = 60;
    let cfg = format!(
        "[groups.g]\ncommand = {}\nplacements.k8s = {}\n",
        ticker(n),
        t.placement(2, "")
    );
    let d = Distarch::new().config(&cfg);
    let mut running = d.spawn(&["launch", "--run-id", &run]);
    running.expect_lines(" tick 4", 2, LIMIT);
    let lists = |c: &K8sCluster| {
        c.user_requests()
            .get(&("list".to_string(), "pods".to_string()))
            .copied()
            .unwrap_or(0)
    };
    let lists_before = lists(c);
    let down = Instant::now();
    c.restart_apiserver_with(|| c.compact_etcd());
    println!(
        "API server down and up again in {:.1} s",
        down.elapsed().as_secs_f64()
    );
    let out = running.wait(Duration::from_secs(180));
    assert_eq!(out.code, 0, "{out}");
    assert_ticks(&out, n, 2);
    out.assert_count("distarch: ended: exit code 0", 2);
    // The watch resumed from a compacted resourceVersion: the server answered 410
    // Gone (in the watch stream), so the master listed the run's pods again (the
    // audit log of its user has the list).
    let relisted = lists(c) - lists_before;
    assert!(
        relisted >= 1,
        "the expired watch must lead to a re-list (audit log: {:?})",
        c.user_requests()
    );
    assert_run_gone(t, &run);
}
