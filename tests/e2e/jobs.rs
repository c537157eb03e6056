//! End-to-end tests of job pools (issue 12): `distarch run` and `jobs = { ... }`
//! with the job worker (tests/bin/job_worker.rs) on local processes, and, in
//! jobs/mixed.rs, 100,000 jobs over local processes, two SSH hosts and two
//! containers with workers killed mid-run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::*;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

#[path = "jobs/mixed.rs"]
mod mixed;

const LIMIT: Duration = Duration::from_secs(120);

fn worker() -> String {
    job_worker_bin().display().to_string()
}

/// The JSON lines of a file.
fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Result ids in output order, and result by id; panics on a duplicate id.
fn results(path: &Path) -> (Vec<u64>, HashMap<u64, Value>) {
    let mut order = Vec::new();
    let mut by_id = HashMap::new();
    for v in json_lines(path) {
        let id = v["id"].as_u64().expect("an id");
        order.push(id);
        assert!(
            by_id.insert(id, v["result"].clone()).is_none(),
            "job {id} is twice in the output"
        );
    }
    (order, by_id)
}

/// `n` lines `1`..`n`, with the payloads of `special` (line number → JSON) instead.
fn input(n: u64, special: &[(u64, &str)]) -> String {
    let special: HashMap<u64, &str> = special.iter().copied().collect();
    (1..=n)
        .map(|i| match special.get(&i) {
            Some(s) => format!("{s}\n"),
            None => format!("{i}\n"),
        })
        .collect()
}

#[test]
fn every_job_is_done_once_through_distarch_run_and_results_go_to_stdout() {
    let d = Distarch::new().file("in.txt", &input(5000, &[]));
    let w = worker();
    let out = d.run(
        &[
            "run",
            "-j",
            "4",
            "--input",
            "in.txt",
            "--log-level",
            "info",
            "--",
            &w,
        ],
        LIMIT,
    );
    assert_eq!(out.code, 0, "{out}");
    let mut ids = BTreeSet::new();
    for line in out.stdout.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("stdout holds only results: {line:?}\n{out}"));
        let id = v["id"].as_u64().unwrap();
        assert_eq!(v["result"], Value::from(id), "the echo of line {id}");
        assert!(ids.insert(id), "job {id} twice");
    }
    assert_eq!(ids, (1..=5000).collect::<BTreeSet<u64>>());
    assert!(
        out.stderr
            .contains("jobs [run]: finished: 5000 done, 0 failed"),
        "the log went to stderr with the final progress:\n{out}"
    );
}

#[test]
fn poison_jobs_are_dead_lettered_after_max_attempts_and_fatal_ones_at_once() {
    let d = Distarch::new().file(
        "in.jsonl",
        &input(
            2000,
            &[
                (7, r#"{"poison":true}"#),
                (900, r#"{"fatal":true}"#),
                (1500, "{not json"),
            ],
        ),
    );
    let w = worker();
    let out = d.run(
        &[
            "run",
            "-j",
            "3",
            "--input",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--dead-letter",
            "dead.jsonl",
            "--max-attempts",
            "4",
            "--",
            &w,
        ],
        LIMIT,
    );
    assert_eq!(out.code, 5, "some jobs failed for good: exit code 5\n{out}");
    let (_, done) = results(&d.path("out.jsonl"));
    assert_eq!(done.len(), 1997);
    let dead = json_lines(&d.path("dead.jsonl"));
    let by_id: HashMap<u64, &Value> = dead
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), v))
        .collect();
    assert_eq!(by_id.len(), 3, "{dead:?}");
    assert_eq!(by_id[&7]["attempts"], 4, "tried max_attempts times");
    assert_eq!(by_id[&7]["payload"], serde_json::json!({"poison": true}));
    assert!(by_id[&7]["error"]
        .as_str()
        .unwrap()
        .starts_with("poison job"));
    assert_eq!(by_id[&900]["attempts"], 1, "not retryable: one attempt");
    assert_eq!(by_id[&1500]["attempts"], 0, "not JSON: never sent");
    assert!(by_id[&1500]["error"].as_str().unwrap().contains("not JSON"));
}

#[test]
fn a_job_that_crashes_its_worker_goes_elsewhere_and_is_dead_lettered_at_last() {
    // Every attempt of job 50 kills its instance; the others get its jobs in
    // flight, and restarts (on-failure, the pool default) bring it back.
    let d = Distarch::new()
        .file("in.jsonl", &input(3000, &[(50, r#"{"crash":true}"#)]))
        .config(&format!(
            "[groups.w]\ncommand = [{w}]\ninstances = 3\nbackoff = {{ initial = \"50ms\" }}\n[groups.w.jobs]\ninput = \"in.jsonl\"\noutput = \"out.jsonl\"\ndead_letter = \"dead.jsonl\"\nmax_attempts = 2\n",
            w = toml_str(worker())
        ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 5, "{out}");
    let (_, done) = results(&d.path("out.jsonl"));
    assert_eq!(done.len(), 2999, "every other job done once");
    let dead = json_lines(&d.path("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], 50);
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .contains("ended while running it"),
        "{dead:?}"
    );
}

#[test]
fn keep_order_writes_results_in_input_order() {
    // Random sleeps make answers come back out of order.
    let special: Vec<(u64, String)> = (1..=400u64)
        .filter(|i| i % 7 == 0)
        .map(|i| (i, format!(r#"{{"sleep_ms":{},"n":{i}}}"#, (i * 37) % 23)))
        .collect();
    let special: Vec<(u64, &str)> = special.iter().map(|(i, s)| (*i, s.as_str())).collect();
    let d = Distarch::new().file("in.jsonl", &input(400, &special));
    let w = worker();
    let out = d.run(
        &[
            "run",
            "-j",
            "4",
            "--input",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--keep-order",
            "--window",
            "50",
            "--",
            &w,
        ],
        LIMIT,
    );
    assert_eq!(out.code, 0, "{out}");
    let (order, _) = results(&d.path("out.jsonl"));
    assert_eq!(order, (1..=400).collect::<Vec<u64>>());
}

#[test]
fn a_command_is_an_input_and_text_lines_are_string_payloads() {
    let d = Distarch::new();
    let w = worker();
    let out = d.run(
        &[
            "run",
            "-j",
            "2",
            "--input-command",
            "printf 'a b\\nc\\n'",
            "--text",
            "-o",
            "out.jsonl",
            "--",
            &w,
        ],
        LIMIT,
    );
    assert_eq!(out.code, 0, "{out}");
    let (_, by_id) = results(&d.path("out.jsonl"));
    assert_eq!(by_id[&1], "a b");
    assert_eq!(by_id[&2], "c");
}

#[test]
fn a_resumed_run_does_only_what_the_journal_lacks_after_a_master_sigkill() {
    let n = 4000u64;
    // Slow enough jobs that the master is killed in the middle.
    let lines: String = (1..=n)
        .map(|i| format!("{{\"sleep_ms\":2,\"n\":{i}}}\n"))
        .collect();
    let d = Distarch::new().file("in.jsonl", &lines).config(&format!(
        "[groups.w]\ncommand = [{w}]\ninstances = 4\nparams = {{ trace = \"trace.txt\" }}\n[groups.w.jobs]\ninput = \"in.jsonl\"\noutput = \"out.jsonl\"\njournal = \"journal.txt\"\n",
        w = toml_str(worker())
    ));
    let mut first = d.spawn(&["launch"]);
    let journal = d.path("journal.txt");
    let some_done = wait_until(LIMIT, || {
        std::fs::read_to_string(&journal).is_ok_and(|j| j.lines().count() >= 1000)
    });
    assert!(some_done, "no progress:\n{}", first.stdout());
    first.signal("KILL");
    let killed = first.wait(LIMIT);
    assert_eq!(killed.code, -1);
    // Orphaned workers see their stdin close and exit; wait for the trace to settle.
    std::thread::sleep(Duration::from_secs(1));
    let journaled: BTreeSet<u64> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(
        journaled.len() < n as usize,
        "the master was killed before the end"
    );
    std::fs::write(d.path("trace.txt"), "").unwrap();

    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let redone: BTreeSet<u64> = std::fs::read_to_string(d.path("trace.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(
        redone.is_disjoint(&journaled),
        "jobs in the journal were done again: {:?}",
        redone.intersection(&journaled).take(10).collect::<Vec<_>>()
    );
    let all: BTreeSet<u64> = (1..=n).collect();
    let missing: BTreeSet<u64> = all.difference(&journaled).copied().collect();
    let not_redone: Vec<&u64> = missing.difference(&redone).take(10).collect();
    let extra: Vec<&u64> = redone.difference(&missing).take(10).collect();
    assert!(
        not_redone.is_empty() && extra.is_empty(),
        "exactly the unfinished jobs were done: not redone {not_redone:?}, extra {extra:?}"
    );
    // Every job has a result: the first run's (appended to) and the second's.
    let ids: BTreeSet<u64> = json_lines(&d.path("out.jsonl"))
        .iter()
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, all);
    assert!(
        out.stdout
            .contains(&format!("{} skipped (journal)", journaled.len())),
        "{out}"
    );
}

#[test]
fn ps_shows_the_pool_progress_and_scale_adds_hands() {
    let lines: String = (1..=3000)
        .map(|i| format!("{{\"sleep_ms\":3,\"n\":{i}}}\n"))
        .collect();
    let d = Distarch::new().file("in.jsonl", &lines).config(&format!(
        "[groups.w]\ncommand = [{w}]\ninstances = 1\n[groups.w.jobs]\ninput = \"in.jsonl\"\noutput = \"out.jsonl\"\n",
        w = toml_str(worker())
    ));
    let id = format!("jobs-ps-{}", std::process::id());
    let mut run = d.spawn(&["launch", "--run-id", &id]);
    // The master's own lines go to its log (stdout here: results go to a file).
    let steered = wait_until(LIMIT, || run.stdout().contains("is steered through"));
    assert!(steered, "{}", run.stdout());
    let ps = d.run(&["ps", &id], LIMIT);
    assert_eq!(ps.code, 0, "{ps}");
    assert!(ps.stdout.contains("JOBS w:"), "ps shows the pool:\n{ps}");
    let scaled = d.run(&["scale", &id, "w=3"], LIMIT);
    assert_eq!(scaled.code, 0, "{scaled}");
    let out = run.wait(LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let (_, by_id) = results(&d.path("out.jsonl"));
    assert_eq!(by_id.len(), 3000);
}

#[test]
fn suspend_gives_the_jobs_back_and_resume_finishes_them() {
    let lines: String = (1..=2000)
        .map(|i| format!("{{\"sleep_ms\":2,\"n\":{i}}}\n"))
        .collect();
    let d = Distarch::new().file("in.jsonl", &lines).config(&format!(
        "[groups.w]\ncommand = [{w}]\ninstances = 2\n[groups.w.jobs]\ninput = \"in.jsonl\"\noutput = \"out.jsonl\"\n",
        w = toml_str(worker())
    ));
    let id = format!("jobs-susp-{}", std::process::id());
    let mut run = d.spawn(&["launch", "--run-id", &id]);
    let out_path = d.path("out.jsonl");
    let started = wait_until(LIMIT, || {
        std::fs::read_to_string(&out_path).is_ok_and(|o| o.lines().count() >= 200)
    });
    assert!(started, "{}", run.stdout());
    let suspended = d.run(&["suspend", &id, "w"], LIMIT);
    assert_eq!(suspended.code, 0, "{suspended}");
    let ps = d.run(&["ps", &id], LIMIT);
    assert!(
        ps.stdout.contains("JOBS w:") && ps.stdout.contains(" 0 in flight"),
        "suspended: nothing in flight\n{ps}"
    );
    let before = std::fs::read_to_string(&out_path).unwrap().lines().count();
    std::thread::sleep(Duration::from_millis(500));
    let still = std::fs::read_to_string(&out_path).unwrap().lines().count();
    assert_eq!(before, still, "no work while suspended");
    let resumed = d.run(&["resume", &id, "w"], LIMIT);
    assert_eq!(resumed.code, 0, "{resumed}");
    let out = run.wait(LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let (_, by_id) = results(&out_path);
    assert_eq!(by_id.len(), 2000, "every job once");
}
