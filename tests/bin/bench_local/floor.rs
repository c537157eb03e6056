//! The floors of the local benchmark: minimal launchers that do what distarch does
//! for each measure, without supervision.
#![allow(unsafe_code)] // posix_spawn, poll and signals of the minimal launcher

use super::dir;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Floor for (1): start N workers with piped stdout, read their line, wait for all.
pub(crate) fn floor_start(n: u64, out: &Path) {
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
pub(crate) fn floor_flood(workers: u64, lines: u64, out: &Path) {
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
pub(crate) fn floor_posix_spawn(n: u64, out: &Path) {
    let worker = std::ffi::CString::new(dir().join("distarch-test-worker").display().to_string())
        .expect("path");
    let mut file = BufWriter::new(std::fs::File::create(out).expect("out file"));
    let children: Vec<Spawned> = (0..n).map(|_| posix_spawn(&worker, &[c"hello"])).collect();
    drain_and_reap(children, &mut file);
    let _ = file.flush();
}

/// The stop floor: posix_spawn N `silent` workers, say `ready`, and on SIGTERM
/// send SIGTERM to each and reap them all.
pub(crate) fn floor_stop(n: u64) {
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
