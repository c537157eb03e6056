//! Every example in examples/ runs as its README line says, against the sandbox of
//! scripts/sandbox.sh (a throw-away sshd, dockerd and test Kubernetes API server):
//! the script is started and stopped here exactly as a person would use it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

/// `scripts/sandbox.sh start` in a private directory and port; `stop` on drop.
struct Sandbox {
    dir: PathBuf,
    port: u16,
    _keep: tempfile::TempDir,
}

impl Sandbox {
    fn start() -> Sandbox {
        // Short: the docker socket path must stay under ~100 bytes.
        let keep = tempfile::Builder::new()
            .prefix("dsb")
            .tempdir_in("/tmp")
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sandbox = Sandbox {
            dir: keep.path().join("s"),
            port,
            _keep: keep,
        };
        let out = sandbox.script("start");
        assert!(out.0, "sandbox.sh start failed:\n{}", out.1);
        sandbox
    }

    fn script(&self, verb: &str) -> (bool, String) {
        let out = Command::new(repo_root().join("scripts/sandbox.sh"))
            .arg(verb)
            .env("SANDBOX_DIR", &self.dir)
            .env("SANDBOX_SSH_PORT", self.port.to_string())
            .env(
                "SANDBOX_APISERVER",
                profile_dir().join("distarch-fake-apiserver"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/sandbox.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// What `eval "$(scripts/sandbox.sh env)"` exports.
    fn env(&self) -> Vec<(String, String)> {
        let (ok, text) = self.script("env");
        assert!(ok, "sandbox.sh env failed:\n{text}");
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let (ok, text) = self.script("stop");
        if !std::thread::panicking() {
            assert!(ok, "sandbox.sh stop failed:\n{text}");
            assert!(
                !self.dir.exists(),
                "sandbox.sh stop left {}",
                self.dir.display()
            );
        }
    }
}

/// Runs `program args` from the repository root with the sandbox's variables (and no
/// DISTARCH_* of the developer's), to its end; returns (exit code, stdout+stderr).
fn run_from_root(program: &Path, args: &[&str], env: &[(String, String)]) -> (i32, String) {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(repo_root());
    for (key, _) in std::env::vars() {
        if key.starts_with("DISTARCH_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .env(
            "PATH",
            format!(
                "{}:{}",
                profile_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the example");
    let pid = child.id();
    // Output is read by threads so that a chatty run never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let ended = wait_until(LIMIT, || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let text = format!("{}{}", t1.join().unwrap(), t2.join().unwrap());
    assert!(
        ended,
        "{program:?} {args:?} (pid {pid}) did not end within {LIMIT:?}:\n{text}"
    );
    (status.code().unwrap_or(-1), text)
}

fn distarch(args: &[&str], env: &[(String, String)]) -> (i32, String) {
    run_from_root(&distarch_bin(), args, env)
}

/// Panics unless the run ended with code 0, every one of `count` instances says it
/// ended after the stop request, and the master's closing line is there.
fn assert_clean(name: &str, (code, text): &(i32, String), count: usize) {
    assert_eq!(*code, 0, "{name}: exit code\n{text}");
    let ended = text
        .lines()
        .filter(|l| l.contains("ended after a stop request: exit code 0"))
        .count();
    assert_eq!(ended, count, "{name}: instances that ended cleanly\n{text}");
    assert!(
        text.contains("all instances ended (exit code 0)"),
        "{name}: no closing line\n{text}"
    );
}

#[test]
fn local_examples_run_as_documented() {
    let none: Vec<(String, String)> = Vec::new();
    let run = distarch(&["launch", "-c", "examples/distarch.toml"], &none);
    assert_clean("distarch.toml", &run, 5);
    assert!(run.1.contains("INFO message: Hello World!"), "{}", run.1);
    assert!(
        run.1.contains("stopping after") && run.1.contains("the master asked me to stop"),
        "the example worker says why it stops in words:\n{}",
        run.1
    );
    assert!(
        !run.1.contains("Some("),
        "Rust debug text in the output:\n{}",
        run.1
    );

    let run = distarch(&["launch", "-c", "examples/shell.toml"], &none);
    assert_clean("shell.toml", &run, 2);

    let run = distarch(&["launch", "-c", "examples/python.toml"], &none);
    assert_clean("python.toml", &run, 2);
    assert!(run.1.contains("hello from Python"), "{}", run.1);

    let custom = profile_dir().join("distarch-custom-transport");
    let (code, text) = run_from_root(&custom, &["examples/custom-transport.toml"], &none);
    assert!(code == 0, "custom-transport.toml: exit code {code}\n{text}");
    assert_eq!(text.matches("tag=blue").count(), 2, "{text}");
}

#[test]
fn sandbox_examples_run_as_documented() {
    let sandbox = Sandbox::start();
    let env = sandbox.env();
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["DOCKER_HOST", "KUBECONFIG"], "sandbox.sh env");

    // Docker: build the image on the sandbox's engine, then the README line.
    let (code, text) = run_from_root(
        &repo_root().join("examples/build-docker-image.sh"),
        &[],
        &env,
    );
    assert_eq!(code, 0, "build-docker-image.sh:\n{text}");
    let run = distarch(&["launch", "-c", "examples/docker.toml"], &env);
    assert_clean("docker.toml", &run, 3);
    assert!(run.1.contains("Hello from a container!"), "{}", run.1);

    // Kubernetes, through the test API server, pods on the same engine.
    let run = distarch(&["launch", "-c", "examples/kubernetes.toml"], &env);
    assert_clean("kubernetes.toml", &run, 3);
    assert!(run.1.contains("Hello from a pod!"), "{}", run.1);

    // SSH: the README's sed (absolute worker path), and this sandbox's directory
    // instead of the default one.
    let text = std::fs::read_to_string(repo_root().join("examples/ssh.toml")).unwrap();
    let text = text
        .replace(
            "target/debug",
            &format!("{}/target/debug", repo_root().display()),
        )
        .replace("/tmp/distarch-sandbox", &sandbox.dir.display().to_string());
    let config = sandbox.dir.join("ssh.toml");
    std::fs::write(&config, text).unwrap();
    let run = distarch(&["launch", "-c", config.to_str().unwrap()], &env);
    assert_clean("ssh.toml", &run, 4);
    assert_eq!(
        run.1
            .lines()
            .filter(|l| l.contains("sandbox] [") && l.contains("I am instance"))
            .count(),
        2,
        "two instances over SSH:\n{}",
        run.1
    );
}
