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
use distarch_transport_local::LocalTransport;
use distarch_transport_ssh::SshTransport;
use sshd::SshFixture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::Semaphore;

const HOSTS: usize = 3;
const PER_HOST: usize = 30;
const FAN_OUT: usize = 32;
/// The worker: says `ready` as a protocol frame, then waits for stdin to close.
const WORKER: &str = r#"printf '\036{"type":"ready"}\n'; exec cat >/dev/null"#;
const SLOW_BASHRC: &str = "sleep 0.3\n";
const LINES: usize = 250_000;
const FLOODERS: usize = 4;

fn is_ready(line: &str) -> bool {
    line.starts_with('\u{1e}') && line.contains(r#""type":"ready""#)
}

fn settings_for(
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

fn spec(
    settings: &Arc<serde_json::Map<String, serde_json::Value>>,
    target: String,
    id: usize,
    argv: &[&str],
) -> InstanceSpec {
    spec_for(&SshTransport::new(), settings, target, id, argv)
}

fn spec_for(
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
fn cpu_now(fx: &SshFixture) -> (f64, f64) {
    let (own, children) = cpu_of("self");
    let server: f64 = (0..HOSTS)
        .map(|i| cpu_of(&fx.server(i).pid().to_string()).1)
        .sum();
    (own + children, server)
}

/// Processes started on this machine since boot (/proc/stat `processes`): every
/// fork, the bench's hosts' included, and other users' too.
fn forks_now() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("processes "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn settle() {
    // Let sshd reap the finished connections before reading its counters.
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

fn servers(bashrc: &str) -> SshFixture {
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

async fn read_all(mut instance: Box<dyn distarch_core::Instance>) -> usize {
    let io = instance.take_io().unwrap();
    // stdin stays open until the output ends: over SSH, closing it means "the
    // master is done with you" (stop_grace, then SIGTERM).
    let stdin = io.stdin;
    let mut out = io.stdout;
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0;
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
    }
    drop(stdin);
    let _ = instance.wait().await;
    instance.cleanup().await;
    lines
}

async fn flood(transport: Arc<dyn Transport>, specs: Vec<InstanceSpec>) -> (Duration, usize) {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for spec in specs {
        let transport = transport.clone();
        set.spawn(async move { read_all(transport.spawn(&spec).await.expect("spawn")).await });
    }
    let mut lines = 0;
    while let Some(n) = set.join_next().await {
        lines += n.unwrap();
    }
    (started.elapsed(), lines)
}

async fn throughput(rounds: usize) {
    let fx = servers("");
    let worker = format!(
        "yes 'line 0000000000 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -n {LINES}"
    );
    let argv = ["sh", "-c", worker.as_str()];
    let ssh_settings = settings_for(&fx, &[0]);
    let local_settings = Arc::new(serde_json::Map::new());
    let ssh: Arc<dyn Transport> = Arc::new(SshTransport::new());
    let local: Arc<dyn Transport> = Arc::new(LocalTransport::new());
    let specs = |transport: &Arc<dyn Transport>,
                 settings: &Arc<serde_json::Map<String, serde_json::Value>>,
                 target: String| {
        (1..=FLOODERS)
            .map(|i| spec_for(transport.as_ref(), settings, target.clone(), i, &argv))
            .collect::<Vec<_>>()
    };
    // Warm the connection so the figure is the stream, not the handshake.
    let (_, _) = flood(
        ssh.clone(),
        specs(&ssh, &ssh_settings, fx.server(0).entry())[..1].to_vec(),
    )
    .await;
    let (mut ts, mut tl, mut n_ssh, mut n_local, mut forks_ssh, mut forks_local) =
        (Vec::new(), Vec::new(), 0, 0, 0, 0);
    for _ in 0..rounds.max(1) {
        let forks = forks_now();
        let (t, n) = flood(
            ssh.clone(),
            specs(&ssh, &ssh_settings, fx.server(0).entry()),
        )
        .await;
        forks_ssh = forks_now() - forks;
        ts.push(t);
        n_ssh = n;
        let forks = forks_now();
        let (t, n) = flood(
            local.clone(),
            specs(&local, &local_settings, "localhost".into()),
        )
        .await;
        forks_local = forks_now() - forks;
        tl.push(t);
        n_local = n;
    }
    let (t_ssh, t_local) = (median(ts), median(tl));
    println!("## Throughput: {FLOODERS} instances x {LINES} lines of 60 bytes, read through the transport (median of {}; processes: the last round)", rounds.max(1));
    println!("| transport | time | lines | lines/s | ratio to local | processes started on the machine (all of it) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, t, n, forks) in [
        ("ssh (one host)", t_ssh, n_ssh, forks_ssh),
        ("local", t_local, n_local, forks_local),
    ] {
        println!(
            "| {name} | {:.2} s | {n} | {:.0} | {:.2}x | {forks} |",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64(),
            t.as_secs_f64() / t_local.as_secs_f64()
        );
    }
    println!("(load average now: {})", load());
}

/// `distarch launch` with a group of FLOODERS flooding workers placed as `placement`;
/// returns the time until it exited and the worker lines it printed.
async fn launch_flood(bin: &str, placement: &str, lines: usize) -> (Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[groups.flood]\ncommand = [\"sh\", \"-c\", \"yes 'line 0000000000 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -n {lines}\"]\nplacements.p = {{ {placement}, instances = {FLOODERS} }}\n"
    );
    let path = dir.path().join("distarch.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .arg("launch")
        .arg("-c")
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut lines = 0;
    let mut last = Vec::new();
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        last = buf[..n].to_vec();
    }
    let status = child.wait().await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        status.success(),
        "distarch launch failed ({status}): ...{}",
        String::from_utf8_lossy(&last[last.len().saturating_sub(300)..])
    );
    (elapsed, lines)
}

async fn throughput_through_master(bin: &str, rounds: usize) {
    let fx = servers("");
    let ssh = format!(
        "transport = \"ssh\", hosts = [{:?}], identity_files = [{:?}], known_hosts = {:?}, ssh_config = \"none\"",
        fx.server(0).entry(),
        fx.client_key.display().to_string(),
        fx.known_hosts.display().to_string(),
    );
    let local = "transport = \"local\"";
    // Client CPU: this process and its reaped children, the master among them.
    // (The server's figure from sshd's reaped children is left out: it stays
    // near zero here however busy the agent was, so something under sshd is not
    // reaped by its parent.)
    let (mut runs, mut setups) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let (mut cpu, mut forks) = ([0.0; 2], [0; 2]);
    let mut n = [0; 2];
    for _ in 0..rounds.max(1) {
        for (i, placement) in [&ssh, &local.to_string()].into_iter().enumerate() {
            // The same run with one line per worker: launch, connection and
            // agent start, and exit, without the flood.
            setups[i].push(launch_flood(bin, placement, 1).await.0);
            let (before, f) = (cpu_now(&fx).0, forks_now());
            let (t, lines) = launch_flood(bin, placement, LINES).await;
            cpu[i] += cpu_now(&fx).0 - before;
            forks[i] += forks_now() - f;
            runs[i].push(t);
            n[i] = lines;
        }
    }
    let per = rounds.max(1) as f64;
    let t = runs.map(median);
    let setup = setups.map(median);
    let flood = [0, 1].map(|i| t[i].saturating_sub(setup[i]).as_secs_f64());
    println!("## Throughput through the master: `distarch launch`, {FLOODERS} instances x {LINES} lines, its output read from a pipe (median of {})", rounds.max(1));
    println!("| placement | time (launch to exit) | output lines | ratio to local | same run, 1 line per worker | difference: the flood | ratio to local | CPU of the master (+ local workers) | processes started on the machine (all of it) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, name) in ["ssh (one host)", "local"].into_iter().enumerate() {
        println!(
            "| {name} | {:.2} s | {} | {:.2}x | {:.2} s | {:.2} s | {:.2}x | {:.2} s | {} |",
            t[i].as_secs_f64(),
            n[i],
            t[i].as_secs_f64() / t[1].as_secs_f64(),
            setup[i].as_secs_f64(),
            flood[i],
            flood[i] / flood[1],
            cpu[i] / per,
            forks[i] / rounds.max(1) as u64,
        );
    }
    println!("(load average now: {})", load());
}
