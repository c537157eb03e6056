//! The test Kubernetes API server (tests/kube-apiserver) for one test or a few: a
//! `distarch-fake-apiserver` process on a free loopback port, running pods as
//! containers on a harness dockerd, with a kubeconfig that points at it. Dropping
//! it stops the server (SIGTERM: it removes its containers; SIGKILL after 20 s).
//!
//! [`KubeTarget`] is what the Kubernetes end-to-end tests run against: this server,
//! or the real cluster of [`crate::k8s_cluster`].

use crate::dockerd::Dockerd;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long it may take to stop after SIGTERM (it removes its containers first).
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// The built server binary.
pub fn fake_apiserver_bin() -> PathBuf {
    let path = crate::profile_dir().join("distarch-fake-apiserver");
    assert!(
        path.exists(),
        "{} is missing: build everything first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// A running test API server.
pub struct ApiServer {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl ApiServer {
    /// Starts a server whose pods run on `dockerd`; `extra` are more arguments
    /// (`--forbid create:pods`, `--namespace x`, ...).
    pub fn start(dockerd: &Dockerd, extra: &[&str]) -> ApiServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = format!(
            "k{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
        );
        let mut cmd = Command::new(fake_apiserver_bin());
        cmd.args([
            "--docker",
            &dockerd.host(),
            "--listen",
            "127.0.0.1:0",
            "--id",
            &id,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log")).expect("log file"));
        let mut child = cmd.spawn().expect("start distarch-fake-apiserver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_LIMIT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("distarch-fake-apiserver did not start within {START_LIMIT:?}:\n{log}");
            }
        };
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
            .to_string();
        let server = ApiServer { child, addr, dir };
        std::fs::write(server.kubeconfig(), server.kubeconfig_text("default")).expect("kubeconfig");
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (context `fake`, namespace `default`) pointing at this server.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The text of a kubeconfig whose context `fake` uses `namespace`.
    pub fn kubeconfig_text(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `GET path`; returns the status code and the JSON body.
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        http(&self.addr, "GET", path)
    }

    /// API requests counted so far, by `verb resource`, and their total.
    pub fn requests(&self) -> (u64, serde_json::Value) {
        let (_, v) = self.get("/debug/requests");
        (v["total"].as_u64().unwrap_or(0), v["by"].clone())
    }

    /// Zeroes the request counters.
    pub fn reset_requests(&self) {
        let _ = self.get("/debug/requests/reset");
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let stopped =
                crate::wait_until(STOP_LIMIT, || matches!(self.child.try_wait(), Ok(Some(_))));
            if !stopped {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

/// A tiny HTTP/1.1 client (the server answers lists with a Content-Length body).
fn http(addr: &str, method: &str, path: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).expect("connect to the test API server");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Where the Kubernetes end-to-end tests run: the test API server, or a real
/// cluster.
pub struct KubeTarget {
    /// Kubeconfig to use.
    pub kubeconfig: PathBuf,
    /// Namespace of the pods.
    pub namespace: String,
    /// Image with `/worker` (the test worker) and `/example-worker`.
    pub image: String,
    /// The test API server, when that is the target.
    pub server: Option<ApiServer>,
    /// The real cluster (tests/k8s-cluster), when that is the target.
    pub cluster: Option<std::sync::Arc<crate::k8s_cluster::K8sCluster>>,
}

impl KubeTarget {
    /// The test API server on `dockerd` (whose engine has `image`).
    pub fn fake(dockerd: &Dockerd, image: &str, extra: &[&str]) -> KubeTarget {
        let server = ApiServer::start(dockerd, extra);
        KubeTarget {
            kubeconfig: server.kubeconfig(),
            namespace: "default".into(),
            image: image.into(),
            server: Some(server),
            cluster: None,
        }
    }

    /// The API server's URL, as error messages name it.
    pub fn url(&self) -> String {
        match (&self.server, &self.cluster) {
            (Some(s), _) => s.url(),
            (None, Some(c)) => c.url(),
            (None, None) => String::new(),
        }
    }

    /// Is this the test API server?
    pub fn is_fake(&self) -> bool {
        self.server.is_some()
    }

    /// A kubernetes placement on this target (`extra` = `, key = value, ...`).
    pub fn placement(&self, n: u32, extra: &str) -> String {
        format!(
            "{{ transport = \"kubernetes\", image = {}, kubeconfig = {}, namespace = {}, instances = {n}{extra} }}",
            crate::toml_str(&self.image),
            crate::toml_str(self.kubeconfig.display().to_string()),
            crate::toml_str(&self.namespace),
        )
    }

    /// The kubeconfig path as text.
    pub fn kubeconfig_str(&self) -> String {
        self.kubeconfig.display().to_string()
    }
}
