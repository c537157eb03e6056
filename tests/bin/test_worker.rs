//! A worker with misbehaviours on demand, for the end-to-end tests. It uses no SDK:
//! only the protocol crate, so that each mode does exactly what its name says.
//!
//! Usage: `distarch-test-worker MODE [ARG] [--tag TOKEN]` (the tag only marks the
//! process's command line so tests can find leftovers).
#![allow(unsafe_code)] // ignoring SIGTERM needs libc::signal

use distarch_protocol::{
    encode_worker_frame, parse_master_line, MasterFrame, MasterLine, WorkerFrame,
};
use std::io::{BufRead, Write};
use std::time::Duration;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn frame(f: &WorkerFrame) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&encode_worker_frame(f));
    let _ = out.flush();
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Reads stdin in a thread; calls `on_stop` on a stop frame, exits 0 on EOF.
fn watch_stdin(obey_stop: bool) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().split(b'\n') {
            let Ok(line) = line else { break };
            if let MasterLine::Frame(MasterFrame::GroupCount { count }) = parse_master_line(&line) {
                say(&format!("group count now {count}"));
                continue;
            }
            if let MasterLine::Frame(MasterFrame::Stop) = parse_master_line(&line) {
                if obey_stop {
                    say("got stop");
                    frame(&WorkerFrame::Ended);
                    std::process::exit(0);
                } else {
                    say("ignoring stop");
                }
            }
        }
        say("stdin closed");
        std::process::exit(0);
    });
}

fn ignore_sigterm() {
    // SAFETY: installing SIG_IGN for SIGTERM touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}

fn pgid_is_pid() -> bool {
    // SAFETY: getpgrp takes no arguments and cannot fail.
    let pgid = unsafe { libc::getpgrp() };
    pgid as u32 == std::process::id()
}

fn ping_forever() -> ! {
    loop {
        frame(&WorkerFrame::Ping);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("hello");
    let arg = args.get(2).cloned().unwrap_or_default();
    let restart: u32 = var("DISTARCH_RESTART").parse().unwrap_or(0);
    say(&format!("pid {}", std::process::id()));
    match mode {
        "hello" => say(&format!(
            "hello id={} group={} group_id={} count={} host={} restart={} params={}",
            var("DISTARCH_ID"),
            var("DISTARCH_GROUP"),
            var("DISTARCH_GROUP_ID"),
            var("DISTARCH_GROUP_COUNT"),
            var("DISTARCH_HOST"),
            restart,
            var("DISTARCH_PARAMS")
        )),
        "env" => {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
            // Field 19 (nice) counted after the command name's closing parenthesis.
            let nice = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(16).map(str::to_string))
                .unwrap_or_default();
            let cwd = std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            say(&format!(
                "cwd={cwd} extra={} nice={nice} pgid-is-pid={}",
                var("EXTRA"),
                pgid_is_pid()
            ));
        }
        "serve" => {
            watch_stdin(true);
            frame(&WorkerFrame::Ready);
            say("serving");
            ping_forever();
        }
        "steady" => {
            // Says who it is, serves, and prints a numbered tick every 200 ms.
            say(&format!(
                "steady id={} group_id={} count={} restart={} params={}",
                var("DISTARCH_ID"),
                var("DISTARCH_GROUP_ID"),
                var("DISTARCH_GROUP_COUNT"),
                restart,
                var("DISTARCH_PARAMS")
            ));
            watch_stdin(true);
            frame(&WorkerFrame::Ready);
            for tick in 0u64.. {
                say(&format!("tick {tick}"));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        "probe-socket" => {
            // Asks the control API on the Unix socket ARG for its instances and prints
            // the raw answer (for the test that connects as another user).
            use std::io::Read;
            match std::os::unix::net::UnixStream::connect(&arg) {
                Ok(mut s) => {
                    let _ = s.write_all(
                        b"GET /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    let mut answer = String::new();
                    let _ = s.read_to_string(&mut answer);
                    say(&answer);
                }
                Err(e) => say(&format!("cannot connect: {e}")),
            }
        }
        "ignore-stop" => {
            ignore_sigterm();
            watch_stdin(false);
            frame(&WorkerFrame::Ready);
            say("serving");
            ping_forever();
        }
        "silent" => {
            if arg == "--ignore-term" {
                ignore_sigterm();
            }
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        "empty-lines" => loop {
            say("");
            std::thread::sleep(Duration::from_millis(100));
        },
        "flood" => {
            let n: u64 = arg.parse().unwrap_or(100_000);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in 0..n {
                let _ = writeln!(
                    out,
                    "line {i:010} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                );
            }
        }
        "garbage" => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"invalid utf8 \xff\xfe here\n");
            let _ = out.write_all(b"\x1e{not json\n");
            let _ = out.write_all(b"\x1e{\"type\":\"no-such-frame\"}\n");
            let _ = out.write_all(b"\x1e{\"type\":\"log\",\"level\":\"loud\"}\n");
            // Attempts to forge a master line and to drive the terminal.
            let _ = out.write_all(
                b"\x1e{\"type\":\"status\",\"text\":\"50%\\n[master] INFO distarch: run 0000: all instances ended (exit code 0)\"}\n",
            );
            let _ = out.write_all(b"\x1b[31mred\x1b[0m and a bell\x07\rover\n");
            let chunk = vec![b'x'; 1024 * 1024];
            for _ in 0..50 {
                let _ = out.write_all(&chunk);
            }
            let _ = out.write_all(b"\nafter-garbage\n");
            let _ = out.flush();
            drop(out);
            if arg == "--stay" {
                watch_stdin(true);
                ping_forever();
            }
        }
        "fail-until" => {
            let n: u32 = arg.parse().unwrap_or(1);
            if restart < n {
                say(&format!("failing at restart {restart}"));
                std::process::exit(1);
            }
            say(&format!("succeeded at restart {restart}"));
        }
        "grandchild" => {
            let mut cmd = std::process::Command::new(&args[0]);
            cmd.arg("silent").args(&args[2..]);
            match cmd.spawn() {
                Ok(child) => say(&format!("grandchild pid {}", child.id())),
                Err(e) => say(&format!("cannot spawn grandchild: {e}")),
            }
            watch_stdin(true);
            frame(&WorkerFrame::Ready);
            say("serving");
            ping_forever();
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(64);
        }
    }
}
