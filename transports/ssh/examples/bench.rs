//! Benchmark: time from launch until every instance has reported `ready`, for 3
//! hosts x 30 instances, with this transport and with one OpenSSH client process
//! per instance at a fan-out of 32 (the way pdsh or GNU parallel start remote
//! workers). Starts its own sshd servers on 127.0.0.1-3 (needs root and
//! openssh-server).
//!
//! Run: `cargo run --release -p distarch-transport-ssh --example bench [ROUNDS]`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../../tests/harness/sshd.rs"]
mod sshd;

use distarch_core::{InstanceSpec, Transport};
use distarch_transport_ssh::SshTransport;
use sshd::SshFixture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

const HOSTS: usize = 3;
const PER_HOST: usize = 30;
const FAN_OUT: usize = 32;
/// The worker: says `ready` as a protocol frame, then waits for stdin to close.
const WORKER: &str = r#"printf '\036{"type":"ready"}\n'; exec cat >/dev/null"#;

fn is_ready(line: &str) -> bool {
    line.starts_with('\u{1e}') && line.contains(r#""type":"ready""#)
}

async fn distarch_round(fx: &SshFixture) -> (Duration, usize) {
    let transport = Arc::new(SshTransport::new());
    let settings: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "hosts": (0..HOSTS).map(|i| fx.server(i).entry()).collect::<Vec<_>>(),
            "identity_files": [fx.client_key.display().to_string()],
            "known_hosts": fx.known_hosts.display().to_string(),
            "ssh_config": "none",
        }))
        .unwrap();
    let settings = Arc::new(settings);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for h in 0..HOSTS {
        for n in 0..PER_HOST {
            let transport = transport.clone();
            let spec = InstanceSpec {
                run_id: "bench".into(),
                group: "g".into(),
                placement: "p".into(),
                id: (h * PER_HOST + n + 1) as u64,
                group_id: (h * PER_HOST + n + 1) as u64,
                group_count: (HOSTS * PER_HOST) as u64,
                target: fx.server(h).entry(),
                host: fx.server(h).entry(),
                restart: 0,
                command: vec!["sh".into(), "-c".into(), WORKER.into()],
                env: Default::default(),
                workdir: None,
                priority: None,
                settings: settings.clone(),
                stop_grace: Duration::from_secs(1),
                kill_after: Duration::from_secs(1),
            };
            set.spawn(async move {
                let mut instance = transport.spawn(&spec).await.expect("spawn");
                let spawned = started.elapsed();
                let io = instance.take_io().expect("io");
                let mut lines = BufReader::new(io.stdout).lines();
                while let Some(line) = lines.next_line().await.expect("read") {
                    if is_ready(&line) {
                        break;
                    }
                }
                if std::env::var_os("BENCH_TRACE").is_some() {
                    eprintln!(
                        "{:>8.3} spawned {:>8.3} ready {}",
                        spawned.as_secs_f64(),
                        started.elapsed().as_secs_f64(),
                        spec.target
                    );
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
fn cpu_now(fx: &SshFixture) -> (f64, f64) {
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for empty_bashrc in [false, true] {
        let mut fx = SshFixture::new();
        if empty_bashrc {
            fx = fx.with_empty_bashrc();
        }
        for i in 0..HOSTS {
            fx.start(&format!("127.0.0.{}", i + 1));
        }
        fx.trust_all();
        println!();
        if empty_bashrc {
            println!("## sshd with an empty ~/.bashrc (a private mount namespace hides the machine's own)");
        } else {
            println!("## sshd as the machine is (bash sources ~/.bashrc for every SSH command)");
        }
        compare(&fx, rounds).await;
    }
}

async fn compare(fx: &SshFixture, rounds: usize) {
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
    println!("{HOSTS} hosts x {PER_HOST} instances = {} workers, time until all reported `ready` (median of {rounds}):", HOSTS * PER_HOST);
    println!("| method | median | all rounds | CPU client + server per round | notes |");
    println!("| --- | ---: | --- | --- | --- |");
    println!(
        "| distarch ssh transport (russh, shared connections) | {:.3} s | {} | {:.2} s + {:.2} s | {conns} SSH connections in all |",
        a.as_secs_f64(),
        ours.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>().join(" / "),
        per(our_cpu.0),
        per(our_cpu.1),
    );
    println!(
        "| one OpenSSH client per instance, fan-out {FAN_OUT} | {:.3} s | {} | {:.2} s + {:.2} s | {} connections per round; {retries} retries after sshd dropped a connection (MaxStartups) |",
        b.as_secs_f64(),
        theirs.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>().join(" / "),
        per(their_cpu.0),
        per(their_cpu.1),
        HOSTS * PER_HOST
    );
    println!(
        "speed-up: {:.1}x in wall time, {:.1}x in CPU time (machine load average now: {})",
        b.as_secs_f64() / a.as_secs_f64(),
        (their_cpu.0 + their_cpu.1) / (our_cpu.0 + our_cpu.1).max(0.001),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
}
