//! Helpers shared by the transport-level tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use distarch_core::{ExitStatus, InstanceSpec, Transport};
use distarch_transport_ssh::SshTransport;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub use distarch_testkit::sshd;

pub use sshd::SshFixture;

/// Settings for a placement on the fixture's servers, as JSON.
pub fn settings(fx: &SshFixture, extra: Value) -> Map<String, Value> {
    let mut s = json!({
        "hosts": [],
        "identity_files": [fx.client_key.display().to_string()],
        "known_hosts": fx.known_hosts.display().to_string(),
        "ssh_config": "none",
        "connect_timeout": "5s",
    });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s.as_object().unwrap().clone()
}

/// An instance spec for `argv` on `target`, planned by the ssh transport.
pub fn spec(settings: &Map<String, Value>, target: &str, argv: &[&str]) -> InstanceSpec {
    let mut settings = settings.clone();
    settings.insert("hosts".into(), json!([target]));
    InstanceSpec::builder(argv.iter().copied())
        .target(target)
        .stop_times(Duration::from_millis(500), Duration::from_millis(500))
        .plan(&SshTransport::new(), &Value::Object(settings))
        .unwrap_or_else(|e| panic!("plan: {e}"))
}

/// What a finished instance printed and how it ended.
pub struct Finished {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: ExitStatus,
}

/// Runs `spec` to its end, stdin closed at once unless `keep_stdin`.
pub async fn run_to_end(transport: &SshTransport, spec: &InstanceSpec) -> Finished {
    let mut instance = transport
        .spawn(spec)
        .await
        .unwrap_or_else(|e| panic!("spawn: {}", distarch_core::error_chain(&e)));
    let io = instance.take_io().unwrap();
    drop(io.stdin);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut out = io.stdout;
    let mut err = io.stderr.unwrap();
    let (a, b, exit) = tokio::join!(
        out.read_to_end(&mut stdout),
        err.read_to_end(&mut stderr),
        async { tokio::time::timeout(Duration::from_secs(20), instance.wait()).await }
    );
    a.unwrap();
    b.unwrap();
    let exit = exit.expect("instance did not end").unwrap();
    instance.cleanup().await;
    Finished {
        stdout,
        stderr,
        exit,
    }
}

/// Waits for `cond` with a deadline.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A unique token for command lines.
pub fn token(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "dtok-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts a neighbour on the same connection as a busy instance, checks that it
/// answers 20 lines one at a time and that its terminate goes through at once
/// (`busy` names what might stall it, for the failure messages).
pub async fn neighbour_answers_and_stops(
    t: &SshTransport,
    settings: &Map<String, Value>,
    entry: &str,
    busy: &str,
) {
    let echo = "while read l; do echo \"got $l\"; done";
    let mut neighbour = t
        .spawn(&spec(settings, entry, &["sh", "-c", echo]))
        .await
        .unwrap();
    let io = neighbour.take_io().unwrap();
    let (mut stdin, mut lines) = (io.stdin, BufReader::new(io.stdout).lines());
    for i in 0..20 {
        stdin.write_all(format!("{i}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the neighbour's output stalled behind the {busy}"))
            .unwrap();
        assert_eq!(line.as_deref(), Some(format!("got {i}").as_str()));
    }
    neighbour.terminate().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), neighbour.wait())
        .await
        .unwrap_or_else(|_| panic!("terminate stalled behind the {busy}"))
        .unwrap();
    assert_eq!(exit, ExitStatus::Signaled(15));
    neighbour.cleanup().await;
}
