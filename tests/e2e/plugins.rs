//! End-to-end: transport plugins (issue 17). Groups on the Python plugin
//! (`plugins/python/distarch-transport-pgroup`) and the Rust one
//! (`distarch-transport-rlocal`, built from plugins/rlocal), mixed with local
//! instances in one group, through `distarch stop`, SIGINT, a master SIGKILL (the
//! plugins end their instances), a plugin that dies mid-run, and gc.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::procs::{processes, unique_token};
use distarch_e2e::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// PATH with both plugins on it.
fn plugin_path() -> String {
    let bin_dir = distarch_bin().parent().unwrap().display().to_string();
    let py = repo_root().join("plugins/python").display().to_string();
    format!(
        "{py}:{bin_dir}:{}",
        std::env::var("PATH").unwrap_or_default()
    )
}

fn worker() -> String {
    toml_str(test_worker_bin().display().to_string())
}

fn distarch(config: &str) -> Distarch {
    Distarch::new().config(config).env("PATH", &plugin_path())
}

/// One group `w` of SDK workers: 2 on pgroup, 2 on rlocal, 1 local.
fn mixed(token: &str) -> String {
    format!(
        "[launcher]\nstop_grace = \"2s\"\n[groups.w]\ncommand = [{w}, \"serve\", \"--tag\", \"{token}\"]\ntimeout = \"0s\"\n\
         [groups.w.placements.py]\ntransport = \"pgroup\"\ninstances = 2\n\
         [groups.w.placements.rs]\ntransport = \"rlocal\"\ninstances = 2\n\
         [groups.w.placements.loc]\ntransport = \"local\"\ninstances = 1\n",
        w = worker()
    )
}

/// Pids of the plugin processes started by `master`.
fn plugins_of(master: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == master && p.cmdline().contains("distarch-transport-"))
        .map(|p| p.pid)
        .collect()
}

fn start_mixed(token: &str, run_id: &str) -> (Distarch, Running) {
    let d = distarch(&mixed(token));
    let running = d.spawn(&["launch", "--run-id", run_id]);
    running.expect_lines("ready", 5, LIMIT);
    assert_eq!(pids_with_token(token).len(), 5, "{}", running.stdout());
    let out = running.stdout();
    assert_eq!(out.matches("via pgroup)").count(), 2, "{out}");
    assert_eq!(out.matches("via rlocal)").count(), 2, "{out}");
    (d, running)
}

#[test]
fn a_mixed_group_stops_through_distarch_stop() {
    let token = unique_token("plug-stop");
    let id = token.replace("dtok-", "");
    let (d, mut running) = start_mixed(&token, &id);
    let plugins = plugins_of(running.pid());
    assert_eq!(plugins.len(), 2, "one process per plugin: {plugins:?}");
    let stop = d.run(&["stop", &id], LIMIT);
    assert_eq!(stop.code, 0, "{stop:?}");
    let out = running.wait(LIMIT);
    // Every instance got the stop frame over its stdin and answered on stdout.
    assert_eq!(out.lines_with("got stop").len(), 5, "{}", out.stdout);
    assert_eq!(
        out.lines_with("ended after a stop request: exit code 0")
            .len(),
        5,
        "{}",
        out.stdout
    );
    assert_no_leftovers(&token, Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(10), || plugins
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())),
        "plugins still run after the run ended"
    );
}

#[test]
fn sigint_stops_a_mixed_group() {
    let token = unique_token("plug-int");
    let id = token.replace("dtok-", "");
    let (_d, mut running) = start_mixed(&token, &id);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.lines_with("got stop").len(), 5, "{}", out.stdout);
    assert_eq!(out.code, 130, "{}", out.stdout);
    assert_no_leftovers(&token, Duration::from_secs(10));
}

#[test]
fn master_sigkill_leaves_nothing_behind() {
    let token = unique_token("plug-kill");
    let id = token.replace("dtok-", "");
    let (_d, mut running) = start_mixed(&token, &id);
    let plugins = plugins_of(running.pid());
    assert_eq!(plugins.len(), 2);
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    // The plugins see their stdin close and end their instances.
    assert_no_leftovers(&token, Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(10), || plugins
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())),
        "plugins outlived their master"
    );
}

#[test]
fn stdio_exit_codes_and_environment_through_both_plugins() {
    let config = "[groups.x]\ncommand = [\"sh\", \"-c\", \"echo id=$DISTARCH_ID; echo to-stderr >&2; exit 3\"]\n\
         [groups.x.placements.py]\ntransport = \"pgroup\"\ninstances = 1\n\
         [groups.x.placements.rs]\ntransport = \"rlocal\"\ninstances = 1\n";
    let out = distarch(config).run(&["launch"], LIMIT);
    assert_eq!(out.lines_with("id=").len(), 2, "{}", out.stdout);
    assert_eq!(out.lines_with("WARN to-stderr").len(), 2, "{}", out.stdout);
    assert_eq!(out.lines_with("exit code 3").len(), 2, "{}", out.stdout);
    assert_ne!(out.code, 0);
}

#[test]
fn unknown_transport_and_bad_settings_are_named() {
    let cfg = "[groups.x]\ncommand = [\"true\"]\n[groups.x.placements.p]\ntransport = \"nosuchplug\"\ninstances = 1\n";
    let out = distarch(cfg).run(&["launch"], LIMIT);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(
            "groups.x.placements.p.transport: unknown transport `nosuchplug`: no built-in and no distarch-transport-nosuchplug on PATH"
        ),
        "{}",
        out.stderr
    );
    let cfg = "[groups.x]\ncommand = [\"true\"]\n[groups.x.placements.p]\ntransport = \"pgroup\"\ninstances = 1\numask = \"9x\"\ncpus = []\n\
               [groups.x.placements.q]\ntransport = \"rlocal\"\ninstances = 1\nbogus = 1\n";
    let out = distarch(cfg).run(&["launch"], LIMIT);
    assert_ne!(out.code, 0);
    for needle in [
        "groups.x.placements.p.umask",
        "groups.x.placements.p.cpus",
        "groups.x.placements.q: unknown key `bogus`",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    let cfg = "[groups.x]\ncommand = [\"true\"]\n[groups.x.placements.p]\ntransport = \"mine\"\nplugin = \"/nonexistent/plug\"\ninstances = 1\n";
    let out = distarch(cfg).run(&["launch"], LIMIT);
    assert!(
        out.stderr
            .contains("plugin = \"/nonexistent/plug\" is not an executable file"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_plugin_that_dies_loses_its_instances_and_the_master_goes_on() {
    let token = unique_token("plug-crash");
    let cfg = format!(
        "[launcher]\nstop_grace = \"2s\"\n[groups.w]\ncommand = [{w}, \"serve\", \"--tag\", \"{token}\"]\ntimeout = \"0s\"\nrestart = \"on-failure\"\n\
         [groups.w.placements.py]\ntransport = \"pgroup\"\ninstances = 2\n\
         [groups.w.placements.loc]\ntransport = \"local\"\ninstances = 1\n",
        w = worker()
    );
    let d = distarch(&cfg);
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("ready", 3, LIMIT);
    let plugins = plugins_of(running.pid());
    assert_eq!(plugins.len(), 1);
    std::process::Command::new("kill")
        .args(["-9", &plugins[0].to_string()])
        .status()
        .unwrap();
    running.expect_lines("lost: plugin `pgroup`", 2, LIMIT);
    // The local instance still serves; the run is still there to stop.
    assert!(
        running.stdout().contains("exited (signal: 9"),
        "{}",
        running.stdout()
    );
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(
        out.lines_with("[localhost]")
            .iter()
            .filter(|l| l.contains("got stop"))
            .count(),
        1,
        "{}",
        out.stdout
    );
    assert_no_leftovers(&token, Duration::from_secs(10));
}

#[test]
fn gc_kills_what_a_run_left_when_master_and_plugin_died() {
    let token = unique_token("plug-gc");
    let w = test_worker_bin().display().to_string();
    // The worker leaves a child in its process group: PR_SET_PDEATHSIG ends the
    // worker with the plugin, not the child; gc ends that.
    let script = format!("'{w}' silent --tag {token} & exec '{w}' silent --tag {token}");
    let cfg = format!(
        "[groups.w]\ncommand = [\"sh\", \"-c\", {s}]\ntimeout = \"0s\"\n[groups.w.placements.py]\ntransport = \"pgroup\"\ninstances = 2\n",
        s = toml_str(script)
    );
    let d = distarch(&cfg);
    let mut running = d.spawn(&["launch"]);
    assert!(
        wait_until(LIMIT, || pids_with_token(&token).len() == 4),
        "{}",
        running.stdout()
    );
    let plugins = plugins_of(running.pid());
    assert_eq!(plugins.len(), 1);
    // Both at once: nobody is left to end the instances.
    std::process::Command::new("kill")
        .args(["-9", &plugins[0].to_string(), &running.pid().to_string()])
        .status()
        .unwrap();
    let _ = running.wait(LIMIT);
    assert!(
        wait_until(Duration::from_secs(10), || pids_with_token(&token).len()
            == 2),
        "the workers die with the plugin, their children stay: {:?}",
        pids_with_token(&token)
    );
    let dry = d.run(&["gc", "--dry-run"], LIMIT);
    assert!(
        dry.stdout.contains("gc: pgroup: run")
            && dry.stdout.contains("would kill 2 process groups"),
        "{dry:?}"
    );
    assert_eq!(pids_with_token(&token).len(), 2);
    let gc = d.run(&["gc"], LIMIT);
    assert_eq!(gc.code, 0, "{gc:?}");
    assert!(gc.stdout.contains("killed 2 process groups"), "{gc:?}");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn plugin_check_passes_both_plugins_and_fails_a_broken_one() {
    let d = distarch("[groups.x]\ncommand = [\"true\"]\n");
    let rlocal = distarch_bin()
        .parent()
        .unwrap()
        .join("distarch-transport-rlocal");
    let pgroup = repo_root().join("plugins/python/distarch-transport-pgroup");
    for plugin in [&pgroup, &rlocal] {
        let out = d.run(&["plugin-check", "--", plugin.to_str().unwrap()], LIMIT);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("13 passed, 0 failed"), "{out:?}");
    }
    // A plugin that answers every request with protocol 0.
    let broken = d.path("distarch-transport-broken");
    std::fs::write(
        &broken,
        "#!/bin/sh\nwhile read -r l; do echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocol\":0}}'; done\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", broken.to_str().unwrap()])
        .status()
        .unwrap();
    let out = d.run(&["plugin-check", "--", broken.to_str().unwrap()], LIMIT);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("FAIL handshake: plugin `broken`"),
        "{out:?}"
    );
    assert!(out.stdout.contains("speaks plugin protocol 0"), "{out:?}");
    assert!(out.stdout.contains("0 passed, 13 failed"), "{out:?}");
}

#[test]
fn a_hung_plugin_is_reported_and_killed() {
    let d = distarch("[groups.x]\ncommand = [\"true\"]\n[groups.x.placements.p]\ntransport = \"hang\"\ninstances = 1\n");
    let hang = d.path("distarch-transport-hang");
    std::fs::write(&hang, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x", hang.to_str().unwrap()])
        .status()
        .unwrap();
    let path = format!("{}:{}", d.dir().display(), plugin_path());
    let d = d.env("PATH", &path).env("DISTARCHPLUGIN_TIMEOUT", "1s");
    let started = std::time::Instant::now();
    let out = d.run(&["launch"], LIMIT);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("hung: no answer to `initialize` within 1s; it was killed"),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
