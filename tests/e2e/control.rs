//! End-to-end tests of the control plane through the real binary: a master in the
//! background and a second terminal running `ps`, `stop`, `suspend`, `resume`,
//! `scale`, `restart`, `logs`, `reload`; service mode; stale sockets; refused
//! clients. The same verbs on ssh and docker placements are in control_remote.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

#[path = "control/steer.rs"]
mod steer;

#[path = "control/admin.rs"]
mod admin;

use distarch_e2e::*;
use serde_json::Value;
use std::time::Duration;
use steer::*;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn ps_lists_runs_and_their_instances_found_by_id_prefix_name_or_config() {
    let token = unique_token("ctlps");
    let config = group("g", "steady", 3, "", &token);
    let s = Steer::launch(&config, "ps0001", &[], 3);
    let runs = s.json(&["ps"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["run_id"], "ps0001");
    assert_eq!(runs[0]["pid"], s.master.pid());
    assert_eq!(runs[0]["instances"], 3);
    for query in [
        "ps0001",
        "ps00",
        &s.d.path("distarch.toml").display().to_string(),
    ] {
        let all = s.json(&["ps", query]);
        let all = all.as_array().unwrap();
        assert_eq!(ids(all, "g"), [1, 2, 3], "ps {query}");
        for i in all {
            assert_eq!(i["state"], "ready");
            assert_eq!(i["group_count"], 3);
            assert_eq!(i["transport"], "local");
            assert!(i["process"].as_str().unwrap().starts_with("pid "), "{i}");
            assert!(
                i["started"].is_string() && i["last_seen"].is_string(),
                "{i}"
            );
        }
    }
    let text = s.cli(&["ps", "ps0001"]);
    assert_eq!(text.code, 0, "{text}");
    assert!(text.stdout.starts_with("ID "), "{text}");
    assert_eq!(text.stdout.lines().count(), 4, "{text}");
    let none = s.cli(&["ps", "zzz"]);
    assert_eq!(none.code, 6, "{none}");
    assert!(
        none.stderr
            .contains("no running distarch run matches `zzz`"),
        "{none}"
    );
    let out = s.cli(&["stop", "ps0001"]);
    assert_eq!(out.code, 0, "{out}");
    let mut master = s.master;
    let end = master.wait(LIMIT);
    assert_eq!(end.code, 0, "{end}");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn stop_ends_chosen_instances_and_groups_cleanly_and_then_the_run() {
    let token = unique_token("ctlstop");
    let config = format!(
        "{}{}",
        group("a", "serve", 2, "", &token),
        group("b", "serve", 2, "restart = \"always\"", &token)
    );
    let s = Steer::launch(&config, "stop0001", &[], 4);
    let answer = s.json(&["stop", "stop0001", "1"]);
    assert_eq!(answer_ids(&answer), [1]);
    s.master
        .expect_lines("[a] [localhost] [1/1] INFO got stop", 1, WAIT);
    let all = s.instances();
    assert!(
        all_in(&all, &[1], "ended") && all_in(&all, &[2, 3, 4], "ready"),
        "{all:?}"
    );
    // A group under `restart = "always"` stopped by request is not restarted.
    let answer = s.json(&["stop", "stop0001", "b"]);
    assert_eq!(answer_ids(&answer), [3, 4]);
    let all = s.instances();
    assert!(all_in(&all, &[3, 4], "ended"), "{all:?}");
    assert_eq!(s.master.stdout().matches("restarting in").count(), 0);
    let unknown = s.cli(&["stop", "stop0001", "c"]);
    assert_eq!(unknown.code, 1, "{unknown}");
    assert!(unknown.stderr.contains("no group `c`"), "{unknown}");
    let unknown = s.cli(&["stop", "stop0001", "99"]);
    assert_eq!(unknown.code, 1, "{unknown}");
    // The whole run: the same path as Ctrl-C.
    let out = s.cli(&["stop", "stop0001"]);
    assert_eq!(out.code, 0, "{out}");
    let mut master = s.master;
    let end = master.wait(LIMIT);
    assert_eq!(end.code, 0, "{end}");
    end.assert_count("[a] [localhost] [2/2] INFO got stop", 1);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn suspend_keeps_a_group_stopped_without_restarts_and_resume_brings_back_the_same_ids() {
    let token = unique_token("ctlsus");
    let config = format!(
        "{}{}",
        group("keep", "serve", 1, "", &token),
        group(
            "g",
            "steady",
            3,
            "restart = \"always\"\ntimeout = \"1s\"\nbackoff = { initial = \"50ms\" }",
            &token
        )
    );
    let s = Steer::launch(&config, "sus0001", &[], 4);
    // Groups get ids by name: g has 1-3, keep has 4.
    let answer = s.json(&["suspend", "sus0001", "g"]);
    assert_eq!(answer_ids(&answer), [1, 2, 3]);
    let all = s.instances();
    assert!(all_in(&all, &[1, 2, 3], "suspended"), "{all:?}");
    let started_before = s.master.stdout().matches("DEBUG distarch: started").count();
    // Longer than the hang timeout and many restart delays: nothing may happen.
    let moved = wait_until(Duration::from_secs(3), || {
        let out = s.master.stdout();
        out.matches("DEBUG distarch: started").count() != started_before
            || out.contains("restarting in")
            || out.contains("timed out")
    });
    assert!(!moved, "a suspended instance moved:\n{}", s.master.stdout());
    let all = s.instances();
    assert!(all_in(&all, &[1, 2, 3], "suspended"), "{all:?}");
    assert!(all_in(&all, &[4], "ready"), "{all:?}");
    let answer = s.json(&["resume", "sus0001", "g"]);
    assert_eq!(answer_ids(&answer), [1, 2, 3]);
    s.wait_instances("the same ids ready again", WAIT, |all| {
        ids(all, "g") == [1, 2, 3] && all_in(all, &[1, 2, 3], "ready")
    });
    for (id, gid) in [(1, 1), (2, 2), (3, 3)] {
        s.master.expect_lines(
            &format!("[g] [localhost] [{id}/{gid}] INFO steady id={id} group_id={gid} count=3"),
            2,
            WAIT,
        );
    }
    let unknown = s.cli(&["suspend", "sus0001", "nope"]);
    assert_eq!(unknown.code, 1, "{unknown}");
    assert_eq!(s.cli(&["stop", "sus0001"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_run_whose_only_group_is_suspended_goes_on_until_stopped() {
    let token = unique_token("ctlsus2");
    let s = Steer::launch(&group("g", "serve", 2, "", &token), "sus0002", &[], 2);
    s.json(&["suspend", "sus0002", "g"]);
    let ended = wait_until(Duration::from_secs(1), || {
        s.cli(&["ps", "sus0002"]).code != 0
    });
    assert!(
        !ended,
        "the run ended while suspended:\n{}",
        s.master.stdout()
    );
    s.json(&["resume", "sus0002", "g"]);
    s.wait_instances("resumed", WAIT, |all| all_in(all, &[1, 2], "ready"));
    assert_eq!(s.cli(&["stop", "sus0002"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
}

fn counts(instances: &[Value], group: &str) -> Vec<u64> {
    instances
        .iter()
        .filter(|i| i["group"] == group)
        .map(|i| i["group_count"].as_u64().unwrap())
        .collect()
}

#[test]
fn scale_three_to_five_to_two_gives_new_ids_after_the_highest_and_tells_the_count() {
    let token = unique_token("ctlscale");
    let config = format!(
        "{}{}",
        group("g", "steady", 3, "", &token),
        group("other", "serve", 1, "", &token)
    );
    let s = Steer::launch(&config, "scale001", &[], 4);
    // g has ids 1-3, other has id 4: new instances of g get 5 and 6.
    let up = s.json(&["scale", "scale001", "g=5"]);
    assert_eq!(up[0]["count"], 5);
    assert_eq!(up[0]["added"], serde_json::json!([5, 6]));
    s.wait_instances("five ready", WAIT, |all| {
        all_in(all, &[1, 2, 3, 5, 6], "ready")
    });
    let all = s.instances();
    assert_eq!(counts(&all, "g"), [5, 5, 5, 5, 5]);
    for (id, gid) in [(5, 4), (6, 5)] {
        s.master.expect_lines(
            &format!("[g] [localhost] [{id}/{gid}] INFO steady id={id} group_id={gid} count=5"),
            1,
            WAIT,
        );
    }
    for (id, gid) in [(1, 1), (2, 2), (3, 3)] {
        s.master.expect_lines(
            &format!("[g] [localhost] [{id}/{gid}] INFO group count now 5"),
            1,
            WAIT,
        );
    }
    // Down to two: the highest group ids (5, 4, 3 → ids 6, 5, 3) go.
    let down = s.json(&["scale", "scale001", "g=2"]);
    assert_eq!(down[0]["count"], 2);
    let mut removed: Vec<u64> = serde_json::from_value(down[0]["removed"].clone()).unwrap();
    removed.sort_unstable();
    assert_eq!(removed, [3, 5, 6]);
    let all = s.instances();
    assert_eq!(ids(&all, "g"), [1, 2]);
    assert_eq!(counts(&all, "g"), [2, 2]);
    for (id, gid) in [(1, 1), (2, 2)] {
        s.master.expect_lines(
            &format!("[g] [localhost] [{id}/{gid}] INFO group count now 2"),
            1,
            WAIT,
        );
    }
    // Up again: ids keep growing, group ids fill up from the top.
    let again = s.json(&["scale", "scale001", "g=3"]);
    assert_eq!(again[0]["added"], serde_json::json!([7]));
    s.master.expect_lines(
        "[g] [localhost] [7/3] INFO steady id=7 group_id=3 count=3",
        1,
        WAIT,
    );
    let other = s.instance(4).unwrap();
    assert_eq!(other["group_count"], 1);
    let bad = s.cli(&["scale", "scale001", "g.nowhere=2"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stderr.contains("no placement `nowhere`"), "{bad}");
    let usage = s.cli(&["scale", "scale001", "g"]);
    assert_eq!(usage.code, 2, "{usage}");
    assert_eq!(s.cli(&["stop", "scale001"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

/// Index of the `n`-th (1-based) line of `out` containing `needle`.
fn nth_line(out: &str, needle: &str, n: usize) -> Option<usize> {
    out.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(n - 1)
        .map(|(i, _)| i)
}

#[test]
fn rolling_restart_starts_the_next_instance_after_the_previous_is_ready() {
    let token = unique_token("ctlroll");
    let s = Steer::launch(&group("g", "steady", 3, "", &token), "roll0001", &[], 3);
    let answer = s.json(&["restart", "roll0001", "g", "--rolling"]);
    assert_eq!(answer_ids(&answer), [1, 2, 3]);
    let out = s.master.stdout();
    for id in 1..=3usize {
        let ready = format!("[g] [localhost] [{id}/{id}] DEBUG distarch: ready");
        let second_ready = nth_line(&out, &ready, 2).unwrap_or_else(|| panic!("{ready}\n{out}"));
        if id < 3 {
            let next = format!("[g] [localhost] [{}/{}] INFO got stop", id + 1, id + 1);
            let next_stop = nth_line(&out, &next, 1).unwrap_or_else(|| panic!("{next}\n{out}"));
            assert!(
                second_ready < next_stop,
                "{id} was not ready before {} stopped:\n{out}",
                id + 1
            );
        }
    }
    let all = s.instances();
    assert!(all.iter().all(|i| i["restarts"] == 1), "{all:?}");
    // A plain restart of one id.
    let answer = s.json(&["restart", "roll0001", "2"]);
    assert_eq!(answer_ids(&answer), [2]);
    s.wait_instances("2 restarted twice", WAIT, |all| {
        all.iter()
            .any(|i| i["id"] == 2 && i["restarts"] == 2 && i["state"] == "ready")
    });
    assert_eq!(s.instance(1).unwrap()["restarts"], 1);
    // Each start by a command is told its number, as a policy restart would be.
    let out = s.master.stdout();
    for (id, restart) in [(1, 1), (2, 1), (2, 2), (3, 1)] {
        let line = format!("[g] [localhost] [{id}/{id}] INFO steady id={id} group_id={id} count=3 restart={restart} ");
        assert!(out.contains(&line), "{line}\n{out}");
    }
    assert_eq!(s.cli(&["stop", "roll0001"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn rolling_restart_of_workers_that_never_send_ready_waits_the_rolling_delay() {
    let token = unique_token("ctlroll2");
    let config = format!(
        "[launcher.control]\nrolling_delay = \"700ms\"\n{}",
        group("g", "silent", 2, "timeout = \"0s\"", &token)
    );
    let d = distarch(&config);
    let master = d.spawn(&["launch", "--run-id", "roll0002"]);
    let s = Steer {
        d,
        master,
        run: "roll0002".into(),
    };
    s.wait_instances("two running", WAIT, |all| all_in(all, &[1, 2], "running"));
    let started = std::time::Instant::now();
    let answer = s.json(&["restart", "roll0002", "--rolling"]);
    assert_eq!(answer_ids(&answer), [1, 2]);
    // Two instances, each waited for at least the delay after it started.
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.cli(&["stop", "roll0002"]).code, 0);
    let mut master = s.master;
    master.wait(LIMIT);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn logs_show_the_buffer_filtered_and_follow_new_lines() {
    let token = unique_token("ctllogs");
    let config = format!(
        "{}{}",
        group("g", "steady", 2, "", &token),
        group("h", "serve", 1, "", &token)
    );
    let s = Steer::launch(&config, "logs0001", &[], 3);
    s.master
        .expect_lines("[g] [localhost] [2/2] INFO tick 3", 1, WAIT);
    let tail = s.cli(&["logs", "logs0001", "--id", "2", "--tail", "2"]);
    assert_eq!(tail.code, 0, "{tail}");
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("[g] [localhost] [2/2] ")),
        "{tail}"
    );
    let h = s.cli(&["logs", "logs0001", "--group", "h", "-o", "json"]);
    let records: Vec<Value> = h
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty(), "{h}");
    assert!(records.iter().all(|r| r["group"] == "h"), "{h}");
    assert!(records.iter().any(|r| r["message"] == "serving"), "{h}");
    // Follow: lines that did not exist when it started arrive.
    let last_tick = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("[g] [localhost] [1/1] INFO tick "))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .max()
    };
    let before = last_tick(&s.cli(&["logs", "logs0001", "--id", "1"]).stdout).unwrap();
    let follower = s.d.spawn(&["logs", "logs0001", "-f", "--id", "1"]);
    let fresh = wait_until(WAIT, || {
        last_tick(&follower.stdout()).is_some_and(|t| t >= before + 5)
    });
    assert!(fresh, "no new lines followed:\n{}", follower.stdout());
    assert!(
        !follower.stdout().contains("[2/2]"),
        "{}",
        follower.stdout()
    );
    let since = s.cli(&["logs", "logs0001", "--since", "1h", "--id", "1"]);
    assert!(since.stdout.contains("tick 0"), "{since}");
    let bad = s.cli(&["logs", "logs0001", "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{bad}");
    // `events` follows the event stream: JSON records of what happens from now on.
    let events = s.d.spawn(&["events", "logs0001"]);
    let ticked = wait_until(WAIT, || events.stdout().contains("\"message\":\"tick "));
    assert!(ticked, "no events followed:\n{}", events.stdout());
    assert_eq!(s.cli(&["stop", "logs0001"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    // The followers end with the run, cleanly (the stream ends with the run's last
    // event; the master does not cut it when it exits); the event stream saw the
    // run stop.
    let mut follower = follower;
    let followed = follower.wait(LIMIT);
    assert_eq!(followed.code, 0, "{followed}");
    let mut events = events;
    let seen = events.wait(LIMIT);
    assert_eq!(seen.code, 0, "{seen}");
    let kinds: Vec<String> = seen
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["event"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert!(kinds.iter().any(|k| k == "instance_stopped"), "{kinds:?}");
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("run_stopped"),
        "{kinds:?}"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_follower_that_stops_reading_is_dropped() {
    let token = unique_token("ctlslow");
    let config = group("g", "flood 100000000", 1, "", &token);
    let d = distarch(&config);
    let master = d.spawn(&["launch", "--run-id", "slow0001", "--log-level", "warn"]);
    let s = Steer {
        d,
        master,
        run: "slow0001".into(),
    };
    s.wait_instances("running", WAIT, |all| all_in(all, &[1], "running"));
    // A client that connects, asks to follow, and never reads.
    let socket = s.d.path("rt/distarch/slow0001.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    use std::io::Write;
    stream
        .write_all(b"GET /v1/logs?follow=true HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let dropped = wait_until(WAIT, || s.master.stdout().contains("dropped a follower"));
    assert!(dropped, "the stalled follower was not dropped");
    drop(stream);
    assert_eq!(s.cli(&["stop", "slow0001"]).code, 0);
    let mut master = s.master;
    master.wait(LIMIT);
    assert_no_leftovers(&token, Duration::from_secs(5));
}
