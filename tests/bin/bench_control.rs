//! Control-plane benchmark, each figure next to a baseline measured in the same run.
//!
//! 1. `distarch ps RUN -o json` of a run with N (1000) instances: median wall time of
//!    the whole command, next to reading /proc (stat + cmdline) for the same pids,
//!    which is what `ps`-like tools that have no API do.
//! 2. A flood (N instances printing L lines each) with no client, then with 20
//!    clients (10 looping `ps`, 10 `logs -f`): wall time and the master's peak RSS.
//!
//! Usage: `distarch-bench-control [--instances 1000] [--lines 2000] [--samples 30]`
//! (expects the build directory of the workspace beside it).
#![allow(unsafe_code)] // wait4(2) for the master's peak RSS
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // a measuring tool

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod bench_args;
use bench_args::{arg, dir};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `distarch ARGS` with the bench's runtime directory.
fn distarch(rt: &Path, args: &[&str]) -> Command {
    client(rt, args, Clients::Normal)
}

/// Who the flood's clients compete with.
#[derive(Clone, Copy, PartialEq)]
enum Clients {
    /// No client.
    None,
    /// Clients at the same priority as the flood.
    Normal,
    /// Clients at `nice 19`, as if they ran on other cores or machines: what is
    /// left of the slowdown is the master's own cost of serving them.
    Niced,
}

/// `distarch ARGS` as a client of the given kind.
fn client(rt: &Path, args: &[&str], kind: Clients) -> Command {
    let mut cmd = if kind == Clients::Niced {
        let mut c = Command::new("nice");
        c.args(["-n", "19"]).arg(dir().join("distarch"));
        c
    } else {
        Command::new(dir().join("distarch"))
    };
    cmd.args(args).env("XDG_RUNTIME_DIR", rt);
    cmd.stdin(Stdio::null()).stderr(Stdio::null());
    cmd
}

fn launch(tmp: &Path, rt: &Path, run: &str, config: &str) -> Child {
    let path = tmp.join(format!("{run}.toml"));
    std::fs::write(&path, config).expect("config");
    let mut cmd = distarch(rt, &["launch", "--no-env", "--run-id", run, "-c"]);
    cmd.arg(&path).stdout(Stdio::null());
    cmd.spawn().expect("launch")
}

/// What a master cost: wall time since its start, peak RSS (KiB), CPU time (its own
/// and its reaped workers', as wait4 counts it).
struct Cost {
    wall: Duration,
    rss: u64,
    cpu: Duration,
    /// The CPU time of the clients (every process the bench waited for but the
    /// master: `getrusage(RUSAGE_CHILDREN)` before and after, less the master's).
    clients_cpu: Duration,
}

/// CPU time of every child waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: rusage is plain data that getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    cpu_time(&usage)
}

fn cpu_time(usage: &libc::rusage) -> Duration {
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Waits for the master; returns what it cost.
fn reap(child: Child, start: Instant) -> Cost {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed");
    std::mem::forget(child);
    Cost {
        wall: start.elapsed(),
        rss: usage.ru_maxrss as u64,
        cpu: cpu_time(&usage),
        clients_cpu: Duration::ZERO,
    }
}

fn ps_json(rt: &Path, run: &str) -> Option<serde_json::Value> {
    ps_json_as(rt, run, Clients::Normal)
}

fn ps_json_as(rt: &Path, run: &str, kind: Clients) -> Option<serde_json::Value> {
    let out = client(rt, &["ps", run, "-o", "json"], kind).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn part_ps(tmp: &Path, rt: &Path, n: u64, samples: u64) {
    let worker = dir().join("distarch-test-worker");
    let config = format!(
        "[groups.idle]\ncommand = [{:?}, \"serve\"]\ninstances = {n}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    let master = launch(tmp, rt, "benchps", &config);
    let deadline = Instant::now() + Duration::from_secs(300);
    let pids: Vec<u32> = loop {
        if let Some(v) = ps_json(rt, "benchps") {
            let all = v.as_array().cloned().unwrap_or_default();
            let ready: Vec<u32> = all
                .iter()
                .filter(|i| i["state"] == "ready")
                .filter_map(|i| i["process"].as_str()?.strip_prefix("pid ")?.parse().ok())
                .collect();
            if ready.len() as u64 == n {
                break ready;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the instances did not all get ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut ps = Vec::new();
    let mut proc_read = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        let out = distarch(rt, &["ps", "benchps", "-o", "json"])
            .output()
            .expect("ps");
        ps.push(t.elapsed());
        assert!(out.status.success());
        let t = Instant::now();
        let mut bytes = 0;
        for pid in &pids {
            for f in ["stat", "cmdline", "status"] {
                bytes += std::fs::read(format!("/proc/{pid}/{f}")).map_or(0, |b| b.len());
            }
        }
        proc_read.push(t.elapsed());
        assert!(bytes > 0);
    }
    let _ = distarch(rt, &["stop", "benchps"]).output();
    reap(master, Instant::now());
    println!("ps of {n} instances ({samples} samples, median):");
    println!(
        "  distarch ps RUN -o json (whole command)   {}",
        ms(median(ps))
    );
    println!(
        "  baseline: read /proc/PID/{{stat,cmdline,status}} of the same pids   {}",
        ms(median(proc_read))
    );
}

/// Runs the flood; with clients, 10 `ps` loops and 10 `logs -f` run meanwhile.
fn flood(tmp: &Path, rt: &Path, run: &str, n: u64, lines: u64, clients: Clients) -> (Cost, u64) {
    let worker = dir().join("distarch-test-worker");
    let config = format!(
        "[launcher.control]\nlog_buffer = 65536\n[groups.flood]\ncommand = [{:?}, \"flood\", \"{lines}\"]\ninstances = {n}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    let done = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let before = children_cpu();
    let mut threads = Vec::new();
    if clients != Clients::None {
        for k in 0..20 {
            let (done, requests, rt, run) = (
                done.clone(),
                requests.clone(),
                rt.to_path_buf(),
                run.to_string(),
            );
            threads.push(std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if k % 2 == 0 {
                        if ps_json_as(&rt, &run, clients).is_some() {
                            requests.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        // A follower reads until the run ends.
                        let mut cmd = client(&rt, &["logs", &run, "-f", "-o", "json"], clients);
                        if let Ok(out) = cmd.stdout(Stdio::null()).status() {
                            if out.success() {
                                requests.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }));
        }
    }
    let start = Instant::now();
    let master = launch(tmp, rt, run, &config);
    let mut cost = reap(master, start);
    done.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    cost.clients_cpu = children_cpu()
        .saturating_sub(before)
        .saturating_sub(cost.cpu);
    (cost, requests.load(Ordering::Relaxed))
}

fn main() {
    let n = arg("--instances", 1000);
    let lines = arg("--lines", 2000);
    let samples = arg("--samples", 30).max(1);
    let tmp = tempfile::tempdir().expect("tmp");
    let rt = tmp.path().join("rt");
    std::fs::create_dir_all(&rt).expect("rt");
    part_ps(tmp.path(), &rt, n, samples);
    println!();
    println!("flood: {n} instances x {lines} lines, master output to /dev/null");
    let mut quiet = Vec::new();
    let mut busy = Vec::new();
    let mut niced = Vec::new();
    for round in 0..2 {
        let (q, _) = flood(
            tmp.path(),
            &rt,
            &format!("quiet{round}"),
            n,
            lines,
            Clients::None,
        );
        let (b, asked) = flood(
            tmp.path(),
            &rt,
            &format!("busy{round}"),
            n,
            lines,
            Clients::Normal,
        );
        let (c, asked_niced) = flood(
            tmp.path(),
            &rt,
            &format!("nice{round}"),
            n,
            lines,
            Clients::Niced,
        );
        println!(
            "  round {round}: no client {} | 20 clients {} ({asked} requests) | 20 clients at nice 19 {} ({asked_niced} requests)",
            cost(&q),
            cost(&b),
            cost(&c),
        );
        quiet.push(q);
        busy.push(b);
        niced.push(c);
    }
    let (q, b, c) = (best(&quiet), best(&busy), best(&niced));
    let more = |x: Duration, base: Duration| (x.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0;
    println!(
        "  best of rounds, wall: no client {} | 20 clients {} ({:+.1} %) | 20 clients at nice 19 {} ({:+.1} %)",
        ms(q.0),
        ms(b.0),
        more(b.0, q.0),
        ms(c.0),
        more(c.0, q.0)
    );
    println!(
        "  best of rounds, CPU: no client {} | 20 clients {} ({:+.1} %) | 20 clients at nice 19 {} ({:+.1} %)",
        ms(q.1),
        ms(b.1),
        more(b.1, q.1),
        ms(c.1),
        more(c.1, q.1)
    );
    println!(
        "  (CPU: the master's and its workers', from wait4; the clients are processes on the same {} cores, so their own CPU (shown per round) is in the wall figure unless niced)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

fn cost(c: &Cost) -> String {
    let clients = if c.clients_cpu < Duration::from_millis(1) {
        String::new()
    } else {
        format!(", clients' own CPU {}", ms(c.clients_cpu))
    };
    format!(
        "{} (CPU {}, peak RSS {} MiB{clients})",
        ms(c.wall),
        ms(c.cpu),
        c.rss / 1024
    )
}

/// The best wall time and the best CPU time of the rounds.
fn best(v: &[Cost]) -> (Duration, Duration) {
    (
        v.iter().map(|c| c.wall).min().unwrap_or_default(),
        v.iter().map(|c| c.cpu).min().unwrap_or_default(),
    )
}
