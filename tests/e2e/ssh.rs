//! End-to-end tests of `distarch launch` with SSH placements, against real sshd
//! servers on 127.0.0.1, .2 and .3 (see testkit/src/sshd.rs): the original's
//! remote test matrix, plus the session limit, host keys, ssh config aliases,
//! a SIGKILLed master and a dropped connection.

use distarch_e2e::sshd::SshFixture;
use distarch_e2e::*;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

fn worker() -> String {
    toml_str(test_worker_bin().display().to_string())
}

/// `n` servers on 127.0.0.1.. with their host keys trusted.
fn servers(n: usize) -> SshFixture {
    let mut fx = SshFixture::new();
    for i in 0..n {
        fx.start(&format!("127.0.0.{}", i + 1));
    }
    fx.trust_all();
    fx
}

/// One group `g` of the test worker in `mode` with `n` instances on each server.
fn remote_group(
    fx: &SshFixture,
    on: &[usize],
    mode: &str,
    n: u32,
    extra_group: &str,
    launcher: &str,
    token: &str,
) -> String {
    format!(
        "[launcher]\n{launcher}\n[groups.g]\ncommand = [{w}, \"{mode}\", \"--tag\", \"{token}\"]\n{extra_group}\nplacements.remote = {{ transport = \"ssh\", instances = {n}, {settings} }}\n",
        w = worker(),
        settings = fx.placement_settings(on),
    )
}

fn no_remote_leftovers(fx: &SshFixture, on: &[usize], token: &str, limit: Duration) {
    for &i in on {
        let gone = wait_until(limit, || fx.remote_pids(i, token).is_empty());
        assert!(
            gone,
            "processes left on {}: {:?}",
            fx.server(i).entry(),
            fx.remote_pids(i, token)
        );
    }
}

#[test]
fn one_instance_on_a_remote_host() {
    let fx = servers(1);
    let token = unique_token("sshone");
    let d = Distarch::new().config(&remote_group(&fx, &[0], "hello", 1, "", "", &token));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let h = fx.server(0).entry();
    out.assert_has(&format!(
        "[g] [{h}] [1/1] INFO hello id=1 group=g group_id=1 count=1 host={h} restart=0"
    ));
    no_remote_leftovers(&fx, &[0], &token, Duration::from_secs(5));
}

#[test]
fn two_instances_on_each_of_three_hosts() {
    let fx = servers(3);
    let token = unique_token("sshtwo");
    let d = Distarch::new().config(&remote_group(&fx, &[0, 1, 2], "hello", 2, "", "", &token));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    for (i, h) in (0..3).map(|i| (i, fx.server(i).entry())) {
        for k in 1..=2u32 {
            let id = i as u32 * 2 + k;
            out.assert_has(&format!(
                "[g] [{h}] [{id}/{id}] INFO hello id={id} group=g group_id={id} count=6 host={h}"
            ));
        }
    }
}

#[test]
fn params_reach_the_remote_worker() {
    let fx = servers(1);
    let token = unique_token("sshparams");
    let d = Distarch::new().config(&remote_group(
        &fx,
        &[0],
        "hello",
        1,
        "params = { message = \"Hello World! it's $(not) `run`\", n = 3 }",
        "",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(r#"params={"message":"Hello World! it's $(not) `run`","n":3}"#);
}

#[test]
fn max_running_time_stops_remote_workers_cleanly() {
    let fx = servers(2);
    let token = unique_token("sshmaxrun");
    let d = Distarch::new().config(&remote_group(
        &fx,
        &[0, 1],
        "serve",
        1,
        "",
        "max_running_time = \"10s\"\nstop_grace = \"10s\"",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_count("INFO got stop", 2);
    out.assert_count("ended after a stop request: exit code 0", 2);
    no_remote_leftovers(&fx, &[0, 1], &token, Duration::from_secs(5));
}

#[test]
fn no_output_timeout_kills_a_silent_remote_worker() {
    let fx = servers(1);
    let token = unique_token("sshsilent");
    let d = Distarch::new().config(
        &remote_group(
            &fx,
            &[0],
            "silent",
            1,
            "timeout = \"1s\"",
            "kill_after = \"1s\"",
            &token,
        )
        .replace("\"silent\"", "\"silent\", \"--ignore-term\""),
    );
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    let h = fx.server(0).entry();
    out.assert_has(&format!(
        "[g] [{h}] [1/1] WARN distarch: no output for 1s: considered hung"
    ));
    out.assert_has("killed by signal 9");
    no_remote_leftovers(&fx, &[0], &token, Duration::from_secs(5));
}

#[test]
fn a_remote_worker_that_ignores_stop_is_killed_after_the_grace_period() {
    let fx = servers(1);
    let token = unique_token("sshignore");
    let d = Distarch::new().config(&remote_group(
        &fx,
        &[0],
        "ignore-stop",
        1,
        "",
        "max_running_time = \"8s\"\nstop_grace = \"1s\"\nkill_after = \"1s\"",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    out.assert_has("INFO ignoring stop");
    out.assert_has("ended after being killed: killed by signal 9");
    assert_eq!(out.code, 1, "a forced kill is a failure\n{out}");
    no_remote_leftovers(&fx, &[0], &token, Duration::from_secs(5));
}

#[test]
fn a_group_mixing_local_and_remote_placements() {
    let fx = servers(2);
    let token = unique_token("sshmixed");
    let config = remote_group(
        &fx,
        &[0, 1],
        "hello",
        1,
        "placements.here = { transport = \"local\", instances = 2 }",
        "",
        &token,
    );
    let d = Distarch::new().config(&config);
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_count("INFO hello", 4);
    assert_eq!(
        out.lines_with("[localhost]")
            .iter()
            .filter(|l| l.contains("INFO hello"))
            .count(),
        2,
        "{out}"
    );
    for i in 0..2 {
        let h = fx.server(i).entry();
        assert_eq!(
            out.lines_with("INFO hello")
                .iter()
                .filter(|l| l.contains(&format!("host={h} ")))
                .count(),
            1,
            "{out}"
        );
    }
    for id in 1..=4 {
        out.assert_count(&format!("hello id={id} "), 1);
    }
}

#[test]
fn fifty_instances_start_on_one_default_sshd() {
    let fx = servers(1);
    let token = unique_token("ssh50");
    let d = Distarch::new().config(&remote_group(
        &fx,
        &[0],
        "serve",
        50,
        "",
        "stop_grace = \"10s\"",
        &token,
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO serving", 50, LIMIT);
    assert_eq!(fx.remote_pids(0, &token).len(), 50);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    out.assert_count("INFO got stop", 50);
    no_remote_leftovers(&fx, &[0], &token, Duration::from_secs(10));
}

#[test]
fn a_changed_host_key_is_refused_with_host_and_fingerprint() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.1");
    let b = fx.start("127.0.0.2");
    let line = format!(
        "[{}]:{} {}\n",
        fx.server(a).ip,
        fx.server(a).port,
        fx.server(b).host_key_pub
    );
    std::fs::write(&fx.known_hosts, line).unwrap();
    let token = unique_token("sshhostkey");
    let d = Distarch::new().config(&remote_group(&fx, &[a], "hello", 1, "", "", &token));
    let out = d.run(&["launch"], LIMIT);
    assert_ne!(out.code, 0, "{out}");
    let lines = out.lines_with(&fx.server(a).fingerprint());
    assert!(
        !lines.is_empty()
            && lines[0].contains(&fx.server(a).entry())
            && lines[0].contains("has changed"),
        "{out}"
    );
    assert!(fx.remote_pids(a, &token).is_empty());
}

#[test]
fn an_unreachable_host_is_reported_and_the_run_ends() {
    let fx = SshFixture::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [\"true\"]\n[groups.g.placements.remote]\ntransport = \"ssh\"\ninstances = 3\nhosts = [\"root@127.0.0.1:{port}\"]\nidentity_files = [{key}]\nknown_hosts = {kh}\nssh_config = \"none\"\nconnect_timeout = \"1s\"\n",
        key = toml_str(fx.client_key.display().to_string()),
        kh = toml_str(fx.known_hosts.display().to_string()),
    ));
    let started = Instant::now();
    let out = d.run(&["launch"], LIMIT);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_ne!(out.code, 0, "{out}");
    // The reason once, with the first instance; the others name that instance.
    // (The transport's debug lines about its retries say "cannot connect" too.)
    let lines: Vec<&str> = out
        .lines_with(&format!("cannot connect to root@127.0.0.1:{port}"))
        .into_iter()
        .filter(|l| l.contains("failed to start"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].to_lowercase().contains("refused"), "{out}");
    // (Whichever instance failed first is named: starts run concurrently.)
    let same = out.lines_with("failed to start: the same error as instance ");
    assert_eq!(same.len(), 2, "{out}");
}

#[test]
fn an_alias_from_the_users_ssh_config() {
    let fx = servers(2);
    let home = tempfile::tempdir().unwrap();
    let ssh_dir = home.path().join(".ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let s = fx.server(1);
    std::fs::write(
        ssh_dir.join("config"),
        format!(
            "Host web-alias\n    HostName {}\n    Port {}\n    User root\n    IdentityFile {}\n",
            s.ip,
            s.port,
            fx.client_key.display()
        ),
    )
    .unwrap();
    std::fs::copy(&fx.known_hosts, ssh_dir.join("known_hosts")).unwrap();
    let token = unique_token("sshalias");
    let d = Distarch::new()
        .config(&format!(
            "[groups.g]\ncommand = [{w}, \"hello\", \"--tag\", \"{token}\"]\nplacements.remote = {{ transport = \"ssh\", hosts = [\"web-alias\"], instances = 1 }}\n",
            w = worker()
        ))
        .env("HOME", &home.path().display().to_string())
        .env("SSH_AUTH_SOCK", "");
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(
        "[g] [web-alias] [1/1] INFO hello id=1 group=g group_id=1 count=1 host=web-alias",
    );
}

#[test]
fn sigkill_of_the_master_leaves_nothing_on_any_host() {
    let fx = servers(3);
    let token = unique_token("sshsigkill");
    let d = Distarch::new().config(&remote_group(
        &fx,
        &[0, 1, 2],
        "grandchild",
        2,
        "",
        "stop_grace = \"1s\"\nkill_after = \"1s\"",
        &token,
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("grandchild pid", 6, LIMIT);
    for i in 0..3 {
        // 2 workers and their 2 grandchildren on each host.
        assert_eq!(
            fx.remote_pids_of_host(i, &token).len(),
            4,
            "{}",
            running.stdout()
        );
    }
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    no_remote_leftovers(&fx, &[0, 1, 2], &token, Duration::from_secs(10));
}

#[test]
fn a_dropped_connection_restarts_its_instances_without_duplicates() {
    let fx = servers(1);
    let token = unique_token("sshdrop");
    let d = Distarch::new().config(&remote_group(
        &fx,
        &[0],
        "serve",
        2,
        "restart = \"on-failure\"\nbackoff = { initial = \"200ms\", max = \"1s\", jitter = 0.0 }",
        "stop_grace = \"1s\"\nkill_after = \"1s\"",
        &token,
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO serving", 2, LIMIT);
    assert_eq!(fx.remote_pids(0, &token).len(), 2);
    assert!(fx.kill_connections(0) > 0);
    running.expect_lines("the connection to", 2, LIMIT);
    running.expect_lines("INFO serving", 4, LIMIT);
    // The old workers are gone from the host; exactly the two new ones run.
    assert!(
        wait_until(Duration::from_secs(10), || fx.remote_pids(0, &token).len()
            == 2),
        "{:?}",
        fx.remote_pids(0, &token)
    );
    running.signal("INT");
    let out = running.wait(LIMIT);
    let lost = format!("lost: the connection to {} dropped", fx.server(0).entry());
    out.assert_count(&lost, 2);
    out.assert_count("(restart 1)", 2);
    no_remote_leftovers(&fx, &[0], &token, Duration::from_secs(5));
}

#[test]
fn the_sdk_example_runs_unchanged_over_ssh() {
    let fx = servers(1);
    let text = std::fs::read_to_string(repo_root().join("examples/ssh.toml"))
        .unwrap()
        .replace(
            "target/debug/distarch-example-worker",
            &example_worker_bin().display().to_string(),
        )
        .replace("max_running_time = \"5s\"", "max_running_time = \"8s\"")
        .replace(
            "hosts = [\"sandbox\"], ssh_config = \"/tmp/distarch-sandbox/ssh_config\", known_hosts = \"/tmp/distarch-sandbox/known_hosts\"",
            &fx.placement_settings(&[0]),
        );
    let out = Distarch::new().config(&text).run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let h = fx.server(0).entry();
    out.assert_has(&format!(
        "[first] [{h}] [3/3] INFO I am instance 3 (3/4 of group first) on {h}"
    ));
    out.assert_has(&format!("[first] [{h}] [4/4] INFO message: Hello World!"));
    out.assert_count("ended after a stop request: exit code 0", 4);
}

#[test]
fn flooding_remote_workers_sharing_a_connection_lose_no_line() {
    let fx = servers(1);
    let token = unique_token("sshflood");
    let d = Distarch::new().config(
        &remote_group(&fx, &[0], "flood", 3, "", "", &token)
            .replace("\"flood\"", "\"flood\", \"50000\""),
    );
    let out = d.run(&["launch"], Duration::from_secs(180));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.lines_with("xxxxxxxxxx").len(), 150_000);
    let h = fx.server(0).entry();
    for id in 1..=3 {
        assert_eq!(
            out.lines_with(&format!("[g] [{h}] [{id}/{id}] INFO line 0000049999"))
                .len(),
            1
        );
    }
}

#[test]
fn a_partitioned_host_is_lost_within_the_keepalive_bound_restarted_and_nothing_runs_twice() {
    let ns = distarch_e2e::netns::Netns::new();
    let mut fx = SshFixture::new();
    let s = fx.start_in(Some(&ns.name), &ns.inner_ip.clone(), "");
    fx.trust(s);
    let token = unique_token("sshpartition");
    let d = Distarch::new().config(
        &remote_group(
            &fx,
            &[s],
            "serve",
            1,
            "restart = \"on-failure\"\nmax_restarts = 100\nbackoff = { initial = \"500ms\", max = \"1s\", jitter = 0.0 }",
            "stop_grace = \"1s\"\nkill_after = \"1s\"",
            &token,
        )
        .replace("connect_timeout = \"5s\"", "connect_timeout = \"2s\", keepalive = \"1s\""),
    );
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO serving", 1, LIMIT);
    assert_eq!(pids_with_token(&token).len(), 1);

    ns.partition();
    // 3 unanswered keepalives 1 s apart; the bound leaves room for a loaded machine.
    running.expect_lines("lost: the connection to", 1, Duration::from_secs(15));
    // Meanwhile the host's agent hears no keepalive either and ends its worker
    // (two silent periods, then stop_grace and kill_after): the host is still cut off.
    assert!(
        wait_until(Duration::from_secs(20), || pids_with_token(&token)
            .is_empty()),
        "the cut-off worker still runs: {:?}",
        pids_with_token(&token)
    );
    ns.heal();
    running.expect_lines("INFO serving", 2, LIMIT);
    assert_eq!(
        pids_with_token(&token).len(),
        1,
        "after the partition healed: {}",
        running.stdout()
    );
    running.signal("INT");
    let out = running.wait(LIMIT);
    out.assert_has("(restart 1)");
    assert!(
        wait_until(Duration::from_secs(10), || pids_with_token(&token)
            .is_empty()),
        "left: {:?}",
        pids_with_token(&token)
    );
}
