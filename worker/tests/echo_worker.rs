//! Runs `examples/echo_worker.rs` as the master would and checks the protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{distarch_env, example_binary, Worker};
use distarch_protocol::{Level, WorkerFrame, WorkerLine};
use std::process::{Command, Stdio};

fn echo_worker(params: &str) -> Worker {
    let mut cmd = Command::new(example_binary("echo_worker"));
    distarch_env(&mut cmd, params);
    Worker::spawn(cmd)
}

fn is_log(line: &WorkerLine, level: Level, text: &str) -> bool {
    matches!(line, WorkerLine::Frame(WorkerFrame::Log { level: l, message, .. })
        if *l == level && message.contains(text))
}

#[test]
fn logs_then_ends_cleanly_on_stop() {
    let mut w = echo_worker(r#"{"message":"hi there"}"#);
    w.expect_frame(WorkerFrame::Ready);
    let log = w.expect("a log frame", |l| is_log(l, Level::Info, "hi there"));
    let WorkerLine::Frame(WorkerFrame::Log { fields, .. }) = log else {
        unreachable!()
    };
    assert_eq!(fields.unwrap()["id"], 5);
    w.expect(
        "a plain line",
        |l| matches!(l, WorkerLine::Text(t) if t.starts_with("plain line")),
    );
    w.expect("a status", |l| {
        matches!(l, WorkerLine::Frame(WorkerFrame::Status { .. }))
    });
    // A line that is not a frame, and a frame type the worker does not know, are
    // ignored; then the real stop.
    w.send_raw(b"hello\n\x1e{\"type\":\"reload\"}\n");
    w.send_stop();
    w.expect("the stop reason", |l| {
        is_log(l, Level::Info, "StopRequested")
    });
    w.expect_frame(WorkerFrame::Ended);
    assert_eq!(w.wait_exit().code(), Some(0));
}

#[test]
fn exits_when_stdin_closes() {
    let mut w = echo_worker("{}");
    w.expect_frame(WorkerFrame::Ready);
    w.close_stdin();
    w.expect("the stop reason", |l| is_log(l, Level::Info, "MasterGone"));
    w.expect_frame(WorkerFrame::Ended);
    assert_eq!(w.wait_exit().code(), Some(0));
}

#[test]
fn the_sdk_ends_a_worker_that_ignores_a_gone_master() {
    let mut w = echo_worker(r#"{"ignore_stop":true}"#);
    w.expect("the ignoring log", |l| {
        is_log(l, Level::Info, "ignoring stop")
    });
    w.close_stdin();
    assert_eq!(
        w.wait_exit().code(),
        Some(distarch_worker::MASTER_GONE_EXIT_CODE)
    );
}

#[test]
fn an_error_is_logged_and_exits_1() {
    let mut w = echo_worker(r#"{"fail":true}"#);
    w.expect("the error", |l| is_log(l, Level::Error, "asked to fail"));
    w.expect_frame(WorkerFrame::Ended);
    assert_eq!(w.wait_exit().code(), Some(1));
}

#[test]
fn bad_params_are_an_error() {
    let mut w = echo_worker(r#"{"fail":"yes"}"#);
    w.expect("the error", |l| is_log(l, Level::Error, "DISTARCH_PARAMS"));
    assert_eq!(w.wait_exit().code(), Some(1));
}

#[test]
fn without_distarch_variables_it_exits_2_with_a_clear_message() {
    let mut cmd = Command::new(example_binary("echo_worker"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DISTARCH_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not started by distarch: DISTARCH_ID is not set"),
        "stderr: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// The Rust SDK against the shared vectors of conformance/vectors/frames.json.
#[test]
fn the_sdk_encodes_the_shared_frame_vectors_byte_exact() {
    let path = common::workspace_root().join("conformance/vectors/frames.json");
    let vectors: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for v in vectors["worker"].as_array().unwrap() {
        let frame: WorkerFrame = serde_json::from_value(v["frame"].clone()).unwrap();
        let line = distarch_protocol::encode_worker_frame(&frame);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            format!("{}\n", v["line"].as_str().unwrap()),
            "{}",
            v["name"]
        );
    }
}
