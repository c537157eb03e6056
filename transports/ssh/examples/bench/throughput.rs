//! The throughput figures of the bench: a flood read through the transport, and
//! through the master (`distarch launch`), each next to the local transport.

use crate::{cpu_now, load, median, servers, settings_for, spec_for, FLOODERS, LINES};
use distarch_core::{InstanceSpec, Transport};
use distarch_testkit::sshd::SshFixture;
use distarch_transport_local::LocalTransport;
use distarch_transport_ssh::SshTransport;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

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

/// Reads `out` to its end; returns the lines it held and its last read.
async fn count_lines(out: &mut (impl tokio::io::AsyncRead + Unpin)) -> (usize, Vec<u8>) {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut lines, mut last) = (0, 0);
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        last = n;
    }
    buf.truncate(last);
    (lines, buf)
}

async fn read_all(mut instance: Box<dyn distarch_core::Instance>) -> usize {
    let io = instance.take_io().unwrap();
    // stdin stays open until the output ends: over SSH, closing it means "the
    // master is done with you" (stop_grace, then SIGTERM).
    let stdin = io.stdin;
    let mut out = io.stdout;
    let (lines, _) = count_lines(&mut out).await;
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

pub(crate) async fn throughput(rounds: usize) {
    let fx = servers("");
    let worker = flooder(LINES);
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

/// One flooding worker: `lines` lines of 60 bytes (a shell command).
fn flooder(lines: usize) -> String {
    format!(
        "yes 'line 0000000000 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -n {lines}"
    )
}

/// Runs `cmd` with its stdout read from a pipe; returns the time until it exited
/// and the lines it printed. `what` names it if it fails.
async fn timed_run(mut cmd: tokio::process::Command, what: &str) -> (Duration, usize) {
    let started = Instant::now();
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (lines, last) = count_lines(&mut out).await;
    let status = child.wait().await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        status.success(),
        "{what} failed ({status}): ...{}",
        String::from_utf8_lossy(&last[last.len().saturating_sub(300)..])
    );
    (elapsed, lines)
}

/// `distarch launch` with a group of FLOODERS flooding workers placed as `placement`;
/// returns the time until it exited and the worker lines it printed.
async fn launch_flood(bin: &str, placement: &str, lines: usize) -> (Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[groups.flood]\ncommand = [\"sh\", \"-c\", {:?}]\nplacements.p = {{ {placement}, instances = {FLOODERS} }}\n",
        flooder(lines)
    );
    let path = dir.path().join("distarch.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("launch").arg("-c").arg(&path);
    timed_run(cmd, "distarch launch").await
}

/// The flood's floors without distarch: the same 4 workers in one shell, its output
/// read from a pipe, run on the host through one OpenSSH client (`ssh HOST 'the 4
/// workers'`: the raw channel, no agent, no master) or run locally (`sh -c`).
/// Returns the time until the command exited and the lines read.
async fn raw_flood(fx: &SshFixture, over_ssh: bool, lines: usize) -> (Duration, usize) {
    let workers = format!(
        "for i in $(seq {FLOODERS}); do {} & done; wait",
        flooder(lines)
    );
    let cmd = if over_ssh {
        let s = fx.server(0);
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-i")
            .arg(&fx.client_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", fx.known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            // The cipher russh negotiates with this sshd (docs/transports/ssh.md).
            .args([
                "-o",
                "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com",
            ])
            .args(["-F", "none", "-T", "-p"])
            .arg(s.port.to_string())
            .arg(format!("root@{}", s.ip))
            .arg(&workers);
        cmd
    } else {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c").arg(&workers);
        cmd
    };
    timed_run(cmd, "the raw flood").await
}

pub(crate) async fn throughput_through_master(bin: &str, rounds: usize) {
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
    // Rows: ssh and local through the master, then the floors without distarch.
    let (mut runs, mut setups) = (
        [Vec::new(), Vec::new(), Vec::new(), Vec::new()],
        [Vec::new(), Vec::new(), Vec::new(), Vec::new()],
    );
    let (mut cpu, mut forks) = ([0.0; 4], [0; 4]);
    let mut n = [0; 4];
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
        for (i, over_ssh) in [(2, true), (3, false)] {
            setups[i].push(raw_flood(&fx, over_ssh, 1).await.0);
            let (before, f) = (cpu_now(&fx).0, forks_now());
            let (t, lines) = raw_flood(&fx, over_ssh, LINES).await;
            cpu[i] += cpu_now(&fx).0 - before;
            forks[i] += forks_now() - f;
            runs[i].push(t);
            n[i] = lines;
        }
    }
    let per = rounds.max(1) as f64;
    let t = runs.map(median);
    let setup = setups.map(median);
    let flood = [0, 1, 2, 3].map(|i| t[i].saturating_sub(setup[i]).as_secs_f64());
    println!("## Throughput through the master: `distarch launch`, {FLOODERS} instances x {LINES} lines, its output read from a pipe (median of {})", rounds.max(1));
    println!("| placement | time (launch to exit) | output lines | ratio to local | same run, 1 line per worker | difference: the flood | ratio to local | client-side CPU (the master or the ssh client, + local workers) | processes started on the machine (all of it) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, name) in [
        "ssh (one host)",
        "local",
        "floor: one OpenSSH client, no agent, no master",
        "floor: local `sh -c`, no master",
    ]
    .into_iter()
    .enumerate()
    {
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
