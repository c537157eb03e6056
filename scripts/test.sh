#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs the Debian packages the
# end-to-end tests need (real sshd and dockerd are started by the tests themselves,
# on loopback addresses and private sockets), builds every binary, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -x /usr/sbin/sshd ] || packages+=(openssh-server)
command -v ssh-keygen >/dev/null || packages+=(openssh-client)
command -v pgrep >/dev/null || packages+=(procps)
command -v dockerd >/dev/null || packages+=(docker.io)
[ -x /bin/busybox ] || packages+=(busybox-static)
command -v openssl >/dev/null || packages+=(openssl)
command -v ip >/dev/null || packages+=(iproute2)
command -v python3 >/dev/null || packages+=(python3)
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing packages: ${packages[*]} (run as root, or install them)" >&2
        exit 1
    fi
    echo "scripts/test.sh: installing ${packages[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
# sshd refuses to start without its privilege separation directory.
mkdir -p /run/sshd 2>/dev/null || true

# --- Kubernetes: a real control plane (issue 13) --------------------------------
# tests/e2e/kubernetes.rs starts a real cluster built from the pinned Kubernetes Go
# modules (tests/k8s-cluster): it needs Go (/usr/local/go), Debian's containerd
# (with runc) and CNI plugins. The components are built once into
# target/k8s-cluster (a stamp skips the build when nothing changed; Go's build
# cache keeps a rebuild incremental); the first build prints its time.
k8s_packages=()
command -v containerd >/dev/null || k8s_packages+=(containerd)
command -v runc >/dev/null || k8s_packages+=(runc)
[ -x /usr/lib/cni/bridge ] || k8s_packages+=(containernetworking-plugins)
if [ ${#k8s_packages[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${k8s_packages[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${k8s_packages[@]}" >/dev/null
fi
rm -f target/k8s-cluster/last-suite.txt
tests/k8s-cluster/build.sh
# --- end of the Kubernetes block ------------------------------------------------

cargo build --workspace --bins
cargo test --workspace "$@"
cat target/k8s-cluster/last-suite.txt 2>/dev/null || true  # Kubernetes block: the real-cluster suite's time
