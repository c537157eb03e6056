//! Local benchmark: distarch against a floor measured in the same run.
//!
//! The floor is a minimal spawner (same worker binary, piped stdout, no supervision,
//! output written to a file). Both are run as child processes so that their peak
//! RSS is measured the same way (wait4's ru_maxrss). Usage:
//! `distarch-bench-local [--instances 1000] [--workers 4] [--lines 250000]`
//! (expects the release or debug build directory of the workspace beside it).
#![allow(unsafe_code)] // wait4(2) for the children's peak RSS
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // a measuring tool: failing loudly is right

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod floor;
use floor::{floor_flood, floor_posix_spawn, floor_start, floor_stop};

#[path = "../bench_args.rs"]
mod bench_args;
use bench_args::{arg, dir};

/// Runs a command to its end; returns wall time and peak RSS (KiB) of that child.
fn measure(mut cmd: Command) -> (Duration, u64, i32) {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    std::mem::forget(child); // already reaped by wait4
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (took, usage.ru_maxrss as u64, code)
}

/// Waits until `ready` says `child` runs everything, sends it SIGTERM and measures
/// until it has exited; returns that time, its peak RSS (KiB) and exit code.
fn measure_stop(child: std::process::Child, ready: impl Fn() -> bool) -> (Duration, u64, i32) {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let mut status = 0;
    // SAFETY: signalling and reaping our own child; rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::kill(pid, libc::SIGTERM);
        libc::wait4(pid, &mut status, 0, &mut usage)
    };
    let took = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    std::mem::forget(child); // already reaped by wait4
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (took, usage.ru_maxrss as u64, code)
}

/// Starts the stop floor and returns it with a flag set once it said `ready`.
fn spawn_floor_stop(
    me: &Path,
    n: u64,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut child = Command::new(me)
        .args(["floor-stop", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("floor-stop");
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let out = child.stdout.take().expect("stdout");
    let f = flag.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line == "ready" {
                f.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    (child, flag)
}

/// VmRSS, RssAnon and RssFile (KiB) of a running process, from /proc/PID/status.
fn rss_now(pid: u32) -> [u64; 3] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    [field("VmRSS:"), field("RssAnon:"), field("RssFile:")]
}

/// Runs `config` until `n` instances said `INFO serving`, samples the master's
/// memory then, and stops it with SIGTERM.
fn memory_run(config: &str, n: u64, tmp: &Path) -> ((Duration, u64, i32), [u64; 3]) {
    let d_out = tmp.join("distarch-mem.log");
    let child = distarch(config, tmp, &d_out).spawn().expect("distarch");
    let (pid, sample) = (child.id(), std::cell::Cell::new([0; 3]));
    let run = measure_stop(child, || {
        let all = count_lines(&d_out, "INFO serving") as u64 >= n;
        if all {
            sample.set(rss_now(pid));
        }
        all
    });
    (run, sample.get())
}

fn distarch(config: &str, tmp: &Path, out: &Path) -> Command {
    let path = tmp.join("bench.toml");
    std::fs::write(&path, config).expect("config");
    let mut cmd = Command::new(dir().join("distarch"));
    cmd.args(["launch", "--no-env", "-c"]).arg(&path);
    cmd.stdout(std::fs::File::create(out).expect("out"));
    cmd
}

/// Counts lines containing `needle` without holding the file in memory (the bench's
/// own size leaks into its children's peak RSS through fork+exec).
fn count_lines(path: &Path, needle: &str) -> usize {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .filter(|l| {
            std::str::from_utf8(l)
                .map(|s| s.contains(needle))
                .unwrap_or(false)
        })
        .count()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("floor-start") => return floor_start(arg("floor-start", 1000), Path::new(&args[3])),
        Some("floor-spawn") => {
            return floor_posix_spawn(arg("floor-spawn", 1000), Path::new(&args[3]))
        }
        Some("floor-stop") => return floor_stop(arg("floor-stop", 100)),
        Some("floor-flood") => {
            return floor_flood(
                args[2].parse().unwrap_or(4),
                args[3].parse().unwrap_or(250_000),
                Path::new(&args[4]),
            )
        }
        _ => {}
    }
    let n = arg("--instances", 1000);
    let workers = arg("--workers", 4);
    let lines = arg("--lines", 250_000);
    let runs = arg("--runs", 3).max(1);
    let tmp = tempfile::tempdir().expect("tmp");
    let me = std::env::current_exe().expect("exe");
    let worker = dir().join("distarch-test-worker");
    let total = workers * lines;
    let start_config = format!(
        "[groups.bench]\ncommand = [{:?}, \"hello\"]\ninstances = {n}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    let flood_config = format!(
        "[groups.flood]\ncommand = [{:?}, \"flood\", \"{lines}\"]\ninstances = {workers}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    // Floor and distarch alternate, run after run, so that a busy machine slows both.
    let (mut fs, mut ds, mut ff, mut df) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ps, mut fstop, mut dstop, mut dmem) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut dmem1, mut msample, mut msample1) = (Vec::new(), Vec::new(), Vec::new());
    let stop_n = arg("--stop-instances", 100);
    let mem_n = arg("--memory-instances", 500);
    let stop_config = format!(
        "[groups.plain]\ncommand = [{:?}, \"silent\"]\ninstances = {stop_n}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    let mem_config = format!(
        "[launcher]\nstop_grace = \"100ms\"\n[groups.sdk]\ncommand = [{:?}, \"serve\"]\ninstances = {mem_n}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    for _ in 0..runs {
        // (1) against the minimal posix_spawn + poll launcher.
        let floor_out = tmp.path().join("floor-spawn.log");
        let mut cmd = Command::new(&me);
        cmd.args(["floor-spawn", &n.to_string()]).arg(&floor_out);
        ps.push(measure(cmd));
        checks.push(format!(
            "(1) posix_spawn floor {}/{n}",
            count_lines(&floor_out, "hello id=")
        ));
        // (4) SIGTERM -> every plain worker gone.
        let (child, flag) = spawn_floor_stop(&me, stop_n);
        fstop.push(measure_stop(child, || {
            flag.load(std::sync::atomic::Ordering::SeqCst)
        }));
        let d_out = tmp.path().join("distarch-stop.log");
        let child = distarch(&stop_config, tmp.path(), &d_out)
            .spawn()
            .expect("distarch");
        dstop.push(measure_stop(child, || {
            count_lines(&d_out, "started (pid") as u64 >= stop_n
        }));
        // (5) master memory with every instance running, and with one.
        let (run, sample) = memory_run(&mem_config, mem_n, tmp.path());
        dmem.push(run);
        msample.push(sample);
        let (run, sample) = memory_run(
            &mem_config.replace(&format!("instances = {mem_n}"), "instances = 1"),
            1,
            tmp.path(),
        );
        dmem1.push(run);
        msample1.push(sample);

        let floor_out = tmp.path().join("floor-start.log");
        let mut cmd = Command::new(&me);
        cmd.args(["floor-start", &n.to_string()]).arg(&floor_out);
        fs.push(measure(cmd));
        checks.push(format!(
            "(1) floor {}/{n}",
            count_lines(&floor_out, "hello id=")
        ));
        let d_out = tmp.path().join("distarch-start.log");
        ds.push(measure(distarch(&start_config, tmp.path(), &d_out)));
        checks.push(format!(
            "(1) distarch {}/{n}",
            count_lines(&d_out, "INFO hello id=")
        ));

        let floor_out = tmp.path().join("floor-flood.log");
        let mut cmd = Command::new(&me);
        cmd.args(["floor-flood", &workers.to_string(), &lines.to_string()])
            .arg(&floor_out);
        ff.push(measure(cmd));
        checks.push(format!(
            "(2) floor {}/{total}",
            count_lines(&floor_out, "xxxxxxxx")
        ));
        let d_out = tmp.path().join("distarch-flood.log");
        df.push(measure(distarch(&flood_config, tmp.path(), &d_out)));
        checks.push(format!(
            "(2) distarch {}/{total}",
            count_lines(&d_out, "xxxxxxxx")
        ));
    }
    let median = |v: &[(Duration, u64, i32)]| {
        let mut t: Vec<Duration> = v.iter().map(|x| x.0).collect();
        t.sort();
        t[t.len() / 2]
    };
    let peak = |v: &[(Duration, u64, i32)]| v.iter().map(|x| x.1).max().unwrap_or(0);
    let (f1, d1, f2, d2) = (median(&fs), median(&ds), median(&ff), median(&df));
    let rate = |t: Duration| total as f64 / t.as_secs_f64();
    rows.push(format!(
        "{:<46} {:>12.3} s {:>12.3} s {:>8.2}x",
        format!("(1) start {n} instances until all ended"),
        f1.as_secs_f64(),
        d1.as_secs_f64(),
        d1.as_secs_f64() / f1.as_secs_f64()
    ));
    let p1 = median(&ps);
    rows.push(format!(
        "{:<46} {:>12.3} s {:>12.3} s {:>8.2}x",
        format!("(1') same, floor = posix_spawn + poll (target 1.2x)"),
        p1.as_secs_f64(),
        d1.as_secs_f64(),
        d1.as_secs_f64() / p1.as_secs_f64()
    ));
    rows.push(format!(
        "{:<46} {:>14.0} {:>14.0} {:>8.2}x",
        format!("(2) lines/s, {workers} workers x {lines} lines"),
        rate(f2),
        rate(d2),
        d2.as_secs_f64() / f2.as_secs_f64()
    ));
    rows.push(format!(
        "{:<46} {:>10} KiB {:>10} KiB",
        "(3) peak RSS during (1)",
        peak(&fs),
        peak(&ds)
    ));
    rows.push(format!(
        "{:<46} {:>10} KiB {:>10} KiB",
        "(3) peak RSS during (2)",
        peak(&ff),
        peak(&df)
    ));
    let (s_floor, s_d) = (median(&fstop), median(&dstop));
    rows.push(format!(
        "{:<46} {:>12.3} s {:>12.3} s {:>8.2}x",
        format!("(4) SIGTERM -> {stop_n} plain workers gone"),
        s_floor.as_secs_f64(),
        s_d.as_secs_f64(),
        s_d.as_secs_f64() / s_floor.as_secs_f64()
    ));
    rows.push(format!(
        "{:<46} {:>10} KiB {:>10} KiB",
        format!("(5) peak RSS, {mem_n} SDK workers running"),
        "-",
        peak(&dmem)
    ));
    rows.push(format!(
        "{:<46} {:>10} KiB {:>10} KiB",
        "(5) peak RSS, 1 SDK worker running",
        "-",
        peak(&dmem1)
    ));
    // Where the memory is, sampled once every instance runs: private memory (heap,
    // stacks) and the pages of the binary and its libraries (shared, clean).
    let last = |v: &[[u64; 3]]| v.last().copied().unwrap_or_default();
    for (n, [rss, anon, file]) in [(mem_n, last(&msample)), (1, last(&msample1))] {
        rows.push(format!(
            "{:<46} {rss:>10} KiB = {anon} KiB private + {file} KiB binary and libraries",
            format!("(5') RSS then, {n} SDK worker(s)"),
        ));
    }
    println!("distarch local benchmark: median of {runs} run(s), floor and distarch alternating");
    println!(
        "{:<46} {:>14} {:>14} {:>9}",
        "measure", "floor", "distarch", "slowdown"
    );
    for row in rows {
        println!("{row}");
    }
    let codes: Vec<i32> = ds
        .iter()
        .chain(&df)
        .chain(&dstop)
        .chain(&dmem)
        .chain(&dmem1)
        .map(|x| x.2)
        .collect();
    println!("distarch exit codes: {codes:?}");
    println!("lines received: {}", checks.join(", "));
    println!("slowdown = distarch time / floor time (target: at most 1.5x; (1') 1.2x)");
    println!("targets: (4) at most 0.05 s; (5) at most 10 MiB (10240 KiB)");
}
