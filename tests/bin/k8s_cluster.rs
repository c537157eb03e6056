//! `distarch-k8s-cluster`: runs the tests' real Kubernetes cluster (see
//! testkit/src/k8s_cluster.rs) for scripts such as bench/kubernetes.sh. It prints
//! `ADMIN_KUBECONFIG=PATH`, `USER_KUBECONFIG=PATH` (the user `distarch`, without
//! rights until a Role is bound), `KUBECTL=PATH` and `DOCKER_HOST=URL` (the engine
//! whose images the node can be given), then `ready`. Each stdin line `load TAG`
//! loads image TAG of that engine into the node and answers `loaded TAG`. At stdin
//! EOF the cluster is stopped and removed (close stdin: a signal would skip that).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fixture: a failure is a panic

use distarch_e2e::dockerd::Dockerd;
use distarch_e2e::k8s_cluster::{cluster_bin, K8sCluster};
use std::io::BufRead;
use std::io::Write;

fn main() {
    let d = Dockerd::shared();
    let c = K8sCluster::start();
    println!("ADMIN_KUBECONFIG={}", c.admin_kubeconfig().display());
    println!("USER_KUBECONFIG={}", c.user_kubeconfig().display());
    println!("KUBECTL={} kubectl", cluster_bin().display());
    println!("DOCKER_HOST={}", d.host());
    println!("ready");
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(tag) = line.trim().strip_prefix("load ") {
            c.load_image(&d, tag.trim());
            println!("loaded {}", tag.trim());
            let _ = std::io::stdout().flush();
        }
    }
    drop(c);
    drop(d);
}
