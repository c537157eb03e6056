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

/// A worker started with `posix_spawn`, its stdout on a pipe.
struct Spawned {
    pid: libc::pid_t,
    out: i32,
}

/// `posix_spawn` of the worker binary with `args`, stdin on /dev/null, stdout on a
/// new pipe (the read end stays here, close-on-exec), and an empty signal mask.
fn posix_spawn(worker: &std::ffi::CStr, args: &[&std::ffi::CStr]) -> Spawned {
    let mut fds = [0i32; 2];
    // SAFETY: plain libc calls on memory owned here; every pointer outlives the call.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe2");
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawn_file_actions_addopen(
            &mut actions,
            0,
            c"/dev/null".as_ptr(),
            libc::O_RDONLY,
            0,
        );
        libc::posix_spawn_file_actions_adddup2(&mut actions, fds[1], 1);
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSIGMASK as libc::c_short);
        let mut argv: Vec<*mut libc::c_char> = vec![worker.as_ptr() as *mut _];
        argv.extend(args.iter().map(|a| a.as_ptr() as *mut libc::c_char));
        argv.push(std::ptr::null_mut());
        let mut pid = 0;
        let rc = libc::posix_spawn(
            &mut pid,
            worker.as_ptr(),
            &actions,
            &attr,
            argv.as_ptr(),
            environ_ptr(),
        );
        assert_eq!(rc, 0, "posix_spawn");
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        libc::close(fds[1]);
        libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK);
        Spawned { pid, out: fds[0] }
    }
}

fn environ_ptr() -> *const *mut libc::c_char {
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    // SAFETY: `environ` is the process's environment, valid for its whole life.
    unsafe { environ }
}

/// Reads every pipe until each is at EOF (poll), copying to `file`; reaps all.
fn drain_and_reap(children: Vec<Spawned>, file: &mut impl Write) {
    let mut open: Vec<libc::pollfd> = children
        .iter()
        .map(|c| libc::pollfd {
            fd: c.out,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = [0u8; 65536];
    while !open.is_empty() {
        // SAFETY: `open` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(open.as_mut_ptr(), open.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        open.retain(|p| {
            if p.revents == 0 {
                return true;
            }
            loop {
                // SAFETY: reading into a buffer we own from an fd we own.
                let r = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    let _ = file.write_all(&buf[..r as usize]);
                    continue;
                }
                if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
                {
                    return true;
                }
                // SAFETY: closing an fd we own, once.
                unsafe { libc::close(p.fd) };
                return false;
            }
        });
    }
    for c in children {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(c.pid, &mut status, 0) };
    }
}

/// The minimal launcher: posix_spawn N workers, poll their output to a file,
/// reap them all.
fn floor_posix_spawn(n: u64, out: &Path) {
    let worker = std::ffi::CString::new(dir().join("distarch-test-worker").display().to_string())
        .expect("path");
    let mut file = BufWriter::new(std::fs::File::create(out).expect("out file"));
    let children: Vec<Spawned> = (0..n).map(|_| posix_spawn(&worker, &[c"hello"])).collect();
    drain_and_reap(children, &mut file);
    let _ = file.flush();
}

/// The stop floor: posix_spawn N `silent` workers, say `ready`, and on SIGTERM
/// send SIGTERM to each and reap them all.
fn floor_stop(n: u64) {
    let worker = std::ffi::CString::new(dir().join("distarch-test-worker").display().to_string())
        .expect("path");
    // SAFETY: signal mask calls on a sigset we own.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let children: Vec<Spawned> = (0..n).map(|_| posix_spawn(&worker, &[c"silent"])).collect();
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut sig = 0;
    // SAFETY: waits for the blocked SIGTERM.
    unsafe { libc::sigwait(&set, &mut sig) };
    for c in &children {
        // SAFETY: signalling our own children.
        unsafe { libc::kill(c.pid, libc::SIGTERM) };
    }
    drain_and_reap(children, &mut std::io::sink());
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
        // (5) master memory with every instance running.
        let d_out = tmp.path().join("distarch-mem.log");
        let child = distarch(&mem_config, tmp.path(), &d_out)
            .spawn()
            .expect("distarch");
        dmem.push(measure_stop(child, || {
            count_lines(&d_out, "INFO serving") as u64 >= mem_n
        }));

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
        .map(|x| x.2)
        .collect();
    println!("distarch exit codes: {codes:?}");
    println!("lines received: {}", checks.join(", "));
    println!("slowdown = distarch time / floor time (target: at most 1.5x; (1') 1.2x)");
    println!("targets: (4) at most 0.05 s; (5) at most 10 MiB (10240 KiB)");
}
