//! Local benchmark: distarch against a floor measured in the same run.
//!
//! The floor is a minimal spawner (same worker binary, piped stdout, no supervision,
//! output written to a file). Both are run as child processes so that their peak
//! RSS is measured the same way (wait4's ru_maxrss). Usage:
//! `distarch-bench-local [--instances 1000] [--workers 4] [--lines 250000]`
//! (expects the release or debug build directory of the workspace beside it).
#![allow(unsafe_code)] // wait4(2) for the children's peak RSS
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // a measuring tool: failing loudly is right

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// Floor for (1): start N workers with piped stdout, read their line, wait for all.
fn floor_start(n: u64, out: &Path) {
    let worker = dir().join("distarch-test-worker");
    let mut file = BufWriter::new(std::fs::File::create(out).expect("out file"));
    let mut children = Vec::new();
    for _ in 0..n {
        let child = Command::new(&worker)
            .arg("hello")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        children.push(child);
    }
    for mut child in children {
        let mut text = String::new();
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut text);
        }
        let _ = file.write_all(text.as_bytes());
        let _ = child.wait();
    }
}

/// Floor for (2): W flooding workers, one thread each copying lines to one file.
fn floor_flood(workers: u64, lines: u64, out: &Path) {
    let worker = dir().join("distarch-test-worker");
    let file = std::sync::Arc::new(std::sync::Mutex::new(BufWriter::new(
        std::fs::File::create(out).expect("out"),
    )));
    let mut threads = Vec::new();
    for _ in 0..workers {
        let mut child = Command::new(&worker)
            .args(["flood", &lines.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let file = file.clone();
        threads.push(std::thread::spawn(move || {
            let reader = BufReader::with_capacity(64 * 1024, child.stdout.take().expect("stdout"));
            let mut batch = Vec::with_capacity(64 * 1024);
            for line in reader.split(b'\n') {
                let Ok(line) = line else { break };
                batch.extend_from_slice(&line);
                batch.push(b'\n');
                if batch.len() >= 60 * 1024 {
                    let _ = file.lock().expect("lock").write_all(&batch);
                    batch.clear();
                }
            }
            let _ = file.lock().expect("lock").write_all(&batch);
            let _ = child.wait();
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    let _ = file.lock().expect("lock").flush();
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
    for _ in 0..runs {
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
    println!("distarch local benchmark: median of {runs} run(s), floor and distarch alternating");
    println!(
        "{:<46} {:>14} {:>14} {:>9}",
        "measure", "floor", "distarch", "slowdown"
    );
    for row in rows {
        println!("{row}");
    }
    let codes: Vec<i32> = ds.iter().chain(&df).map(|x| x.2).collect();
    println!("distarch exit codes: {codes:?}");
    println!("lines received: {}", checks.join(", "));
    println!("slowdown = distarch time / floor time (target: at most 1.5x)");
}
