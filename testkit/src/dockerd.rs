//! A private Docker engine for one test (or a few sharing it), in a temp dir.
//!
//! `Dockerd::start()` runs `dockerd` with its own data root, exec root and unix
//! socket, without iptables or a bridge (containers use `network = "none"` or
//! `"host"`), and waits until the API answers. Dropping it removes every container
//! of that engine, stops dockerd (SIGTERM, then SIGKILL of its whole process group,
//! containerd included) and deletes the temp dir. `Dockerd::shared()` hands out one
//! engine to every test of a binary that runs at the same time, started on first
//! use and stopped when the last user drops it.

use crate::daemon::{self, free_port, group_members};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long dockerd may take to answer after it was started.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long dockerd may take to shut down after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// A running private dockerd.
pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
    tls_port: Option<u16>,
    /// dockerd's arguments, to start it again the same way.
    args: Vec<std::ffi::OsString>,
}

/// How to start a private dockerd.
#[derive(Debug, Clone, Default)]
pub struct DockerdOptions {
    /// Also listen on `tcp://127.0.0.1:PORT` with TLS, client certificates required
    /// (certificates made by a throwaway CA; see [`Dockerd::client_certs`]).
    pub tls_tcp: bool,
}

/// The docker CLI (`docker` on PATH).
pub fn docker_cli() -> PathBuf {
    PathBuf::from("docker")
}

impl Dockerd {
    /// Starts a private engine; panics with dockerd's log if it does not come up.
    pub fn start() -> Dockerd {
        Self::start_with(DockerdOptions::default())
    }

    /// Starts a private engine with `options`.
    pub fn start_with(options: DockerdOptions) -> Dockerd {
        // Unix socket paths are limited to ~107 bytes: keep the dir short.
        let dir = tempfile::Builder::new()
            .prefix("dkd")
            .tempdir_in("/tmp")
            .expect("temp dir for dockerd");
        let root = dir.path();
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", root.join("docker.sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"]);
        let mut tls_port = None;
        if options.tls_tcp {
            let certs = root.join("certs");
            make_certs(&certs);
            let port = free_port();
            tls_port = Some(port);
            cmd.arg("-H")
                .arg(format!("tcp://127.0.0.1:{port}"))
                .arg("--tlsverify")
                .arg("--tlscacert")
                .arg(certs.join("ca.pem"))
                .arg("--tlscert")
                .arg(certs.join("server-cert.pem"))
                .arg("--tlskey")
                .arg(certs.join("server-key.pem"));
        }
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_os_string()).collect();
        let child = spawn_dockerd(root, &args);
        let mut d = Dockerd {
            dir,
            child,
            tls_port,
            args,
        };
        d.wait_up();
        d
    }

    /// Stops dockerd (SIGTERM: it stops its containers, as on a service restart)
    /// and starts it again with the same data root and socket; returns once the
    /// API answers again.
    pub fn restart(&mut self) {
        daemon::kill(self.child.id(), "-TERM");
        let stopped =
            crate::wait_until(STOP_LIMIT, || matches!(self.child.try_wait(), Ok(Some(_))));
        assert!(stopped, "dockerd did not stop within {STOP_LIMIT:?}");
        let _ = self.child.wait();
        for pid in group_members(self.child.id()) {
            daemon::kill(pid, "-KILL");
        }
        self.child = spawn_dockerd(self.dir.path(), &self.args);
        self.wait_up();
    }

    fn wait_up(&mut self) {
        let d = self;
        let up = crate::wait_until(START_LIMIT, || {
            if matches!(d.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            d.docker(&["version", "--format", "{{.Server.APIVersion}}"])
                .status
                .success()
        });
        let exited = matches!(d.child.try_wait(), Ok(Some(_)));
        if !up || exited {
            panic!(
                "dockerd did not come up within {START_LIMIT:?} (exited: {exited}); log:\n{}",
                daemon::log_tail(&d.dir.path().join("dockerd.log"), 30)
            );
        }
    }

    /// One engine shared by the tests of this binary that run at the same time;
    /// stopped when the last `Arc` is dropped.
    pub fn shared() -> Arc<Dockerd> {
        static SHARED: Mutex<Weak<Dockerd>> = Mutex::new(Weak::new());
        daemon::shared(&SHARED, Dockerd::start)
    }

    /// The engine address, `unix:///tmp/dkdXXXX/docker.sock` (for `host = ...` or
    /// `DOCKER_HOST`).
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The TLS address, `tcp://127.0.0.1:PORT`, when started with `tls_tcp`.
    pub fn tls_host(&self) -> Option<String> {
        self.tls_port.map(|p| format!("tcp://127.0.0.1:{p}"))
    }

    /// The folder with the client's `ca.pem`, `cert.pem` and `key.pem` (what
    /// `DOCKER_CERT_PATH` points at), when started with `tls_tcp`.
    pub fn client_certs(&self) -> Option<PathBuf> {
        self.tls_port.map(|_| self.dir.path().join("certs"))
    }

    /// The engine's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The engine's temp dir (its log is `dockerd.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the docker CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(docker_cli())
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the docker CLI")
    }

    /// Runs the docker CLI against this engine; panics unless it succeeds; returns
    /// its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Names of the containers matching every `label` filter (`key` or `key=value`);
    /// with `all`, stopped ones too.
    pub fn containers(&self, labels: &[&str], all: bool) -> Vec<String> {
        let mut args: Vec<String> = vec!["ps".into(), "--format".into(), "{{.Names}}".into()];
        if all {
            args.push("-a".into());
        }
        for l in labels {
            args.push("--filter".into());
            args.push(format!("label={l}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut names: Vec<String> = self
            .docker_ok(&refs)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// Names of the containers of a distarch run (`distarch.run=RUN`).
    pub fn run_containers(&self, run: &str, all: bool) -> Vec<String> {
        self.containers(&[&format!("distarch.run={run}")], all)
    }

    /// Waits until no container matches `labels` (running ones only unless `all`).
    pub fn wait_no_containers(&self, labels: &[&str], all: bool, limit: Duration) -> bool {
        crate::wait_until(limit, || self.containers(labels, all).is_empty())
    }

    /// Removes every container of the engine.
    pub fn remove_all_containers(&self) {
        let ids = self.docker(&["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            let _ = self.docker(&args);
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.remove_all_containers();
        }
        // Whatever is left of its process group (containerd) goes too.
        daemon::stop_group(&mut self.child, STOP_LIMIT);
        // dockerd may leave mounts (e.g. `exec/netns/default`) that would keep the
        // temp dir from being deleted.
        daemon::unmount_under(self.dir.path());
    }
}

/// Starts dockerd with `args`, its log appended to `dir/dockerd.log`, in a process
/// group of its own.
fn spawn_dockerd(dir: &Path, args: &[std::ffi::OsString]) -> Child {
    daemon::spawn_logged(Path::new("dockerd"), args, &dir.join("dockerd.log"))
        .expect("start dockerd (is docker.io installed? scripts/test.sh installs it)")
}

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, in
/// `dir` (`ca.pem`, `server-cert.pem`, `server-key.pem`, `cert.pem`, `key.pem`).
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).expect("certs dir");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("server.ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("client.ext");
    let steps: [&[&str]; 5] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=distarch-test-ca",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "server-cert.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "client.csr",
            "-subj",
            "/CN=distarch-test-client",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A unix socket in front of an engine's socket that the test controls: it
/// forwards every connection (half-closes included) and can cut them all at once,
/// as a network blip or an engine connection reset would.
pub struct SocketProxy {
    dir: tempfile::TempDir,
    state: Arc<ProxyState>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct ProxyState {
    /// Both ends of every open forwarded connection.
    open: Mutex<Vec<std::os::unix::net::UnixStream>>,
    /// New connections are refused (closed at once) until then.
    refuse_until: Mutex<Option<std::time::Instant>>,
    stop: std::sync::atomic::AtomicBool,
}

impl SocketProxy {
    /// Listens on a new socket and forwards to `target`.
    pub fn start(target: &Path) -> SocketProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::Builder::new()
            .prefix("dkp")
            .tempdir_in("/tmp")
            .expect("temp dir for the proxy");
        let listener = UnixListener::bind(dir.path().join("proxy.sock")).expect("bind the proxy");
        let state = Arc::new(ProxyState::default());
        let target = target.to_path_buf();
        let shared = state.clone();
        let accepting = std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let refused = shared
                    .refuse_until
                    .lock()
                    .unwrap()
                    .is_some_and(|t| std::time::Instant::now() < t);
                if refused {
                    continue;
                }
                let Ok(upstream) = UnixStream::connect(&target) else {
                    continue;
                };
                let pair = (
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                shared.open.lock().unwrap().extend([pair.0, pair.1]);
                forward(
                    client.try_clone().expect("clone"),
                    upstream.try_clone().expect("clone"),
                );
                forward(upstream, client);
            }
        });
        SocketProxy {
            dir,
            state,
            accepting: Some(accepting),
        }
    }

    /// The proxy's address, for `host = ...`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("proxy.sock").display())
    }

    /// Cuts every open connection and refuses new ones for `outage`.
    pub fn blip(&self, outage: Duration) {
        *self.state.refuse_until.lock().unwrap() = Some(std::time::Instant::now() + outage);
        for s in self.state.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` in a thread; passes an end of stream on as a half-close.
fn forward(mut from: std::os::unix::net::UnixStream, mut to: std::os::unix::net::UnixStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(self.dir.path().join("proxy.sock"));
        if let Some(t) = self.accepting.take() {
            let _ = t.join();
        }
        for s in self.state.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}
