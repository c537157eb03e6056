//! End-to-end tests of the supervision rules that fit every program: plain
//! programs stopped with their stop signal, stop progress messages, per-instance
//! placeholders, dependencies and readiness rules, a paused master, SIGHUP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// A `sh -c` command as a TOML array; `token` is appended as a comment so that the
/// leftovers check finds the shells.
fn sh(script: &str, token: &str) -> String {
    format!(
        "[\"sh\", \"-c\", {}]",
        toml_str(format!("{script} # {token}"))
    )
}

#[test]
fn plain_programs_get_their_stop_signal_at_once_not_the_grace() {
    let token = unique_token("plain-stop");
    // A grace of an hour: only a stop that skips it ends in time.
    let script = "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 0.05; done";
    let d = Distarch::new().config(&format!(
        "[launcher]\nstop_grace = \"1h\"\n[groups.g]\ncommand = {}\ninstances = 10\n",
        sh(script, &token)
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO up", 10, LIMIT);
    running.signal("TERM");
    let out = running.wait(Duration::from_secs(20));
    assert_eq!(out.code, 143, "{out}");
    out.assert_count("INFO got-term", 10);
    out.assert_has("waiting for 10 instance(s) to end, at most");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn the_stop_signal_is_configurable_and_a_second_ctrl_c_is_announced() {
    let token = unique_token("stop-signal");
    let script =
        "trap 'echo got-int; exit 0' INT; trap '' TERM; echo up; while :; do sleep 0.05; done";
    let d = Distarch::new().config(&format!(
        "[launcher]\nstop_grace = \"1h\"\nkill_after = \"1h\"\n[groups.g]\ncommand = {}\nstop_signal = \"SIGINT\"\ninstances = 2\n",
        sh(script, &token)
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO up", 2, LIMIT);
    running.signal("INT");
    let out = running.wait(Duration::from_secs(20));
    assert_eq!(out.code, 130, "{out}");
    out.assert_count("INFO got-int", 2);
    out.assert_has("press Ctrl-C again to kill them now");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn placeholders_expand_per_instance_in_command_env_and_params() {
    let token = unique_token("placeholders");
    let script =
        "echo \"arg={group_id}/{group_count} id={id} env=$OUT params=$DISTARCH_PARAMS lit={{id}\"";
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = {}\nenv = {{ OUT = \"/tmp/{{run_id}}-{{id}}\" }}\nparams = {{ who = \"{{host}}-{{group_id}}\" }}\nplacements.a = {{ transport = \"local\", instances = 2, params = {{ extra = 1 }} }}\n",
        sh(script, &token)
    ));
    let out = d.run(&["launch", "--run-id", "feed"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    for (id, gid) in [(1, 1), (2, 2)] {
        out.assert_has(&format!(
            "INFO arg={gid}/2 id={id} env=/tmp/feed-{id} params={{\"extra\":1,\"who\":\"localhost-{gid}\"}} lit={{id}}"
        ));
    }
}

#[test]
fn an_unknown_placeholder_is_refused_before_anything_starts() {
    let d = Distarch::new().config("[groups.g]\ncommand = [\"echo\", \"{gorup_id}\"]\n");
    let out = d.run(&["validate"], LIMIT);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("groups.g.command")
            && out.stderr.contains("unknown placeholder `{gorup_id}`"),
        "{out}"
    );
}

#[test]
fn a_group_waits_for_its_dependency_to_complete() {
    let token = unique_token("depends");
    let d = Distarch::new().config(&format!(
        "[groups.migrate]\ncommand = {}\ninstances = 1\n[groups.app]\ncommand = {}\ninstances = 1\ndepends_on = {{ migrate = \"completed\" }}\n",
        sh("sleep 0.5; echo migrated", &token),
        sh("echo app-started", &token),
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let migrated = lines
        .iter()
        .position(|l| l.contains("INFO migrated"))
        .expect("migrated");
    let app = lines
        .iter()
        .position(|l| l.contains("INFO app-started"))
        .expect("app started");
    assert!(migrated < app, "{out}");
    out.assert_has("waiting for group `migrate` to be completed (0/1)");
}

#[test]
fn a_dependency_cycle_is_a_config_error() {
    let d = Distarch::new().config(
        "[groups.a]\ncommand = \"true\"\ndepends_on = { b = \"ready\" }\n[groups.b]\ncommand = \"true\"\ndepends_on = { a = \"started\" }\n",
    );
    let out = d.run(&["validate"], LIMIT);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("dependency cycle: a → b → a"), "{out}");
}

#[test]
fn a_log_rule_makes_a_plain_program_ready_and_its_dependents_start() {
    let token = unique_token("ready-log");
    let d = Distarch::new().config(&format!(
        "[launcher]\nmax_running_time = \"3s\"\n[groups.db]\ncommand = {}\ninstances = 1\nready = {{ log = \"listening on port [0-9]+\" }}\n[groups.app]\ncommand = {}\ninstances = 1\ndepends_on = {{ db = \"ready\" }}\n",
        sh("echo booting; sleep 0.3; echo listening on port 5432; while :; do sleep 0.1; done", &token),
        sh("echo app-up; while :; do sleep 0.1; done", &token),
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let ready = lines
        .iter()
        .position(|l| l.starts_with("[db]") && l.ends_with("DEBUG distarch: ready"))
        .expect("db ready");
    let app = lines
        .iter()
        .position(|l| l.contains("INFO app-up"))
        .expect("app up");
    assert!(ready < app, "{out}");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn instances_never_ready_are_named_and_the_run_exits_4() {
    let token = unique_token("ready-timeout");
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = {}\ninstances = 2\nready = {{ log = \"never printed\" }}\n",
        sh("while :; do sleep 0.1; done", &token),
    ));
    let out = d.run(&["launch", "--ready-timeout", "1s"], LIMIT);
    assert_eq!(out.code, 4, "{out}");
    out.assert_has(
        "2 instance(s) did not become ready within 1s (ready_timeout): group g: id 1, 2",
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_paused_master_does_not_judge_busy_workers_hung() {
    let token = unique_token("paused");
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = {}\ntimeout = \"1s\"\ninstances = 3\n",
        sh("while :; do echo tick; sleep 0.2; done", &token),
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO tick", 6, LIMIT);
    running.signal("STOP");
    std::thread::sleep(Duration::from_secs(3));
    running.signal("CONT");
    // Let the timers that were due during the pause fire, and output drain.
    running.expect_lines("the master could not run for", 1, LIMIT);
    let ticks = running
        .stdout()
        .lines()
        .filter(|l| l.contains("INFO tick"))
        .count();
    running.expect_lines("INFO tick", ticks + 6, LIMIT);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    assert!(
        out.lines_with("considered hung").is_empty() && out.lines_with("hung").is_empty(),
        "{out}"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn sighup_is_not_a_hard_kill() {
    let token = unique_token("sighup");
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = {}\ninstances = 1\n",
        sh(
            "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 0.05; done",
            &token
        ),
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO up", 1, LIMIT);
    running.signal("HUP");
    running.expect_lines("SIGHUP received", 1, LIMIT);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    out.assert_has("INFO got-term");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

/// A config of `n` plain instances that print forever; for the output tests.
fn chatty(n: u32, token: &str) -> String {
    format!(
        "[groups.g]\ncommand = {}\ninstances = {n}\n",
        sh(
            "trap 'exit 0' TERM; while :; do echo chatter; sleep 0.01; done",
            token
        )
    )
}

#[test]
fn a_master_whose_output_is_gone_stops_everything_and_says_so() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let token = unique_token("epipe");
    let d = Distarch::new().config(&chatty(2, &token));
    // `distarch launch | head -1`: the reader goes after one line.
    let mut child = Command::new(distarch_bin())
        .arg("launch")
        .current_dir(d.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn distarch");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("one line");
    // The reader is dropped here: the pipe closes.
    let ended = wait_until(LIMIT, || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(ended, "the master ran on after its output was gone");
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains("cannot write the log to stdout") && stderr.contains("stopping everything"),
        "{stderr}"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_master_writing_to_a_full_device_stops_and_exits_non_zero() {
    use std::process::{Command, Stdio};
    let token = unique_token("full");
    let d = Distarch::new().config(&chatty(1, &token));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(distarch_bin())
        .arg("launch")
        .current_dir(d.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .expect("run distarch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn workers_start_with_default_signal_actions_even_when_the_master_ignores_them() {
    // A shell running the master in the background ignores SIGINT and SIGQUIT for
    // it; a worker inheriting that could not trap them (a shell cannot trap a
    // signal ignored at its start), so `stop_signal = "SIGINT"` would not reach it.
    let token = unique_token("sigdfl");
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = {}\ninstances = 1\n",
        sh("grep SigIgn /proc/self/status", &token)
    ));
    let out = std::process::Command::new("sh")
        .args(["-c", "trap '' INT QUIT; exec \"$0\" launch"])
        .arg(distarch_bin())
        .current_dir(d.dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let mask = stdout
        .lines()
        .find_map(|l| l.split("SigIgn:").nth(1))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no SigIgn line:\n{stdout}"));
    // Bits are signal numbers minus one: SIGINT is 2, SIGQUIT 3.
    assert_eq!(
        mask & 0b110,
        0,
        "SIGINT or SIGQUIT ignored in the worker: {mask:#x}"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}
