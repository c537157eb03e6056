//! Floods through the agent's spool mode (records of many pipe-fulls, see
//! agent.sh): every byte of both streams arrives whole, in order and apart, the
//! exit status after the flood is right, a neighbour on the same connection
//! keeps talking and can be stopped meanwhile, and a connection dropped in the
//! middle of a flood leaves no process of the agent behind.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use distarch_core::{ExitStatus, Transport};
use distarch_transport_ssh::SshTransport;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const LINES: usize = 300_000;

#[tokio::test]
async fn a_flood_of_both_streams_arrives_whole_in_order_and_apart_while_a_neighbour_talks_and_stops(
) {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let entry = fx.server(s).entry();
    // About 2.5 MB on each stream at once, then exit 3.
    let flood = format!("seq 1 {LINES} | sed 's/^/err /' >&2 & seq 1 {LINES}; wait; exit 3");
    let mut flooder = t
        .spawn(&spec(&settings, &entry, &["sh", "-c", &flood]))
        .await
        .unwrap();
    let io = flooder.take_io().unwrap();
    let (mut out, mut err) = (io.stdout, io.stderr.unwrap());
    let stdout = tokio::spawn(async move {
        let mut v = Vec::new();
        out.read_to_end(&mut v).await.unwrap();
        v
    });
    let stderr = tokio::spawn(async move {
        let mut v = Vec::new();
        err.read_to_end(&mut v).await.unwrap();
        v
    });

    // Meanwhile a neighbour on the same connection answers line by line and is stopped at once.
    neighbour_answers_and_stops(&t, &settings, &entry, "flood").await;

    let exit = tokio::time::timeout(Duration::from_secs(60), flooder.wait())
        .await
        .expect("the flooder did not end")
        .unwrap();
    assert_eq!(exit, ExitStatus::Exited(3));
    let (stdout, stderr) = (stdout.await.unwrap(), stderr.await.unwrap());
    let expected: String = (1..=LINES).map(|i| format!("{i}\n")).collect();
    assert!(
        stdout == expected.as_bytes(),
        "stdout differs ({} bytes, {} expected)",
        stdout.len(),
        expected.len()
    );
    let expected: String = (1..=LINES).map(|i| format!("err {i}\n")).collect();
    assert!(
        stderr == expected.as_bytes(),
        "stderr differs ({} bytes, {} expected)",
        stderr.len(),
        expected.len()
    );
    flooder.cleanup().await;
    drop(io.stdin);
}

/// Processes whose environment holds `TMPDIR=<dir>`: everything the agent
/// started (its shells, relays, copiers, tickers and the workers), since the
/// test's login shell sets that TMPDIR and nothing else does.
fn agent_processes(dir: &std::path::Path) -> Vec<u32> {
    let needle = format!("TMPDIR={}\0", dir.display()).into_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(entry.path().join("environ")) {
            if env.windows(needle.len()).any(|w| w == needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

#[tokio::test]
async fn a_connection_dropped_in_the_middle_of_a_flood_leaves_nothing_behind() {
    let fx = SshFixture::new();
    let tmp = fx.dir().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut fx = fx.with_bashrc(&format!("export TMPDIR='{}'\n", tmp.display()));
    let a = fx.start("127.0.0.2");
    fx.trust(a);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let entry = fx.server(a).entry();
    let mut flooder = t
        .spawn(&spec(
            &settings,
            &entry,
            &["sh", "-c", "yes err >&2 & exec yes out"],
        ))
        .await
        .unwrap();
    let io = flooder.take_io().unwrap();
    let (mut out, mut err) = (io.stdout, io.stderr.unwrap());
    tokio::spawn(async move { while matches!(err.read(&mut [0; 65536]).await, Ok(n) if n > 0) {} });
    // Well into the flood (spool mode) before the connection goes.
    let mut seen = 0;
    let mut buf = vec![0; 1 << 16];
    while seen < 20 << 20 {
        let n = out.read(&mut buf).await.unwrap();
        assert!(n > 0, "the flood ended early");
        seen += n;
    }
    assert!(!agent_processes(&tmp).is_empty());
    tokio::spawn(async move { while matches!(out.read(&mut buf).await, Ok(n) if n > 0) {} });
    assert!(fx.kill_connections(a) > 0);
    let exit = tokio::time::timeout(Duration::from_secs(30), flooder.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(exit, ExitStatus::Lost(_)), "{exit:?}");
    // stop_grace 0.5 s + kill_after 0.5 s, the last tick (at most 0.8 s), then
    // nothing of the agent is left, and its directory is gone.
    assert!(
        eventually(Duration::from_secs(15), || agent_processes(&tmp).is_empty()).await,
        "left: {:?}",
        agent_processes(&tmp)
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    drop(io.stdin);
}

#[tokio::test]
async fn the_last_lines_of_a_flood_arrive_while_the_worker_goes_on_running() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    // The flood stops in the middle of a spool generation and the worker stays:
    // nothing may wait for the rest of that generation.
    let script = format!("seq 1 {LINES}; echo tail; exec sleep 1000");
    let mut worker = t
        .spawn(&spec(
            &settings,
            &fx.server(s).entry(),
            &["sh", "-c", &script],
        ))
        .await
        .unwrap();
    let io = worker.take_io().unwrap();
    let mut lines = BufReader::new(io.stdout).lines();
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        for i in 1..=LINES {
            let line = lines.next_line().await.unwrap();
            assert_eq!(line, Some(i.to_string()));
        }
        lines.next_line().await.unwrap()
    })
    .await
    .expect("the end of the flood was held back");
    assert_eq!(all.as_deref(), Some("tail"));
    worker.kill().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, ExitStatus::Signaled(9));
    drop(io.stdin);
}
