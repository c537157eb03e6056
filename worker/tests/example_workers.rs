//! Runs the SDK-less example workers (`examples/shell-worker.sh`,
//! `examples/python-worker.py`) as the master would, to prove that
//! docs/protocol.md can be spoken without this crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{distarch_env, workspace_root, Worker};
use distarch_protocol::{Level, WorkerFrame, WorkerLine};
use std::process::{Command, Stdio};

const PARAMS: &str = r#"{"message":"Hello World!","n":[1,2]}"#;

fn command(interpreter: &str, script: &str) -> Command {
    let mut cmd = Command::new(interpreter);
    cmd.arg(script).current_dir(workspace_root());
    cmd
}

fn start(interpreter: &str, script: &str) -> Worker {
    let mut cmd = command(interpreter, script);
    distarch_env(&mut cmd, PARAMS);
    cmd.stderr(Stdio::null());
    Worker::spawn(cmd)
}

fn have_python() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("python3 not found: skipping the Python worker test");
    }
    found
}

/// The start-up every example worker does: its identity as a log frame, a plain
/// line, `ready`, then a `status` from the work loop.
fn expect_startup(w: &mut Worker) {
    let log = w.expect("the identity log", |l| {
        matches!(l, WorkerLine::Frame(WorkerFrame::Log { level: Level::Info, message, .. })
            if message == "Hello World!")
    });
    let WorkerLine::Frame(WorkerFrame::Log {
        fields: Some(fields),
        ..
    }) = log
    else {
        panic!("no fields in {log:?}")
    };
    assert_eq!(fields["id"], 5);
    assert_eq!(fields["group"], "first");
    assert_eq!(fields["group_id"], 2);
    assert_eq!(fields["group_count"], 3);
    assert_eq!(fields["params"]["n"], serde_json::json!([1, 2]));
    w.expect("the plain identity line", |l| {
        matches!(l, WorkerLine::Text(t) if t.starts_with("instance 5 is 2 of 3 in group first"))
    });
    w.expect_frame(WorkerFrame::Ready);
    w.expect("a status", |l| {
        matches!(l, WorkerLine::Frame(WorkerFrame::Status { text }) if text.starts_with("step"))
    });
}

fn stops_on_a_stop_frame(interpreter: &str, script: &str) {
    let mut w = start(interpreter, script);
    expect_startup(&mut w);
    w.send_raw(b"not a frame\n\x1e{\"type\":\"future\"}\n");
    w.send_stop();
    w.expect(
        "the stop",
        |l| matches!(l, WorkerLine::Text(t) if t == "stopping: stop requested"),
    );
    w.expect_frame(WorkerFrame::Ended);
    w.drain();
    assert_eq!(w.wait_exit().code(), Some(0));
    assert!(
        !w.seen
            .iter()
            .any(|l| matches!(l, WorkerLine::Malformed { .. })),
        "malformed frames: {:#?}",
        w.seen
    );
}

fn exits_when_stdin_closes(interpreter: &str, script: &str) {
    let mut w = start(interpreter, script);
    w.expect_frame(WorkerFrame::Ready);
    w.close_stdin();
    w.expect(
        "master gone",
        |l| matches!(l, WorkerLine::Text(t) if t == "stopping: master gone"),
    );
    w.expect_frame(WorkerFrame::Ended);
    w.drain();
    assert_eq!(w.wait_exit().code(), Some(0));
}

fn refuses_to_run_outside_distarch(interpreter: &str, script: &str) {
    let mut cmd = command(interpreter, script);
    distarch_env(&mut cmd, PARAMS);
    cmd.env_remove("DISTARCH_ID");
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not started by distarch: DISTARCH_ID is not set"),
        "stderr: {stderr}"
    );
}

#[test]
fn shell_worker_stops_on_a_stop_frame() {
    stops_on_a_stop_frame("sh", "examples/shell-worker.sh");
}

#[test]
fn shell_worker_exits_when_stdin_closes() {
    exits_when_stdin_closes("sh", "examples/shell-worker.sh");
}

#[test]
fn shell_worker_refuses_to_run_outside_distarch() {
    refuses_to_run_outside_distarch("sh", "examples/shell-worker.sh");
}

#[test]
fn python_worker_stops_on_a_stop_frame() {
    if have_python() {
        stops_on_a_stop_frame("python3", "examples/python-worker.py");
    }
}

#[test]
fn python_worker_exits_when_stdin_closes() {
    if have_python() {
        exits_when_stdin_closes("python3", "examples/python-worker.py");
    }
}

#[test]
fn python_worker_refuses_to_run_outside_distarch() {
    if have_python() {
        refuses_to_run_outside_distarch("python3", "examples/python-worker.py");
    }
}
