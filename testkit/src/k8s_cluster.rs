//! A real single-node Kubernetes cluster for the end-to-end tests, built from the Go
//! modules of the pinned Kubernetes version (tests/k8s-cluster, one binary with the
//! components as subcommands; scripts/test.sh builds it into
//! `target/k8s-cluster/k8s-cluster`).
//!
//! `K8sCluster::start()` writes a private PKI and kubeconfigs, then runs etcd, the
//! API server (TLS, client certificates, `--authorization-mode=Node,RBAC`), the
//! controller manager (garbage collector, service accounts, ...), the scheduler, a
//! private containerd (CRI plugin, Debian's CNI plugins on a bridge without an
//! address) and a real kubelet, each in the cluster's temp dir, and waits until the
//! node is Ready and the `default` service account exists. Images come from the
//! harness dockerd (`docker save`, then `ctr import`): no registry is involved.
//! Dropping it stops everything, kills what is left in the pods' cgroups and removes
//! its mounts and cgroups. `K8sCluster::shared()` hands one cluster to the tests of a
//! binary that run at the same time.

use crate::daemon::{self, free_port, kill, stop_group};
use crate::dockerd::Dockerd;
use crate::image::ImageBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long the whole cluster may take to come up (node Ready included).
const START_LIMIT: Duration = Duration::from_secs(180);
/// How long one component may take to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(20);
/// Name of the node.
pub const NODE: &str = "distarch-node";
/// The image containerd uses for pod sandboxes (built here, never pulled).
const PAUSE_IMAGE: &str = "distarch-test/pause:1";
/// The v1 cgroup hierarchies the kubelet uses.
const CGROUP_CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
];

/// The built component binary: `DISTARCH_K8S_CLUSTER_BIN`, else
/// `target/k8s-cluster/k8s-cluster`.
pub fn cluster_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DISTARCH_K8S_CLUSTER_BIN") {
        return PathBuf::from(p);
    }
    crate::repo_root().join("target/k8s-cluster/k8s-cluster")
}

/// A running cluster.
pub struct K8sCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    api_port: u16,
    etcd_port: u16,
    cgroup: String,
    /// The node's address, on an interface of its own: the kubelet refuses a
    /// loopback node IP, and the API server reaches it there.
    node_ip: String,
    procs: Mutex<BTreeMap<&'static str, Child>>,
}

impl K8sCluster {
    /// Starts a cluster; panics with the failing component's log if it does not come up.
    pub fn start() -> K8sCluster {
        let bin = cluster_bin();
        assert!(
            bin.exists(),
            "{} is missing: build it with tests/k8s-cluster/build.sh (scripts/test.sh does)",
            bin.display()
        );
        // Unix socket paths are limited to ~107 bytes: keep the dir short.
        let dir = tempfile::Builder::new()
            .prefix("k8s")
            .tempdir_in("/tmp")
            .expect("temp dir for the cluster");
        let tag = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("k8s")
            .to_string();
        let link = link_name(&tag);
        let node_ip = node_address(&tag);
        let c = K8sCluster {
            node_ip: node_ip.clone(),
            bin,
            api_port: free_port(),
            etcd_port: free_port(),
            cgroup: format!("distarch-{tag}"),
            procs: Mutex::new(BTreeMap::new()),
            dir,
        };
        let begun = Instant::now();
        for args in [
            // (no dummy interfaces in every kernel; a veth pair always works)
            vec![
                "link",
                "add",
                &link,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{link}p"),
            ],
            vec!["addr", "add", &format!("{node_ip}/32"), "dev", &link],
            vec!["link", "set", &link, "up"],
            vec!["link", "set", &format!("{link}p"), "up"],
        ] {
            let ok = Command::new("ip")
                .args(&args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?} failed (the node's address)");
        }
        c.run_ok(&[
            "pki",
            "--dir",
            &c.path("pki"),
            "--server",
            &c.url(),
            "--node",
            NODE,
            "--node-ip",
            &c.node_ip,
        ]);
        c.start_etcd();
        c.start_apiserver();
        c.wait_api_ready();
        c.start_controller_manager();
        c.start_scheduler();
        c.start_containerd();
        c.start_kubelet();
        c.wait_for("the node to be Ready", || {
            c.kubectl(&[
                "wait",
                "--for=condition=Ready",
                &format!("node/{NODE}"),
                "--timeout=5s",
            ])
            .status
            .success()
        });
        // The node lifecycle controller lifts the not-ready taint once it sees Ready.
        c.wait_for("the node's taints to be lifted", || {
            let out = c.kubectl(&["get", "node", NODE, "-o", "jsonpath={.spec.taints}"]);
            out.status.success() && out.stdout.trim_ascii().is_empty()
        });
        c.wait_for("the default service account", || {
            c.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                .status
                .success()
        });
        eprintln!(
            "k8s cluster up in {:.1} s (API server {})",
            begun.elapsed().as_secs_f64(),
            c.url()
        );
        c
    }

    /// One cluster shared by the tests of this binary that run at the same time;
    /// stopped when the last `Arc` is dropped.
    pub fn shared() -> Arc<K8sCluster> {
        static SHARED: Mutex<Weak<K8sCluster>> = Mutex::new(Weak::new());
        daemon::shared(&SHARED, K8sCluster::start)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The cluster's temp dir (component logs are `<name>.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kubeconfig of the cluster admin (group `system:masters`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("pki/admin.kubeconfig")
    }

    /// Kubeconfig of the user `distarch`, who has no permission until a test binds
    /// a role to it.
    pub fn user_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("pki/distarch.kubeconfig")
    }

    /// Runs the pinned kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.admin_kubeconfig(), args)
    }

    /// Runs the pinned kubectl with `kubeconfig`.
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl as the admin, panics unless it succeeds, returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies a manifest (YAML text) as the admin.
    pub fn apply(&self, manifest: &str) {
        let path = self
            .dir
            .path()
            .join(format!("{}.yaml", crate::unique_token("manifest")));
        std::fs::write(&path, manifest).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", &path.display().to_string()]);
    }

    /// Makes the image `tag` of `dockerd` available to the node (no pull needed).
    pub fn load_image(&self, dockerd: &Dockerd, tag: &str) {
        let tar = self
            .dir
            .path()
            .join(format!("{}.tar", crate::unique_token("image")));
        dockerd.docker_ok(&["save", "-o", &tar.display().to_string(), tag]);
        let out = self.ctr(&["images", "import", &tar.display().to_string()]);
        assert!(
            out.status.success(),
            "ctr import of {tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&tar);
    }

    /// The API server's own metrics (Prometheus text).
    pub fn metrics(&self) -> String {
        self.kubectl_ok(&["get", "--raw", "/metrics"])
    }

    /// Sum of `apiserver_request_total` samples whose labels contain every one of
    /// `labels` (e.g. `verb="POST"`, `resource="pods"`).
    pub fn request_count(&self, labels: &[&str]) -> u64 {
        let text = self.metrics();
        text.lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Stops the API server (SIGTERM) and starts it again on the same port, with
    /// the same etcd; returns once it answers `/readyz` again.
    pub fn restart_apiserver(&self) {
        self.stop("kube-apiserver");
        self.start_apiserver();
        self.wait_api_ready();
    }

    /// Stops the API server and runs `between` while it is down, then starts it again.
    pub fn restart_apiserver_with(&self, between: impl FnOnce()) {
        self.stop("kube-apiserver");
        between();
        self.start_apiserver();
        self.wait_api_ready();
    }

    /// Compacts etcd's history up to its current revision: every watch resumed from
    /// an older resourceVersion is then answered `410 Gone`.
    pub fn compact_etcd(&self) {
        self.run_ok(&["etcd-compact", "--endpoint", &self.etcd_url()]);
    }

    fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    fn run_ok(&self, args: &[&str]) {
        let out = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run k8s-cluster");
        assert!(
            out.status.success(),
            "k8s-cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&self, name: &'static str, program: &Path, args: &[String]) {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = daemon::spawn_logged(program, args, &log)
            .unwrap_or_else(|e| panic!("start {name} ({}): {e}", program.display()));
        self.procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, child);
    }

    fn component(&self, name: &'static str, args: &[String]) {
        let mut all = vec![name.to_string()];
        all.extend_from_slice(args);
        let bin = self.bin.clone();
        self.spawn(name, &bin, &all);
    }

    /// The last lines of a component's log.
    pub fn log_tail(&self, name: &str, n: usize) -> String {
        daemon::log_tail(&self.dir.path().join(format!("{name}.log")), n)
    }

    fn check_alive(&self) {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        for (name, child) in procs.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let name = name.to_string();
                drop(procs);
                panic!(
                    "{name} exited ({status}) while the cluster started; its log:\n{}",
                    self.log_tail(&name, 40)
                );
            }
        }
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let ok = crate::wait_until(START_LIMIT, || {
            self.check_alive();
            cond()
        });
        if !ok {
            let logs: Vec<String> = ["kube-apiserver", "kubelet", "containerd"]
                .iter()
                .map(|n| format!("--- {n}:\n{}", self.log_tail(n, 25)))
                .collect();
            panic!(
                "timed out after {START_LIMIT:?} waiting for {what}\n{}",
                logs.join("\n")
            );
        }
    }

    fn stop(&self, name: &str) {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = procs.remove(name) {
            stop_group(&mut child, STOP_LIMIT);
        }
    }

    fn start_etcd(&self) {
        self.component(
            "etcd",
            &[
                "--data-dir".into(),
                self.path("etcd"),
                "--client-url".into(),
                self.etcd_url(),
                "--peer-url".into(),
                format!("http://127.0.0.1:{}", free_port()),
            ],
        );
    }

    /// The API server's audit log: one JSON line per stage of each request made by
    /// the user `distarch` (nobody else's are recorded).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Requests the user `distarch` made so far, as the API server's audit log has
    /// them: `(verb, resource[/subresource])` → count (each request once).
    pub fn user_requests(&self) -> BTreeMap<(String, String), u64> {
        let text = std::fs::read_to_string(self.audit_log()).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut by = BTreeMap::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let id = v["auditID"].as_str().unwrap_or("").to_string();
            if !seen.insert(id) {
                continue;
            }
            let o = &v["objectRef"];
            let mut resource = o["resource"].as_str().unwrap_or("").to_string();
            if let Some(sub) = o["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            let verb = v["verb"].as_str().unwrap_or("").to_string();
            *by.entry((verb, resource)).or_insert(0) += 1;
        }
        by
    }

    fn start_apiserver(&self) {
        let policy = self.dir.path().join("audit-policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  users: [distarch]\n- level: None\n",
        )
        .expect("audit policy");
        let pki = |f: &str| self.path(&format!("pki/{f}"));
        let args: Vec<String> = [
            format!("--etcd-servers={}", self.etcd_url()),
            format!("--secure-port={}", self.api_port),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", pki("apiserver.crt")),
            format!("--tls-private-key-file={}", pki("apiserver.key")),
            format!("--client-ca-file={}", pki("ca.crt")),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki("sa.pub")),
            format!("--service-account-signing-key-file={}", pki("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!(
                "--kubelet-client-certificate={}",
                pki("apiserver-kubelet-client.crt")
            ),
            format!(
                "--kubelet-client-key={}",
                pki("apiserver-kubelet-client.key")
            ),
            format!("--kubelet-certificate-authority={}", pki("ca.crt")),
            "--kubelet-preferred-address-types=InternalIP".into(),
            format!("--cert-dir={}", self.path("apiserver-certs")),
            format!("--audit-policy-file={}", policy.display()),
            format!("--audit-log-path={}", self.audit_log().display()),
            "--audit-log-format=json".into(),
            "--audit-log-mode=blocking".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ]
        .into();
        self.component("kube-apiserver", &args);
    }

    fn wait_api_ready(&self) {
        self.wait_for("the API server's /readyz", || {
            self.kubectl(&["get", "--raw", "/readyz"]).status.success()
        });
    }

    fn start_controller_manager(&self) {
        let kc = self.path("pki/controller-manager.kubeconfig");
        let args: Vec<String> = [
            format!("--kubeconfig={kc}"),
            format!("--authentication-kubeconfig={kc}"),
            format!("--authorization-kubeconfig={kc}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
            format!("--cert-dir={}", self.path("cm-certs")),
            format!(
                "--service-account-private-key-file={}",
                self.path("pki/sa.key")
            ),
            format!("--root-ca-file={}", self.path("pki/ca.crt")),
            // Each controller with its own service account and bootstrap role (as
            // kubeadm runs it): the manager's own identity may do little.
            "--use-service-account-credentials=true".into(),
            "--leader-elect=false".into(),
            "--v=1".into(),
        ]
        .into();
        self.component("kube-controller-manager", &args);
    }

    fn start_scheduler(&self) {
        let kc = self.path("pki/scheduler.kubeconfig");
        let args: Vec<String> = [
            format!("--kubeconfig={kc}"),
            format!("--authentication-kubeconfig={kc}"),
            format!("--authorization-kubeconfig={kc}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
            format!("--cert-dir={}", self.path("sched-certs")),
            "--leader-elect=false".into(),
            "--v=1".into(),
        ]
        .into();
        self.component("kube-scheduler", &args);
    }

    fn containerd_socket(&self) -> String {
        self.path("containerd.sock")
    }

    /// Runs Debian's `ctr` against the cluster's containerd, in the CRI namespace.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr (containerd is installed by scripts/test.sh)")
    }

    fn start_containerd(&self) {
        let cni = self.dir.path().join("cni");
        std::fs::create_dir_all(&cni).expect("cni dir");
        // A bridge without an address on the host: pods get an IP and loopback,
        // nothing is routed, and clusters running side by side do not collide.
        let bridge = bridge_name(self.cgroup.trim_start_matches("distarch-"));
        std::fs::write(
            cni.join("10-distarch.conflist"),
            format!(
                r#"{{"cniVersion": "0.4.0", "name": "distarch", "plugins": [{{"type": "bridge", "bridge": "{bridge}", "isGateway": false, "ipMasq": false, "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "10.244.0.0/16"}}]], "dataDir": "{}"}}}}]}}"#,
                self.path("cni-ipam")
            ),
        )
        .expect("cni config");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/{PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  # The machine lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj below the
  # current value (-998 for sandboxes), so keep scores at or above it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"#,
            root = self.path("containerd/root"),
            state = self.path("containerd/state"),
            sock = self.containerd_socket(),
            opt = self.path("containerd/opt"),
            cni = cni.display(),
        );
        let path = self.dir.path().join("containerd.toml");
        std::fs::write(&path, config).expect("containerd config");
        self.spawn(
            "containerd",
            Path::new("containerd"),
            &["--config".into(), path.display().to_string()],
        );
        self.wait_for("containerd", || self.ctr(&["version"]).status.success());
        // The sandbox image, from busybox: it only has to sleep.
        let d = Dockerd::shared();
        if !d
            .docker(&["image", "inspect", PAUSE_IMAGE])
            .status
            .success()
        {
            ImageBuilder::new(PAUSE_IMAGE)
                .busybox()
                .entrypoint(&["/bin/sleep", "2147483647"])
                .build(&d);
        }
        self.load_image(&d, PAUSE_IMAGE);
    }

    fn start_kubelet(&self) {
        for ctl in CGROUP_CONTROLLERS {
            let dir = format!("/sys/fs/cgroup/{ctl}/{}", self.cgroup);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create cgroup {dir}: {e}"));
            if *ctl == "cpuset" {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(format!("/sys/fs/cgroup/cpuset/{f}"))
                        .unwrap_or_default();
                    let _ = std::fs::write(format!("{dir}/{f}"), v.trim());
                }
            }
        }
        let pki = |f: &str| self.path(&format!("pki/{f}"));
        let config = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {ip}
port: {port}
readOnlyPort: 0
healthzPort: 0
tlsCertFile: {crt}
tlsPrivateKeyFile: {key}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup}
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{sock}
podLogsDir: {logs}
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
makeIPTablesUtilChains: false
resolvConf: /etc/resolv.conf
maxPods: 250
kubeAPIQPS: 100
kubeAPIBurst: 200
"#,
            ip = self.node_ip,
            port = free_port(),
            crt = pki("kubelet.crt"),
            key = pki("kubelet.key"),
            ca = pki("ca.crt"),
            cgroup = self.cgroup,
            sock = self.containerd_socket(),
            logs = self.path("pod-logs"),
        );
        let path = self.dir.path().join("kubelet.yaml");
        std::fs::write(&path, config).expect("kubelet config");
        self.component(
            "kubelet",
            &[
                format!("--config={}", path.display()),
                format!("--kubeconfig={}", pki("kubelet-client.kubeconfig")),
                format!("--root-dir={}", self.path("kubelet")),
                format!("--cert-dir={}", self.path("kubelet-certs")),
                format!("--hostname-override={NODE}"),
                format!("--node-ip={}", self.node_ip),
                "--v=1".into(),
            ],
        );
    }

    /// Pids of every process in the cluster's pod cgroups.
    fn pod_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let root = PathBuf::from(format!("/sys/fs/cgroup/pids/{}", self.cgroup));
        collect_procs(&root, &mut pids);
        pids
    }

    /// Pids of the containerd shims of this cluster (they run outside its group).
    fn shim_pids(&self) -> Vec<u32> {
        let sock = self.containerd_socket();
        crate::procs::processes()
            .into_iter()
            .filter(|p| {
                let cmd = p.cmdline();
                cmd.contains("containerd-shim") && cmd.contains(&sock)
            })
            .map(|p| p.pid)
            .collect()
    }
}

fn collect_procs(dir: &Path, pids: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), pids);
            }
        }
    }
}

/// Removes a cgroup directory tree, deepest first (v1: rmdir only).
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl Drop for K8sCluster {
    fn drop(&mut self) {
        // The kubelet first (nothing restarts containers any more), then whatever
        // runs in the pods' cgroups, the shims, and the rest.
        self.stop("kubelet");
        for _ in 0..3 {
            for pid in self.pod_pids() {
                kill(pid, "-KILL");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in self.shim_pids() {
            kill(pid, "-KILL");
        }
        for name in [
            "containerd",
            "kube-scheduler",
            "kube-controller-manager",
            "kube-apiserver",
            "etcd",
        ] {
            self.stop(name);
        }
        daemon::unmount_under(self.dir.path());
        for ctl in CGROUP_CONTROLLERS {
            remove_cgroup(Path::new(&format!("/sys/fs/cgroup/{ctl}/{}", self.cgroup)));
        }
        let tag = self.cgroup.trim_start_matches("distarch-");
        for link in [bridge_name(tag), link_name(tag)] {
            let _ = Command::new("ip")
                .args(["link", "delete", &link])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The CNI bridge of the cluster whose temp dir is named `tag` (≤ 15 characters).
fn bridge_name(tag: &str) -> String {
    format!("kb{}", &tag[tag.len().saturating_sub(8)..])
}

/// The interface (one end of a veth pair) holding the node's address.
fn link_name(tag: &str) -> String {
    format!("kn{}", &tag[tag.len().saturating_sub(8)..])
}

/// A node address in 10.254.0.0/16 derived from the temp dir's name.
fn node_address(tag: &str) -> String {
    let h = tag.bytes().fold(std::process::id(), |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    format!("10.254.{}.{}", (h >> 8) % 256, h % 254 + 1)
}

impl K8sCluster {
    /// A target for the Kubernetes end-to-end checks: namespace `namespace` (created
    /// here) where the user `distarch` has the Role of `rbac` (a manifest, e.g.
    /// docs/kubernetes-rbac.yaml), pods running `image` (loaded into the node
    /// beforehand with [`K8sCluster::load_image`]).
    pub fn target(
        self: &Arc<Self>,
        namespace: &str,
        rbac: &str,
        image: &str,
    ) -> crate::apiserver::KubeTarget {
        self.kubectl_ok(&["create", "namespace", namespace]);
        let path = self.dir.path().join(format!("rbac-{namespace}.yaml"));
        std::fs::write(&path, rbac).expect("write rbac manifest");
        self.kubectl_ok(&["apply", "-n", namespace, "-f", &path.display().to_string()]);
        // Pods are refused until the namespace's default service account exists.
        self.wait_for("the namespace's default service account", || {
            self.kubectl(&["get", "serviceaccount", "default", "-n", namespace])
                .status
                .success()
        });
        crate::apiserver::KubeTarget {
            kubeconfig: self.user_kubeconfig(),
            namespace: namespace.to_string(),
            image: image.to_string(),
            server: None,
            cluster: Some(self.clone()),
        }
    }
}
