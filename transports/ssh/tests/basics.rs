//! Transport-level tests against real sshd servers: output, exit status, signals,
//! host keys, authentication, the session limit and the no-orphan guarantees.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use distarch_core::{ExitStatus, Transport};
use distarch_transport_ssh::SshTransport;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn runs_a_command_with_output_exit_code_env_and_workdir() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let mut spec = spec(
        &settings,
        &fx.server(s).entry(),
        &["sh", "-c", "echo out $X $(pwd); echo err >&2; exit 3"],
    );
    spec.env.insert("X".into(), "ex".into());
    spec.workdir = Some(fx.dir().to_path_buf());
    let f = run_to_end(&t, &spec).await;
    assert_eq!(
        String::from_utf8_lossy(&f.stdout),
        format!("out ex {}\n", fx.dir().display())
    );
    assert_eq!(String::from_utf8_lossy(&f.stderr), "err\n");
    assert_eq!(f.exit, ExitStatus::Exited(3));
}

#[tokio::test]
async fn output_bytes_arrive_unchanged_nuls_long_lines_and_no_last_newline() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    // A 300,000-byte line (several chunks), NULs and other bytes, no final newline.
    let script = "head -c 300000 /dev/zero | tr '\\0' x; echo; printf 'a\\000b\\001\\377'; printf 'e\\000' >&2";
    let f = run_to_end(
        &t,
        &spec(&settings, &fx.server(s).entry(), &["sh", "-c", script]),
    )
    .await;
    let mut expected = vec![b'x'; 300_000];
    expected.extend_from_slice(b"\na\0b\x01\xff");
    assert_eq!(f.stdout.len(), expected.len());
    assert!(f.stdout == expected, "stdout differs");
    assert_eq!(f.stderr, b"e\0");
    assert_eq!(f.exit, ExitStatus::Exited(0));
}

#[tokio::test]
async fn an_exit_code_of_128_plus_n_is_not_taken_for_signal_n() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let entry = fx.server(s).entry();
    // SIGINT needs its default action back first: a shell starts background
    // commands with it ignored. perl is on every Debian system (perl-base).
    let sigint = r#"$SIG{INT} = "DEFAULT"; kill "INT", $$; sleep 5; exit 1"#;
    for (argv, expected) in [
        (
            vec!["sh", "-c", "echo x; exit 130"],
            ExitStatus::Exited(130),
        ),
        (vec!["perl", "-e", sigint], ExitStatus::Signaled(2)),
        (vec!["sh", "-c", "exit 143"], ExitStatus::Exited(143)),
        (
            vec!["sh", "-c", "kill -TERM $$; sleep 5"],
            ExitStatus::Signaled(15),
        ),
        (vec!["sh", "-c", "exit 137"], ExitStatus::Exited(137)),
        (vec!["sh", "-c", "kill -KILL $$"], ExitStatus::Signaled(9)),
    ] {
        let f = run_to_end(&t, &spec(&settings, &entry, &argv)).await;
        assert_eq!(f.exit, expected, "{argv:?}");
    }
}

#[tokio::test]
async fn the_groups_stop_signal_reaches_the_remote_worker() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let script = "trap 'echo got USR1; exit 7' USR1; echo up; while :; do sleep 0.1; done";
    let mut instance = t
        .spawn(&spec(
            &settings,
            &fx.server(s).entry(),
            &["sh", "-c", script],
        ))
        .await
        .unwrap();
    let io = instance.take_io().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(io.stdout));
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("up"));
    let usr1 = distarch_core::config::StopSignal::parse("USR1").unwrap();
    instance.stop_with_signal(usr1).await.unwrap();
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("got USR1")
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, ExitStatus::Exited(7));
    instance.cleanup().await;
}

#[tokio::test]
async fn terminate_and_kill_reach_the_whole_remote_process_group() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let tok = token("term");
    let script = format!("sh -c 'sleep 1000; true' {tok}-child & sleep 1001; true");
    let spec = spec(
        &settings,
        &fx.server(s).entry(),
        &["sh", "-c", &script, &tok],
    );
    let mut instance = t.spawn(&spec).await.unwrap();
    let _io = instance.take_io().unwrap();
    assert!(
        instance.describe().starts_with("pid "),
        "{}",
        instance.describe()
    );
    assert!(
        eventually(Duration::from_secs(5), || fx.remote_pids(s, &tok).len()
            == 2)
        .await
    );
    instance.terminate().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, ExitStatus::Signaled(15));
    assert!(
        eventually(Duration::from_secs(5), || fx
            .remote_pids(s, &tok)
            .is_empty())
        .await,
        "left: {:?}",
        fx.remote_pids(s, &tok)
    );
    instance.cleanup().await;

    let tok = token("kill");
    let script = format!("trap '' TERM; sh -c 'sleep 1000; true' {tok}-child & sleep 1001; true");
    let spec = common::spec(
        &settings,
        &fx.server(s).entry(),
        &["sh", "-c", &script, &tok],
    );
    let mut instance = t.spawn(&spec).await.unwrap();
    let _io = instance.take_io().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || fx.remote_pids(s, &tok).len()
            == 2)
        .await
    );
    instance.kill().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, ExitStatus::Signaled(9));
    assert!(
        eventually(Duration::from_secs(5), || fx
            .remote_pids(s, &tok)
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn closing_stdin_ends_a_command_that_ignores_it_after_the_grace() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let tok = token("eof");
    let script = format!("trap '' TERM; sh -c 'sleep 1000; true' {tok}-child & sleep 1001; true");
    let spec = spec(
        &settings,
        &fx.server(s).entry(),
        &["sh", "-c", &script, &tok],
    );
    let mut instance = t.spawn(&spec).await.unwrap();
    let io = instance.take_io().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || fx.remote_pids(s, &tok).len()
            == 2)
        .await
    );
    drop(io.stdin);
    // stop_grace 0.5 s, then SIGTERM (the child ignores it... its shell too), then
    // SIGKILL 0.5 s later.
    let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(exit, ExitStatus::Signaled(_)), "{exit:?}");
    assert!(
        eventually(Duration::from_secs(5), || fx
            .remote_pids(s, &tok)
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn fifty_instances_on_one_host_share_one_session_even_with_max_sessions_1() {
    let mut fx = SshFixture::new();
    let s = fx.start_with("127.0.0.2", "MaxSessions 1");
    fx.trust(s);
    let t = std::sync::Arc::new(SshTransport::new());
    let settings = settings(&fx, json!({}));
    let tok = token("fifty");
    let spec = spec(
        &settings,
        &fx.server(s).entry(),
        &[
            "sh",
            "-c",
            &format!("echo up; exec cat > /dev/null # {tok}"),
        ],
    );
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (t, spec) = (t.clone(), spec.clone());
        set.spawn(async move { t.spawn(&spec).await });
    }
    let mut instances = Vec::new();
    while let Some(r) = set.join_next().await {
        instances.push(
            r.unwrap()
                .unwrap_or_else(|e| panic!("spawn: {}", distarch_core::error_chain(&e))),
        );
    }
    assert_eq!(
        t.connections_to(&fx.server(s).entry()).await,
        1,
        "one connection, one agent session"
    );
    // One login shell for the whole host: sshd logs one session for it.
    let sessions = fx.log(s).matches("Starting session: command").count();
    assert_eq!(sessions, 1, "{}", fx.log(s));
    let mut ios = Vec::new();
    for i in &mut instances {
        let io = i.take_io().unwrap();
        let mut line = [0u8; 3];
        let mut out = io.stdout;
        tokio::io::AsyncReadExt::read_exact(&mut out, &mut line)
            .await
            .unwrap();
        assert_eq!(&line, b"up\n");
        ios.push(io.stdin);
    }
    drop(ios);
    for i in &mut instances {
        let exit = tokio::time::timeout(Duration::from_secs(10), i.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(exit, ExitStatus::Exited(0));
        i.cleanup().await;
    }
    assert!(
        eventually(Duration::from_secs(5), || fx
            .remote_pids(s, &tok)
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn the_group_priority_becomes_the_remote_nice_value() {
    let mut fx = SshFixture::new();
    let s = fx.start("127.0.0.3");
    fx.trust(s);
    let settings = settings(&fx, json!({}));
    let mut spec = spec(&settings, &fx.server(s).entry(), &["nice"]);
    spec.priority = Some(7);
    let f = run_to_end(&SshTransport::new(), &spec).await;
    assert_eq!(String::from_utf8_lossy(&f.stdout), "7\n");
}

#[tokio::test]
async fn a_slow_login_shell_runs_once_per_host_for_starts_and_stops() {
    let fx = SshFixture::new();
    let logins = fx.dir().join("logins");
    let mut fx = fx.with_bashrc(&format!("echo login >> '{}'; sleep 1\n", logins.display()));
    let s = fx.start("127.0.0.3");
    fx.trust(s);
    let t = std::sync::Arc::new(SshTransport::new());
    let settings = settings(&fx, json!({}));
    let tok = token("slowrc");
    let script = format!("trap '' TERM; echo up; while :; do sleep 1; done # {tok}");
    let spec = spec(&settings, &fx.server(s).entry(), &["sh", "-c", &script]);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (t, spec) = (t.clone(), spec.clone());
        set.spawn(async move { t.spawn(&spec).await.unwrap() });
    }
    let mut instances = Vec::new();
    while let Some(i) = set.join_next().await {
        instances.push(i.unwrap());
    }
    let mut ios = Vec::new();
    for i in &mut instances {
        // "up" comes after the worker's `trap '' TERM`.
        let io = i.take_io().unwrap();
        let mut out = tokio::io::BufReader::new(io.stdout);
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
            .await
            .unwrap();
        assert_eq!(line, "up\n");
        ios.push((io.stdin, out));
    }
    let count = || std::fs::read_to_string(&logins).unwrap().lines().count();
    assert_eq!(count(), 1, "20 instances, one login shell");
    // Terminate (ignored by the workers), then kill: requests to the agent.
    for i in &mut instances {
        i.terminate().await.unwrap();
    }
    for i in &mut instances {
        i.kill().await.unwrap();
    }
    for i in &mut instances {
        let exit = tokio::time::timeout(Duration::from_secs(10), i.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(exit, ExitStatus::Signaled(9));
        i.cleanup().await;
    }
    assert_eq!(count(), 1, "stopping ran a login shell");
    assert!(
        eventually(Duration::from_secs(5), || fx
            .remote_pids(s, &tok)
            .is_empty())
        .await
    );
}

/// The agent directories under `dir` (the fixture's own TMPDIR, so that other
/// tests' agents, running at the same time, are not seen).
fn agent_dirs(dir: &std::path::Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("distarch-ssh."))
        })
        .collect()
}

#[tokio::test]
async fn the_agent_keeps_its_fifos_in_a_private_directory_it_removes_at_the_end() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let fx = SshFixture::new();
    let tmp = fx.dir().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut fx = fx.with_bashrc(&format!("export TMPDIR='{}'\n", tmp.display()));
    let s = fx.start("127.0.0.1");
    fx.trust(s);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let spec = spec(
        &settings,
        &fx.server(s).entry(),
        &["sh", "-c", "echo up; exec cat"],
    );
    let mut instance = t.spawn(&spec).await.unwrap();
    let io = instance.take_io().unwrap();
    let mut out = tokio::io::BufReader::new(io.stdout);
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
        .await
        .unwrap();
    assert_eq!(line, "up\n");
    let ours: Vec<_> = agent_dirs(&tmp).into_iter().collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let dir = &ours[0];
    // mktemp's random suffix, mode 0700, and the fifos inside it.
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(name.len(), "distarch-ssh.".len() + 8, "{name}");
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    assert!(std::fs::metadata(dir.join("l"))
        .unwrap()
        .file_type()
        .is_fifo());
    drop(io.stdin);
    let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit, ExitStatus::Exited(0));
    instance.cleanup().await;
    t.shutdown().await;
    assert!(eventually(Duration::from_secs(10), || !dir.exists()).await);
}
