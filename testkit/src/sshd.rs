//! Real OpenSSH servers for tests: one `sshd` per loopback address (127.0.0.1,
//! .2, .3, ...), each with its own host key, all accepting one client key, with
//! their keys, config and known_hosts in a temp directory. Dropping the
//! [`SshFixture`] kills every server and everything started below it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One running sshd.
pub struct Sshd {
    /// Listen address (a loopback address).
    pub ip: String,
    /// Listen port.
    pub port: u16,
    /// Public host key line (`ssh-ed25519 AAAA...`).
    pub host_key_pub: String,
    /// Public host key file.
    pub host_key_pub_file: PathBuf,
    /// Log file (sshd -e).
    pub log: PathBuf,
    child: Child,
}

impl Sshd {
    /// The listener's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `root@IP:PORT`.
    pub fn entry(&self) -> String {
        format!("root@{}:{}", self.ip, self.port)
    }

    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.ip, self.port, self.host_key_pub)
    }

    /// SHA256 fingerprint of the host key, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&self.host_key_pub_file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }
}

/// Keys, config and servers of one test.
pub struct SshFixture {
    dir: tempfile::TempDir,
    /// The client's private key (ed25519, no passphrase), authorized on every server.
    pub client_key: PathBuf,
    /// A known_hosts file (empty until [`SshFixture::trust`]).
    pub known_hosts: PathBuf,
    servers: Vec<Sshd>,
    bashrc: Option<String>,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Default for SshFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl SshFixture {
    /// A temp directory with a client key and an empty known_hosts.
    pub fn new() -> Self {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: apt-get install -y openssh-server (scripts/test.sh does)"
        );
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("distarch-sshd-")
            .tempdir()
            .unwrap();
        let fixture = SshFixture {
            client_key: dir.path().join("id_client"),
            known_hosts: dir.path().join("known_hosts"),
            dir,
            servers: Vec::new(),
            bashrc: None,
        };
        fixture.keygen("id_client", "ed25519", "");
        std::fs::write(&fixture.known_hosts, "").unwrap();
        fixture.authorize(&fixture.client_key);
        fixture
    }

    /// The temp directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Generates a key pair `name` of `kind` (ed25519, ecdsa, rsa) with `passphrase`.
    pub fn keygen(&self, name: &str, kind: &str, passphrase: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
            .arg(&path);
        if kind == "rsa" {
            cmd.args(["-b", "2048"]);
        }
        run(&mut cmd);
        path
    }

    /// Adds the public half of `key` to the authorized keys of every server.
    pub fn authorize(&self, key: &Path) {
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .unwrap();
        f.write_all(public.as_bytes()).unwrap();
    }

    /// Makes servers started from now on run in a private mount namespace where
    /// `$HOME/.bashrc` is empty, so that sessions do not pay for the machine's own
    /// shell start-up files (bash sources ~/.bashrc for every SSH command).
    pub fn with_empty_bashrc(self) -> Self {
        self.with_bashrc("")
    }

    /// Makes servers started from now on run in a private mount namespace where
    /// `$HOME/.bashrc` holds `text` (e.g. `sleep 0.3`, a slow login shell like a
    /// `.bashrc` that runs `pyenv init` or conda's hook).
    pub fn with_bashrc(mut self, text: &str) -> Self {
        let path = self.dir.path().join("bashrc");
        std::fs::write(&path, text).unwrap();
        self.bashrc = Some(path.display().to_string());
        self
    }

    /// Starts an sshd on `ip` (a loopback address) on a free port; returns its index.
    pub fn start(&mut self, ip: &str) -> usize {
        self.start_with(ip, "")
    }

    /// Starts an sshd with extra lines in its config.
    pub fn start_with(&mut self, ip: &str, extra_config: &str) -> usize {
        self.start_in(None, ip, extra_config)
    }

    /// Starts an sshd inside network namespace `netns` (a name from `ip netns`),
    /// listening on `ip`, an address of that namespace.
    pub fn start_in(&mut self, netns: Option<&str>, ip: &str, extra_config: &str) -> usize {
        let n = self.servers.len();
        let dir = self.dir.path().to_path_buf();
        let host_key = dir.join(format!("host_{n}"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key));
        let host_key_pub_file = host_key.with_extension("pub");
        let public = std::fs::read_to_string(&host_key_pub_file).unwrap();
        let host_key_pub = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let config = dir.join(format!("sshd_config_{n}"));
        std::fs::write(
            &config,
            format!(
                "HostKey {hk}\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {pid}\nLogLevel VERBOSE\n{extra_config}\n",
                hk = host_key.display(),
                ak = dir.join("authorized_keys").display(),
                pid = dir.join(format!("sshd_{n}.pid")).display(),
            ),
        )
        .unwrap();
        let log = dir.join(format!("sshd_{n}.log"));
        for _attempt in 0..5 {
            let port = match netns {
                // A fresh namespace has every port free.
                Some(_) => 2200 + _attempt as u16,
                None => TcpListener::bind((ip, 0))
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port(),
            };
            let bashrc = std::env::var("HOME")
                .map(|h| format!("{h}/.bashrc"))
                .unwrap_or_default();
            let mut command = if let Some(ours) = &self.bashrc {
                if !Path::new(&bashrc).exists() {
                    std::fs::write(&bashrc, "").unwrap();
                }
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount --bind '{ours}' '{bashrc}' && exec /usr/sbin/sshd \"$@\""
                    ))
                    .arg("sshd");
                c
            } else if let Some(ns) = netns {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/sshd"]);
                c
            } else {
                Command::new("/usr/sbin/sshd")
            };
            let child = command
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .arg("-o")
                .arg(format!("ListenAddress={ip}:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start sshd");
            let mut sshd = Sshd {
                ip: ip.to_string(),
                port,
                host_key_pub: host_key_pub.clone(),
                host_key_pub_file: host_key_pub_file.clone(),
                log: log.clone(),
                child,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if TcpStream::connect((ip, port)).is_ok() {
                    self.servers.push(sshd);
                    return n;
                }
                if let Ok(Some(_)) = sshd.child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = sshd.child.kill();
            let _ = sshd.child.wait();
        }
        panic!(
            "sshd on {ip} did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Server `i`.
    pub fn server(&self, i: usize) -> &Sshd {
        &self.servers[i]
    }

    /// Adds server `i`'s host key to [`SshFixture::known_hosts`].
    pub fn trust(&self, i: usize) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.known_hosts)
            .unwrap();
        writeln!(f, "{}", self.servers[i].known_hosts_line()).unwrap();
    }

    /// Trusts every server started so far.
    pub fn trust_all(&self) {
        for i in 0..self.servers.len() {
            self.trust(i);
        }
    }

    /// The settings of an SSH placement on `servers`, as TOML key/values on one
    /// line (to put inside `{ transport = "ssh", instances = N, ... }`): the test's
    /// own key, known_hosts, and no ssh config.
    pub fn placement_settings(&self, servers: &[usize]) -> String {
        let hosts: Vec<String> = servers
            .iter()
            .map(|i| format!("{:?}", self.servers[*i].entry()))
            .collect();
        format!(
            "hosts = [{}], identity_files = [{:?}], known_hosts = {:?}, ssh_config = \"none\", connect_timeout = \"5s\"",
            hosts.join(", "),
            self.client_key.display().to_string(),
            self.known_hosts.display().to_string(),
        )
    }

    /// Runs `remote` on server `i` with the OpenSSH client (a separate session).
    pub fn ssh(&self, i: usize, remote: &str) -> std::process::Output {
        let s = &self.servers[i];
        Command::new("ssh")
            .arg("-i")
            .arg(&self.client_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-F",
                "none",
            ])
            .arg("-p")
            .arg(s.port.to_string())
            .arg(format!("root@{}", s.ip))
            .arg(remote)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }

    /// Pids of processes on server `i` whose command line contains `token` (a
    /// `dtok-...` token), asked over a separate OpenSSH session with `pgrep`.
    pub fn remote_pids(&self, i: usize, token: &str) -> Vec<u32> {
        assert!(token.len() > 1 && token.is_ascii());
        // `[x]` keeps pgrep's own shell out of the match.
        let pattern = format!("[{}]{}", &token[..1], &token[1..]);
        let out = self.ssh(i, &format!("pgrep -f '{pattern}' || true"));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Like [`SshFixture::remote_pids`], but only processes whose environment has
    /// `DISTARCH_HOST=<entry of server i>`: the loopback "hosts" share one machine,
    /// so this is how a test tells which host's instances a process belongs to.
    pub fn remote_pids_of_host(&self, i: usize, token: &str) -> Vec<u32> {
        assert!(token.len() > 1 && token.is_ascii());
        let pattern = format!("[{}]{}", &token[..1], &token[1..]);
        let script = format!(
            "for p in $(pgrep -f '{pattern}'); do grep -qsaF 'DISTARCH_HOST={}' /proc/$p/environ && echo $p; done; true",
            self.servers[i].entry()
        );
        let out = self.ssh(i, &script);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Cuts every connection to server `i`: kills the per-connection sshd processes
    /// below the listener (not the listener, not the sessions' programs).
    pub fn kill_connections(&self, i: usize) -> usize {
        self.signal_connections(i, "KILL")
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`, `KILL`) to the per-connection sshd
    /// processes of server `i`; returns how many there were. `STOP` makes the
    /// connections silent without closing them, like a network partition.
    pub fn signal_connections(&self, i: usize, signal: &str) -> usize {
        let listener = self.servers[i].pid();
        let all = crate::procs::processes();
        let mut victims = Vec::new();
        let mut stack = vec![listener];
        while let Some(p) = stack.pop() {
            for child in all.iter().filter(|c| c.ppid == p && c.name == "sshd") {
                victims.push(child.pid);
                stack.push(child.pid);
            }
        }
        for v in &victims {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(v.to_string())
                .stderr(Stdio::null())
                .status();
        }
        victims.len()
    }

    /// The listener's log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.servers[i].log).unwrap_or_default()
    }
}

use crate::procs::descendants;

impl Drop for SshFixture {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let mut all = descendants(s.child.id());
            all.push(s.child.id());
            for pid in all {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = s.child.wait();
        }
    }
}
