//! The control verbs on ssh and docker placements: scale, stop, suspend and resume
//! act on remote processes and containers exactly as on local ones.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

#[path = "control/steer.rs"]
#[allow(dead_code)]
mod steer;

use distarch_e2e::dockerd::Dockerd;
use distarch_e2e::image::ImageBuilder;
use distarch_e2e::sshd::SshFixture;
use distarch_e2e::*;
use std::time::Duration;
use steer::*;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn scale_stop_suspend_resume_on_ssh_hosts() {
    let mut fx = SshFixture::new();
    fx.start("127.0.0.1");
    fx.start("127.0.0.2");
    fx.trust_all();
    let token = unique_token("ctlssh");
    let config = format!(
        "[groups.g]\ncommand = [{w}, \"steady\", \"--tag\", \"{token}\"]\nplacements.remote = {{ transport = \"ssh\", instances = 1, {settings} }}\n",
        w = worker(),
        settings = fx.placement_settings(&[0, 1]),
    );
    let s = Steer::launch(&config, "ssh00001", &[], 2);
    // The loopback "hosts" share this machine: one look sees every instance.
    let remote = || fx.remote_pids(0, &token).len();
    // Two hosts with one each; a third instance goes to a least used host.
    let up = s.json(&["scale", "ssh00001", "g.remote=3"]);
    assert_eq!(up[0]["added"], serde_json::json!([3]));
    s.wait_instances("three ready", WAIT, |all| all_in(all, &[1, 2, 3], "ready"));
    assert!(wait_until(WAIT, || remote() == 3));
    s.master.expect_lines("INFO group count now 3", 2, WAIT);
    s.master
        .expect_lines("INFO steady id=3 group_id=3 count=3", 1, WAIT);
    // Down to one: ids 3 and 2 go, their remote processes with them.
    let down = s.json(&["scale", "ssh00001", "g=1"]);
    assert_eq!(down[0]["count"], 1);
    assert!(wait_until(WAIT, || remote() == 1), "remote processes left");
    assert_eq!(ids(&s.instances(), "g"), [1]);
    // Suspend: nothing left on the hosts; resume: the same id again.
    assert_eq!(answer_ids(&s.json(&["suspend", "ssh00001", "g"])), [1]);
    assert!(wait_until(WAIT, || remote() == 0), "suspended but running");
    assert!(all_in(&s.instances(), &[1], "suspended"));
    assert_eq!(answer_ids(&s.json(&["resume", "ssh00001", "g"])), [1]);
    s.wait_instances("resumed", WAIT, |all| all_in(all, &[1], "ready"));
    assert!(wait_until(WAIT, || remote() == 1));
    // Stop the last instance: the run has nothing left and ends by itself.
    assert_eq!(answer_ids(&s.json(&["stop", "ssh00001", "1"])), [1]);
    assert!(wait_until(WAIT, || remote() == 0));
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
}

const IMAGE: &str = "distarch-test/worker:1";

#[test]
fn scale_stop_suspend_resume_on_docker() {
    let d = Dockerd::start();
    ImageBuilder::new(IMAGE)
        .binary(&test_worker_bin(), "/worker")
        .binary(&example_worker_bin(), "/example-worker")
        .busybox()
        .entrypoint(&["/worker"])
        .build(&d);
    let run = format!("dock{}", std::process::id() % 100_000);
    let config = format!(
        "[groups.g]\ncommand = [\"steady\"]\nplacements.box = {{ transport = \"docker\", image = \"{IMAGE}\", host = {h}, network = \"none\", instances = 2 }}\n",
        h = toml_str(d.host())
    );
    let s = Steer::launch(&config, &run, &[], 2);
    let running = || d.run_containers(&run, false).len();
    assert_eq!(running(), 2);
    let up = s.json(&["scale", &run, "g=4"]);
    assert_eq!(up[0]["added"], serde_json::json!([3, 4]));
    s.wait_instances("four ready", WAIT, |all| {
        all_in(all, &[1, 2, 3, 4], "ready")
    });
    assert_eq!(running(), 4);
    s.master
        .expect_lines("INFO steady id=4 group_id=4 count=4", 1, WAIT);
    s.master.expect_lines("INFO group count now 4", 2, WAIT);
    let down = s.json(&["scale", &run, "g=1"]);
    assert_eq!(down[0]["count"], 1);
    assert!(
        wait_until(WAIT, || running() == 1),
        "{:?}",
        d.run_containers(&run, false)
    );
    assert_eq!(answer_ids(&s.json(&["suspend", &run, "g"])), [1]);
    assert!(wait_until(WAIT, || running() == 0));
    assert_eq!(answer_ids(&s.json(&["resume", &run, "g"])), [1]);
    s.wait_instances("resumed", WAIT, |all| all_in(all, &[1], "ready"));
    assert!(wait_until(WAIT, || running() == 1));
    s.master.expect_lines(
        "[g] [docker] [1/1] INFO steady id=1 group_id=1 count=1",
        1,
        WAIT,
    );
    // Stop the last instance: the run has nothing left and ends by itself.
    assert_eq!(answer_ids(&s.json(&["stop", &run, "1"])), [1]);
    assert!(wait_until(WAIT, || running() == 0));
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
}
