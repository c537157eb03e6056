//! 100,000 jobs over 8 local processes, 2 SSH hosts and 2 Docker containers, with
//! workers of every kind killed mid-run (SIGKILL): every result once, none lost,
//! in input order.

use super::{results, LIMIT};
use distarch_e2e::dockerd::Dockerd;
use distarch_e2e::image::ImageBuilder;
use distarch_e2e::sshd::SshFixture;
use distarch_e2e::*;
use std::process::Command;
use std::time::Duration;

const IMAGE: &str = "distarch-test/jobs:1";
const JOBS: u64 = 100_000;

/// Pids and command lines of the processes whose command line matches `pattern`
/// (local, ssh and container workers all run on this kernel).
fn procs(pattern: &str) -> Vec<(u32, String)> {
    let out = Command::new("pgrep")
        .args(["-af", "--", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pid, cmd) = l.trim().split_once(' ')?;
            Some((pid.parse().ok()?, cmd.to_string()))
        })
        .collect()
}

fn pids(pattern: &str) -> Vec<u32> {
    procs(pattern).into_iter().map(|(p, _)| p).collect()
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[test]
fn a_hundred_thousand_jobs_over_local_ssh_and_docker_with_workers_killed() {
    let mut fx = SshFixture::new();
    fx.start("127.0.0.1");
    fx.start("127.0.0.2");
    fx.trust_all();
    let docker = Dockerd::start();
    ImageBuilder::new(IMAGE)
        .binary(&job_worker_bin(), "/job-worker")
        .busybox()
        .entrypoint(&["/job-worker"])
        .build(&docker);

    let tag = unique_token("jobsmixed");
    // 1 ms of work per job: about 9 s over 12 workers, so workers can be killed
    // in the middle.
    let input: String = (1..=JOBS)
        .map(|i| format!("{{\"sleep_ms\":1,\"n\":{i}}}\n"))
        .collect();
    let w = job_worker_bin().display().to_string();
    let config = format!(
        r#"[groups.w]
command = [{w}, "--tag", "{tag}-{{host}}"]
backoff = {{ initial = "100ms" }}
params = {{ credit = 64 }}
placements.here = {{ transport = "local", instances = 8 }}
placements.remote = {{ transport = "ssh", instances = 1, {ssh} }}
placements.box = {{ transport = "docker", image = "{IMAGE}", host = {h}, network = "none", instances = 2, entrypoint = [], command = ["/job-worker", "--tag", "{tag}-docker"] }}
[groups.w.jobs]
input = "in.txt"
output = "out.jsonl"
keep_order = true
window = 5000
progress = "1s"
"#,
        w = toml_str(&w),
        ssh = fx.placement_settings(&[0, 1]),
        h = toml_str(docker.host()),
    );
    let d = Distarch::new().file("in.txt", &input).config(&config);
    let mut run = d.spawn(&["launch", "--log-level", "info"]);
    let out_path = d.path("out.jsonl");
    let progressed = |n: usize| {
        wait_until(LIMIT, || {
            std::fs::read_to_string(&out_path).is_ok_and(|o| o.lines().count() >= n)
        })
    };
    assert!(progressed(5_000), "no progress:\n{}", run.stdout());
    // Every kind of worker is up (ssh and docker start slower than local ones).
    let up = wait_until(LIMIT, || {
        let all = procs(&format!("--tag {tag}-"));
        all.iter()
            .filter(|(_, c)| c.ends_with("-localhost"))
            .count()
            >= 8
            && all.iter().filter(|(_, c)| c.ends_with("-docker")).count() >= 2
            && all
                .iter()
                .filter(|(_, c)| !c.ends_with("-docker") && !c.ends_with("-localhost"))
                .count()
                >= 2
    });
    assert!(up, "workers: {:?}\n{}", procs(&tag), run.stdout());
    // Kill two local workers, one ssh worker and one container's worker.
    let local = pids(&format!("^{w} --tag {tag}-localhost"));
    assert!(local.len() >= 8, "local workers: {local:?}");
    let all = procs(&format!("^{w} --tag {tag}-"));
    let remote: Vec<u32> = all
        .iter()
        .filter(|(_, cmd)| !cmd.ends_with("-localhost"))
        .map(|(p, _)| *p)
        .collect();
    assert!(!remote.is_empty(), "ssh workers: {all:?}");
    let boxed = pids(&format!("^/job-worker --tag {tag}-docker"));
    assert!(
        !boxed.is_empty(),
        "container workers: {:?}\n{}",
        procs(&tag),
        run.stdout()
            .lines()
            .filter(|l| !l.contains("jobs [w]"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let killed = [local[0], local[3], remote[0], boxed[0]];
    for pid in killed {
        kill(pid);
    }
    let out = run.wait(Duration::from_secs(300));
    assert_eq!(out.code, 0, "every job done: exit code 0\n{out}");
    assert!(
        out.stdout.matches("ended after").count() + out.stdout.matches("killed").count() >= 1,
        "{out}"
    );
    let (order, by_id) = results(&out_path);
    assert_eq!(order.len() as u64, JOBS, "every job once, none lost");
    assert_eq!(order, (1..=JOBS).collect::<Vec<u64>>(), "in input order");
    assert!(by_id.iter().all(|(id, r)| r["n"].as_u64() == Some(*id)));
    let unfinished = std::fs::read_to_string(&out_path)
        .map(|o| o.lines().count())
        .unwrap_or(0);
    assert!(unfinished > 0);
    assert!(
        out.stdout
            .contains(&format!("jobs [w]: finished: {JOBS} done, 0 failed")),
        "{out}"
    );
    assert!(
        out.stdout.contains("retried"),
        "killed workers' jobs were retried:\n{out}"
    );
    // The killed instances came back (restart on failure, the pool default).
    assert!(out.stdout.matches("restarting").count() >= 1, "{out}");
}
