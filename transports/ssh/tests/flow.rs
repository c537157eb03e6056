//! Per-instance flow control through the agent: a worker whose output nobody reads
//! is paused on its host (its credit window is used up) while the other instances
//! of the same connection go on talking and can be stopped; it resumes once read.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use distarch_core::{ExitStatus, Transport};
use distarch_transport_ssh::SshTransport;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

fn count(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the counter in `path` stops growing for 500 ms; returns it.
async fn settled(path: &std::path::Path, limit: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = count(path);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count(path);
        if now == last && now > 0 {
            return Some(now);
        }
        last = now;
    }
    None
}

#[tokio::test]
async fn a_flooding_worker_waits_alone_and_its_neighbours_talk_and_stop() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let entry = fx.server(s).entry();
    let counter = fx.dir().join("flood-count");
    let flood = format!(
        "i=0; while :; do echo \"flood line $i\"; i=$((i+1)); [ $((i % 500)) -eq 0 ] && echo $i >'{}'; done",
        counter.display()
    );
    let mut flooder = t
        .spawn(&spec(&settings, &entry, &["sh", "-c", &flood]))
        .await
        .unwrap();
    let flood_io = flooder.take_io().unwrap();

    // Nobody reads the flooder: it is paused on its host after about one window.
    let paused_at = settled(&counter, Duration::from_secs(30))
        .await
        .expect("the unread flooder never paused: no per-instance back-pressure");
    // At most the credit window (2 MiB) and the pipe's buffer ahead of the
    // reader: about 130,000 of these lines; never the whole flood.
    assert!(paused_at < 200_000, "paused only after {paused_at} lines");

    // Its neighbour on the same connection still answers, line by line, and its stop request goes through at once.
    neighbour_answers_and_stops(&t, &settings, &entry, "flooder").await;
    assert_eq!(count(&counter), paused_at, "the flooder ran on unread");

    // Reading the flooder resumes it, with every line whole and in order.
    let mut out = BufReader::new(flood_io.stdout).lines();
    let mut expected = 0u64;
    while expected < paused_at + 50_000 {
        let line = out.next_line().await.unwrap().unwrap();
        assert_eq!(line, format!("flood line {expected}"));
        expected += 1;
    }
    assert!(
        settled(&counter, Duration::from_secs(30)).await > Some(paused_at),
        "reading did not resume the flooder"
    );
    flooder.kill().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), async {
        // Keep reading so its last lines do not hold it up.
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        flooder.wait().await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(exit, ExitStatus::Signaled(9));
    drop(flood_io.stdin);
}
