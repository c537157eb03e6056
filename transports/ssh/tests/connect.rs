//! Connection setup against real sshd servers: host key checking, authentication
//! methods, unreachable hosts and dropped connections.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use distarch_core::{error_chain, ExitStatus, Transport};
use distarch_transport_ssh::SshTransport;
use serde_json::json;
use std::time::{Duration, Instant};

async fn spawn_error(t: &SshTransport, spec: &distarch_core::InstanceSpec) -> String {
    match t.spawn(spec).await {
        Ok(_) => panic!("spawn should fail"),
        Err(e) => error_chain(&e),
    }
}

#[tokio::test]
async fn a_changed_host_key_is_refused_naming_the_host_and_the_fingerprint() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.1");
    let b = fx.start("127.0.0.2");
    // known_hosts says server a's address has server b's key.
    let line = format!(
        "[{}]:{} {}\n",
        fx.server(a).ip,
        fx.server(a).port,
        fx.server(b).host_key_pub
    );
    std::fs::write(&fx.known_hosts, line).unwrap();
    let t = SshTransport::new();
    let entry = fx.server(a).entry();
    let settings = settings(&fx, json!({ "host_key_check": "accept-new" }));
    let err = spawn_error(&t, &spec(&settings, &entry, &["true"])).await;
    assert!(err.contains(&entry), "{err}");
    assert!(err.contains(&fx.server(a).fingerprint()), "{err}");
    assert!(err.contains("has changed"), "{err}");
}

#[tokio::test]
async fn strict_refuses_an_unknown_host_and_accept_new_records_it() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.3");
    let t = SshTransport::new();
    let entry = fx.server(a).entry();
    let strict = settings(&fx, json!({}));
    let err = spawn_error(&t, &spec(&strict, &entry, &["true"])).await;
    assert!(
        err.contains(&entry) && err.contains(&fx.server(a).fingerprint()),
        "{err}"
    );
    assert!(err.contains("accept-new"), "{err}");
    assert_eq!(std::fs::read_to_string(&fx.known_hosts).unwrap(), "");

    let accept = settings(&fx, json!({ "host_key_check": "accept-new" }));
    let f = run_to_end(&t, &spec(&accept, &entry, &["echo", "hi"])).await;
    assert_eq!(f.exit, ExitStatus::Exited(0));
    let recorded = std::fs::read_to_string(&fx.known_hosts).unwrap();
    assert!(
        recorded.contains(&fx.server(a).known_hosts_line()),
        "{recorded}"
    );
    // Now strict accepts it (fresh transport: a new connection).
    let f = run_to_end(&SshTransport::new(), &spec(&strict, &entry, &["true"])).await;
    assert_eq!(f.exit, ExitStatus::Exited(0));
}

#[tokio::test]
async fn accept_new_creates_a_missing_ssh_directory_private_like_openssh() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.3");
    let entry = fx.server(a).entry();
    let dir = fx.dir().join("home/.ssh");
    let known = dir.join("known_hosts");
    let accept = settings(
        &fx,
        json!({ "host_key_check": "accept-new", "known_hosts": known.display().to_string() }),
    );
    let f = run_to_end(&SshTransport::new(), &spec(&accept, &entry, &["true"])).await;
    assert_eq!(f.exit, ExitStatus::Exited(0));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    assert!(std::fs::read_to_string(&known)
        .unwrap()
        .contains(&fx.server(a).known_hosts_line()));
}

#[tokio::test]
async fn an_unreachable_host_fails_fast_and_clearly() {
    let fx = SshFixture::new();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let entry = format!("root@127.0.0.1:{port}");
    let t = SshTransport::new();
    let settings = settings(&fx, json!({ "connect_timeout": "1s" }));
    let started = Instant::now();
    let err = spawn_error(&t, &spec(&settings, &entry, &["true"])).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains(&format!("cannot connect to {entry} (127.0.0.1:{port})")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[tokio::test]
async fn key_types_and_passphrases() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.1");
    fx.trust(a);
    let entry = fx.server(a).entry();
    for (kind, pass) in [("ecdsa", ""), ("rsa", ""), ("ed25519", "s3cret pass")] {
        let key = fx.keygen(&format!("id_{kind}"), kind, pass);
        fx.authorize(&key);
        let mut extra = json!({ "identity_files": [key.display().to_string()] });
        if !pass.is_empty() {
            // SAFETY-free: tests of this binary read this variable only here.
            std::env::set_var("DISTARCH_TEST_PASSPHRASE", pass);
            extra["passphrase_env"] = json!("DISTARCH_TEST_PASSPHRASE");
        }
        let settings = settings(&fx, extra);
        let f = run_to_end(
            &SshTransport::new(),
            &spec(&settings, &entry, &["echo", kind]),
        )
        .await;
        assert_eq!(
            String::from_utf8_lossy(&f.stdout),
            format!("{kind}\n"),
            "{kind}"
        );
    }
    // Without the passphrase the key is unusable, and the error says why.
    let key = fx.dir().join("id_ed25519");
    let settings = settings(
        &fx,
        json!({ "identity_files": [key.display().to_string()], "passphrase_env": "DISTARCH_TEST_NO_SUCH_VAR" }),
    );
    let err = spawn_error(&SshTransport::new(), &spec(&settings, &entry, &["true"])).await;
    assert!(
        err.contains("authentication to") && err.contains("DISTARCH_TEST_NO_SUCH_VAR is not set"),
        "{err}"
    );
}

#[tokio::test]
async fn authenticates_with_the_agent() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.2");
    fx.trust(a);
    let key = fx.keygen("id_agent", "ed25519", "");
    fx.authorize(&key);
    let sock = fx.dir().join("agent.sock");
    let agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Kill(agent);
    assert!(eventually(Duration::from_secs(5), || sock.exists()).await);
    let added = std::process::Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    std::fs::remove_file(&key).unwrap(); // only the agent has it now
    std::env::set_var("SSH_AUTH_SOCK", &sock);
    let settings = settings(&fx, json!({ "identity_files": [] }));
    let f = run_to_end(
        &SshTransport::new(),
        &spec(&settings, &fx.server(a).entry(), &["echo", "agent"]),
    )
    .await;
    std::env::remove_var("SSH_AUTH_SOCK");
    assert_eq!(String::from_utf8_lossy(&f.stdout), "agent\n");
}

#[tokio::test]
async fn a_dropped_connection_loses_the_instance_and_leaves_nothing_on_the_host() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.3");
    fx.trust(a);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({}));
    let tok = token("drop");
    let script = "sh -c 'sleep 1000; true' child & sleep 1001; true";
    let spec = spec(
        &settings,
        &fx.server(a).entry(),
        &["sh", "-c", script, &tok],
    );
    let mut instance = t.spawn(&spec).await.unwrap();
    let _io = instance.take_io().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || fx.remote_pids(a, &tok).len()
            == 1)
        .await
    );
    assert!(fx.kill_connections(a) > 0);
    let exit = tokio::time::timeout(Duration::from_secs(30), instance.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&exit, ExitStatus::Lost(why) if why.contains(&fx.server(a).entry())),
        "{exit:?}"
    );
    // stop_grace 0.5 s + kill_after 0.5 s on the host, then nothing is left.
    assert!(
        eventually(Duration::from_secs(10), || fx
            .remote_pids(a, &tok)
            .is_empty())
        .await,
        "left: {:?}",
        fx.remote_pids(a, &tok)
    );
    // The transport reconnects for the next instance.
    let f = run_to_end(
        &t,
        &common::spec(&settings, &fx.server(a).entry(), &["echo", "again"]),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&f.stdout), "again\n");
}

#[tokio::test]
async fn a_host_that_never_answers_times_out_without_hanging() {
    let fx = SshFixture::new();
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let entry = format!("root@127.0.0.1:{port}");
    let t = std::sync::Arc::new(SshTransport::new());
    let settings = settings(&fx, json!({ "connect_timeout": "500ms" }));
    let started = Instant::now();
    // Two instances waiting for the same host get the same answer.
    let spec = spec(&settings, &entry, &["true"]);
    let (a, b) = tokio::join!(t.spawn(&spec), t.spawn(&spec));
    let elapsed = started.elapsed();
    silent.abort();
    for r in [a, b] {
        let err = error_chain(&r.err().expect("must fail"));
        assert!(
            err.contains(&format!(
                "connecting to {entry} (127.0.0.1:{port}) timed out after 500ms"
            )),
            "{err}"
        );
    }
    // 3 attempts of 0.5 s with 0.3 s + 0.6 s of backoff (plus jitter), once for both.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(1500),
        "retried: {elapsed:?}"
    );
}

#[tokio::test]
async fn keepalives_notice_a_silent_connection() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.1");
    fx.trust(a);
    let t = SshTransport::new();
    let settings = settings(&fx, json!({ "keepalive": "300ms" }));
    let tok = token("frozen");
    let spec = spec(
        &settings,
        &fx.server(a).entry(),
        &["sh", "-c", "sleep 1000; true", &tok],
    );
    let mut instance = t.spawn(&spec).await.unwrap();
    let _io = instance.take_io().unwrap();
    // The server's side of the connection stops answering, without closing it.
    assert!(fx.signal_connections(a, "STOP") > 0);
    let started = Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(20), instance.wait()).await;
    fx.signal_connections(a, "CONT");
    let exit = exit
        .expect("keepalives should have dropped the connection")
        .unwrap();
    assert!(matches!(&exit, ExitStatus::Lost(_)), "{exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // When the host's sshd runs again it finds the connection closed, and the
    // watcher leaves nothing behind.
    assert!(
        eventually(Duration::from_secs(10), || fx
            .remote_pids(a, &tok)
            .is_empty())
        .await
    );
}
