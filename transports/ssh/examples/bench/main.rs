//! Benchmark of the ssh transport against real sshd servers on 127.0.0.1-3 that it
//! starts itself (needs root and openssh-server). Three figures:
//!
//! 1. start: time from launch until 3 hosts x 30 instances have all reported
//!    `ready`, with this transport and with one OpenSSH client process per
//!    instance at a fan-out of 32 (the way pdsh or GNU parallel start remote
//!    workers), with an empty `~/.bashrc` and with a slow one (`sleep 0.3`, like a
//!    `.bashrc` that runs `pyenv init`), plus the server CPU of each;
//! 2. stop: `distarch launch` with the same 90 instances (workers that ignore
//!    SIGTERM), SIGINT, and the time until the master has exited and no worker is
//!    left on any host, next to `stop_grace + kill_after`;
//! 3. throughput: 4 instances on one host each printing 250,000 lines, read
//!    through the transport, next to the same workers run by the local transport;
//!    and the same through the master (`distarch launch`, every line parsed,
//!    prefixed and written to a pipe the bench reads), ssh next to local.
//!
//! Run: `cargo run --release -p distarch-transport-ssh --example bench -- [ROUNDS] [DISTARCH_BIN]`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use distarch_testkit::sshd;

use distarch_core::{InstanceSpec, Transport};
use distarch_transport_ssh::SshTransport;
use sshd::SshFixture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

mod throughput;
use throughput::{throughput, throughput_through_master};

const HOSTS: usize = 3;
const PER_HOST: usize = 30;
const FAN_OUT: usize = 32;
/// The worker: says `ready` as a protocol frame, then waits for stdin to close.
const WORKER: &str = r#"printf '\036{"type":"ready"}\n'; exec cat >/dev/null"#;
const SLOW_BASHRC: &str = "sleep 0.3\n";
pub(crate) const LINES: usize = 250_000;
pub(crate) const FLOODERS: usize = 4;

fn is_ready(line: &str) -> bool {
    line.starts_with('\u{1e}') && line.contains(r#""type":"ready""#)
}

pub(crate) fn settings_for(
    fx: &SshFixture,
    hosts: &[usize],
) -> Arc<serde_json::Map<String, serde_json::Value>> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "hosts": hosts.iter().map(|i| fx.server(*i).entry()).collect::<Vec<_>>(),
            "identity_files": [fx.client_key.display().to_string()],
            "known_hosts": fx.known_hosts.display().to_string(),
            "ssh_config": "none",
        }))
        .unwrap(),
    )
}

pub(crate) fn spec(
    settings: &Arc<serde_json::Map<String, serde_json::Value>>,
    target: String,
    id: usize,
    argv: &[&str],
) -> InstanceSpec {
    spec_for(&SshTransport::new(), settings, target, id, argv)
}

pub(crate) fn spec_for(
    transport: &dyn Transport,
    settings: &Arc<serde_json::Map<String, serde_json::Value>>,
    target: String,
    id: usize,
    argv: &[&str],
) -> InstanceSpec {
    let mut spec = InstanceSpec::builder(argv.iter().copied())
        .run_id("bench")
        .id(id as u64)
        .target(target)
        .stop_times(Duration::from_secs(1), Duration::from_secs(1))
        .plan(
            transport,
            &serde_json::Value::Object(settings.as_ref().clone()),
        )
        .expect("the bench's settings plan");
    spec.group_count = (HOSTS * PER_HOST) as u64;
    spec
}

async fn distarch_round(fx: &SshFixture) -> (Duration, usize) {
    let transport = Arc::new(SshTransport::new());
    let settings = settings_for(fx, &(0..HOSTS).collect::<Vec<_>>());
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for h in 0..HOSTS {
        for n in 0..PER_HOST {
            let transport = transport.clone();
            let spec = spec(
                &settings,
                fx.server(h).entry(),
                h * PER_HOST + n + 1,
                &["sh", "-c", WORKER],
            );
            set.spawn(async move {
                let mut instance = transport.spawn(&spec).await.expect("spawn");
                let io = instance.take_io().expect("io");
                let mut lines = BufReader::new(io.stdout).lines();
                while let Some(line) = lines.next_line().await.expect("read") {
                    if is_ready(&line) {
                        break;
                    }
                }
                (instance, io.stdin)
            });
        }
    }
    let mut running = Vec::new();
    while let Some(r) = set.join_next().await {
        running.push(r.unwrap());
    }
    let elapsed = started.elapsed();
    let mut connections = 0;
    for h in 0..HOSTS {
        connections += transport.connections_to(&fx.server(h).entry()).await;
    }
    for (mut instance, stdin) in running {
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), instance.wait()).await;
        instance.cleanup().await;
    }
    transport.shutdown().await;
    (elapsed, connections)
}

async fn openssh_round(fx: &SshFixture) -> (Duration, usize) {
    let fan_out = Arc::new(Semaphore::new(FAN_OUT));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for h in 0..HOSTS {
        for _ in 0..PER_HOST {
            let s = fx.server(h);
            let (ip, port) = (s.ip.clone(), s.port);
            let key = fx.client_key.clone();
            let known_hosts = fx.known_hosts.clone();
            let fan_out = fan_out.clone();
            set.spawn(async move {
                let _slot = fan_out.acquire_owned().await.unwrap();
                let mut retries = 0;
                loop {
                    let mut child = tokio::process::Command::new("ssh")
                        .arg("-i")
                        .arg(&key)
                        .arg("-o")
                        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
                        .args([
                            "-o",
                            "StrictHostKeyChecking=yes",
                            "-o",
                            "BatchMode=yes",
                            "-F",
                            "none",
                            "-T",
                        ])
                        .arg("-p")
                        .arg(port.to_string())
                        .arg(format!("root@{ip}"))
                        .arg(WORKER)
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::null())
                        .kill_on_drop(true)
                        .spawn()
                        .unwrap();
                    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
                    let mut ready = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if is_ready(&line) {
                            ready = true;
                            break;
                        }
                    }
                    if ready {
                        return (child, retries);
                    }
                    // sshd dropped the connection (MaxStartups): try again, as a
                    // careful script would.
                    let _ = child.wait().await;
                    retries += 1;
                }
            });
        }
    }
    let mut children = Vec::new();
    let mut retries = 0;
    while let Some(r) = set.join_next().await {
        let (child, r) = r.unwrap();
        retries += r;
        children.push(child);
    }
    let elapsed = started.elapsed();
    for mut child in children {
        drop(child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        let _ = child.kill().await;
    }
    (elapsed, retries)
}

/// CPU seconds from /proc/PID/stat: (own utime+stime, reaped children's cutime+cstime).
fn cpu_of(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After the comm field: state is index 0, utime is field 14 overall = index 11.
    let tick = 100.0;
    if f.len() < 15 {
        return (0.0, 0.0);
    }
    ((f[11] + f[12]) / tick, (f[13] + f[14]) / tick)
}

/// Client CPU (this process and its reaped children) and server CPU (what the sshd
/// listeners reaped: connection processes, sessions, workers).
pub(crate) fn cpu_now(fx: &SshFixture) -> (f64, f64) {
    let (own, children) = cpu_of("self");
    let server: f64 = (0..HOSTS)
        .map(|i| cpu_of(&fx.server(i).pid().to_string()).1)
        .sum();
    (own + children, server)
}

async fn settle() {
    // Let sshd reap the finished connections before reading its counters.
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

pub(crate) fn servers(bashrc: &str) -> SshFixture {
    let mut fx = SshFixture::new().with_bashrc(bashrc);
    for i in 0..HOSTS {
        fx.start(&format!("127.0.0.{}", i + 1));
    }
    fx.trust_all();
    fx
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let bin = std::env::args().nth(2);
    println!("## Start: {HOSTS} hosts x {PER_HOST} instances until all reported `ready` (median of {rounds})");
    println!("| remote ~/.bashrc | distarch | OpenSSH per instance, fan-out {FAN_OUT} | speed-up | server CPU distarch / OpenSSH | client CPU distarch / OpenSSH | notes |");
    println!("| --- | ---: | ---: | ---: | --- | --- | --- |");
    // ROUNDS = 0 skips this figure.
    for (name, bashrc) in [("empty", ""), ("`sleep 0.3`", SLOW_BASHRC)] {
        if rounds == 0 {
            break;
        }
        let fx = servers(bashrc);
        compare(&fx, name, rounds).await;
    }
    println!();
    match bin {
        Some(bin) => {
            println!("## Stop: SIGINT to `distarch launch` with {HOSTS} x {PER_HOST} instances that ignore SIGTERM (stop_grace 1s, kill_after 1s)");
            println!("| remote ~/.bashrc | SIGINT -> master exited | SIGINT -> no worker left on any host | target (grace + kill_after + 1 s) |");
            println!("| --- | ---: | ---: | ---: |");
            for (name, bashrc) in [("empty", ""), ("`sleep 0.3`", SLOW_BASHRC)] {
                let fx = servers(bashrc);
                stop_figure(&fx, name, &bin).await;
            }
        }
        None => println!("(stop figure skipped: pass the distarch binary as the second argument)"),
    }
    println!();
    throughput(rounds).await;
    if let Some(bin) = std::env::args().nth(2) {
        println!();
        throughput_through_master(&bin, rounds).await;
    }
}

async fn compare(fx: &SshFixture, name: &str, rounds: usize) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut conns, mut retries) = (0, 0);
    let (mut our_cpu, mut their_cpu) = ((0.0, 0.0), (0.0, 0.0));
    for _ in 0..rounds {
        let before = cpu_now(fx);
        let (t, c) = distarch_round(fx).await;
        settle().await;
        let after = cpu_now(fx);
        our_cpu.0 += after.0 - before.0;
        our_cpu.1 += after.1 - before.1;
        ours.push(t);
        conns = c;
        let before = cpu_now(fx);
        let (t, r) = openssh_round(fx).await;
        settle().await;
        let after = cpu_now(fx);
        their_cpu.0 += after.0 - before.0;
        their_cpu.1 += after.1 - before.1;
        theirs.push(t);
        retries += r;
    }
    let per = |x: f64| x / rounds as f64;
    let (a, b) = (median(ours.clone()), median(theirs.clone()));
    let all = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join("/")
    };
    println!(
        "| {name} | {:.2} s ({}) | {:.2} s ({}) | {:.1}x | {:.2} s / {:.2} s | {:.2} s / {:.2} s | {conns} SSH connections; OpenSSH: {} connections, {retries} retries after MaxStartups drops; load {} |",
        a.as_secs_f64(),
        all(&ours),
        b.as_secs_f64(),
        all(&theirs),
        b.as_secs_f64() / a.as_secs_f64(),
        per(our_cpu.1),
        per(their_cpu.1),
        per(our_cpu.0),
        per(their_cpu.0),
        HOSTS * PER_HOST,
        load(),
    );
}

/// Pids of processes whose command line holds `token`.
fn pids_with(token: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            if cmd.windows(token.len()).any(|w| w == token.as_bytes()) {
                n += 1;
            }
        }
    }
    n
}

async fn stop_figure(fx: &SshFixture, name: &str, bin: &str) {
    let token = format!("dtok-stopbench-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = (0..HOSTS)
        .map(|i| format!("{:?}", fx.server(i).entry()))
        .collect();
    let config = format!(
        "[launcher]\nstop_grace = \"1s\"\nkill_after = \"1s\"\n[groups.g]\ncommand = [\"sh\", \"-c\", \"trap '' TERM; echo up; while :; do sleep 1; done\", \"{token}\"]\nplacements.r = {{ transport = \"ssh\", instances = {PER_HOST}, hosts = [{}], identity_files = [{:?}], known_hosts = {:?}, ssh_config = \"none\" }}\n",
        hosts.join(", "),
        fx.client_key.display().to_string(),
        fx.known_hosts.display().to_string(),
    );
    let path = dir.path().join("distarch.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(bin)
        .arg("launch")
        .arg("-c")
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut up = 0;
    while up < HOSTS * PER_HOST {
        match lines.next_line().await.unwrap() {
            Some(l) if l.ends_with("INFO up") => up += 1,
            Some(_) => {}
            None => panic!("distarch ended early"),
        }
    }
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    assert_eq!(pids_with(&token), HOSTS * PER_HOST);
    let started = Instant::now();
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let status = child.wait().await.unwrap();
    let exited = started.elapsed();
    while pids_with(&token) > 0 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = started.elapsed();
    let _ = drain.await;
    println!(
        "| {name} | {:.2} s (exit {}) | {:.2} s | 3.00 s |",
        exited.as_secs_f64(),
        status.code().unwrap_or(-1),
        gone.as_secs_f64()
    );
}
