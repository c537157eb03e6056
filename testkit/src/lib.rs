//! distarch's test kit, shared by the end-to-end tests and the transports' own
//! tests: finds the built binaries, runs `distarch` with
//! a config in a temp directory, waits on conditions with deadlines, and checks that
//! no process of a test is left behind. Real servers (sshd, dockerd, the test
//! Kubernetes API server) have their own modules.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod apiserver;
mod daemon;
pub mod dockerd;
pub mod image;
pub mod k8s_cluster;
pub mod netns;
pub mod procs;
pub mod run;
pub mod sshd;

pub use procs::{
    assert_no_leftovers, assert_nothing_runs_in, pids_in_dir, pids_with_token, unique_token,
};
pub use run::{Distarch, Output, Running};

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The cargo target profile directory the tests were built into (e.g. target/debug).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

fn built(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build everything first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The `distarch` binary.
pub fn distarch_bin() -> PathBuf {
    built("distarch")
}

/// The SDK example worker.
pub fn example_worker_bin() -> PathBuf {
    built("distarch-example-worker")
}

/// The misbehaving test worker (tests/bin/test_worker.rs).
pub fn test_worker_bin() -> PathBuf {
    built("distarch-test-worker")
}

/// The job-pool worker (tests/bin/job_worker.rs).
pub fn job_worker_bin() -> PathBuf {
    built("distarch-job-worker")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ has a parent")
        .to_path_buf()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// TOML string literal for a path or text.
pub fn toml_str(s: impl AsRef<str>) -> String {
    format!("{:?}", s.as_ref())
}
