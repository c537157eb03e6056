//! Local benchmark: distarch against a floor measured in the same run.
//!
//! The floor is a minimal spawner (same worker binary, piped stdout, no supervision,
//! output written to a file). Both are run as child processes so that their peak
//! RSS is measured the same way (wait4's ru_maxrss). Usage:
//! `distarch-bench-local [--instances 1000] [--workers 4] [--lines 250000]`
//! (expects the release or debug build directory of the workspace beside it).
#![allow(unsafe_code)] // wait4(2) for the children's peak RSS
#![allow(missing_docs)]

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
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
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
    let file = std::sync::Arc::new(std::sync::Mutex::new(BufWriter::new(std::fs::File::create(out).expect("out"))));
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

fn count_lines(path: &Path, needle: &str) -> usize {
    let text = std::fs::read(path).unwrap_or_default();
    text.split(|&b| b == b'\n')
        .filter(|l| std::str::from_utf8(l).map(|s| s.contains(needle)).unwrap_or(false))
        .count()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("floor-start") => return floor_start(arg("floor-start", 1000), Path::new(&args[3])),
        Some("floor-flood") => {
            return floor_flood(args[2].parse().unwrap_or(4), args[3].parse().unwrap_or(250_000), Path::new(&args[4]))
        }
        _ => {}
    }
    let n = arg("--instances", 1000);
    let workers = arg("--workers", 4);
    let lines = arg("--lines", 250_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let me = std::env::current_exe().expect("exe");
    let worker = dir().join("distarch-test-worker");

    // (1) start N instances that print one line and exit.
    let floor_out = tmp.path().join("floor-start.log");
    let mut cmd = Command::new(&me);
    cmd.args(["floor-start", &n.to_string()]).arg(&floor_out);
    let (floor_t, floor_rss, _) = measure(cmd);
    let d_out = tmp.path().join("distarch-start.log");
    let config = format!(
        "[groups.bench]\ncommand = [{:?}, \"hello\"]\ninstances = {n}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    let (d_t, d_rss, d_code) = measure(distarch(&config, tmp.path(), &d_out));
    let d_hellos = count_lines(&d_out, "INFO hello id=");
    let f_hellos = count_lines(&floor_out, "hello id=");

    // (2) throughput: W workers x L lines of ~60 bytes, to a file.
    let floor_flood_out = tmp.path().join("floor-flood.log");
    let mut cmd = Command::new(&me);
    cmd.args(["floor-flood", &workers.to_string(), &lines.to_string()]).arg(&floor_flood_out);
    let (ff_t, ff_rss, _) = measure(cmd);
    let df_out = tmp.path().join("distarch-flood.log");
    let config = format!(
        "[groups.flood]\ncommand = [{:?}, \"flood\", \"{lines}\"]\ninstances = {workers}\ntimeout = \"0s\"\n",
        worker.display().to_string()
    );
    let (df_t, df_rss, df_code) = measure(distarch(&config, tmp.path(), &df_out));
    let total = workers * lines;
    let ff_lines = count_lines(&floor_flood_out, "xxxxxxxx");
    let df_lines = count_lines(&df_out, "xxxxxxxx");

    let rate = |lines: usize, t: Duration| lines as f64 / t.as_secs_f64();
    println!("distarch local benchmark (same run, same worker binary)");
    println!("{:<44} {:>14} {:>14} {:>8}", "measure", "floor", "distarch", "ratio");
    println!(
        "{:<44} {:>12.3} s {:>12.3} s {:>7.2}x",
        format!("(1) start {n} instances until all ended"),
        floor_t.as_secs_f64(),
        d_t.as_secs_f64(),
        d_t.as_secs_f64() / floor_t.as_secs_f64()
    );
    println!(
        "{:<44} {:>14.0} {:>14.0} {:>7.2}x",
        format!("(2) lines/s, {workers} workers x {lines} lines"),
        rate(ff_lines, ff_t),
        rate(df_lines, df_t),
        ff_t.as_secs_f64() / df_t.as_secs_f64()
    );
    println!("{:<44} {:>11} KiB {:>11} KiB", "(3) peak RSS during (1)", floor_rss, d_rss);
    println!("{:<44} {:>11} KiB {:>11} KiB", "(3) peak RSS during (2)", ff_rss, df_rss);
    println!(
        "check: (1) lines {f_hellos}/{n} floor, {d_hellos}/{n} distarch (exit {d_code}); (2) lines {ff_lines}/{total} floor, {df_lines}/{total} distarch (exit {df_code})"
    );
    println!("(ratio: distarch time / floor time for (1); floor time / distarch time for (2): both read 'how many times slower than the floor')");
}
