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
# ssh partition test (tests/e2e/ssh.rs): packets dropped inside a test network namespace
command -v iptables >/dev/null || packages+=(iptables)
command -v python3 >/dev/null || packages+=(python3)
# transport plugins (tests/e2e/plugins.rs): the Python plugin starts instances through setpriv
command -v setpriv >/dev/null || packages+=(util-linux)
# cli: shells that check the completion scripts' syntax, groff for the man page.
command -v zsh >/dev/null || packages+=(zsh)
command -v fish >/dev/null || packages+=(fish)
command -v groff >/dev/null || packages+=(groff-base)
# observability (issue 9): `distarch top` and `launch --tui` are driven in tmux.
command -v tmux >/dev/null || packages+=(tmux)
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

# ---- sdk (issue 11): worker SDKs and the protocol conformance kit -------------------
# Python (pytest, mypy --strict, a wheel), PHP (PHPUnit, composer.json), and the
# conformance runner against every implementation: the Rust SDK, the Python SDK
# (blocking and asyncio), the PHP SDK, and the POSIX sh example under dash and busybox.
sdk_packages=()
/usr/bin/python3 -c 'import pytest' 2>/dev/null || sdk_packages+=(python3-pytest)
/usr/bin/python3 -c 'import setuptools, pip' 2>/dev/null || sdk_packages+=(python3-setuptools python3-pip)
command -v mypy >/dev/null || sdk_packages+=(mypy)
command -v php >/dev/null || sdk_packages+=(php-cli)
command -v phpunit >/dev/null || sdk_packages+=(phpunit)
[ -f /usr/share/php/Psr/Log/LoggerInterface.php ] || sdk_packages+=(php-psr-log)
command -v composer >/dev/null || sdk_packages+=(composer)
if [ ${#sdk_packages[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${sdk_packages[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${sdk_packages[@]}" >/dev/null
fi
cargo build -p distarch-conformance -p distarch-worker --example conformance_worker
(cd sdk/python && /usr/bin/python3 -m pytest -q -p no:cacheprovider && mypy --strict --cache-dir=/dev/null src tests)
(cd sdk/php && phpunit --do-not-cache-result && COMPOSER_ALLOW_SUPERUSER=1 composer validate --no-check-publish)
for worker in "target/debug/examples/conformance_worker" \
    "/usr/bin/python3 sdk/python/tests/conformance_worker.py" \
    "/usr/bin/python3 sdk/python/tests/conformance_worker.py --asyncio" \
    "php sdk/php/tests/conformance-worker.php" \
    "sh examples/shell-worker.sh" \
    "/bin/busybox sh examples/shell-worker.sh"; do
    echo "scripts/test.sh: conformance of: $worker" >&2
    # shellcheck disable=SC2086 # the command is split on purpose
    target/debug/distarch-conformance -- $worker
done
# ---- end sdk ------------------------------------------------------------------------

# --no-fail-fast: every test binary runs, and the run still fails when any test failed.
cargo test --workspace --no-fail-fast "$@"
cat target/k8s-cluster/last-suite.txt 2>/dev/null || true  # Kubernetes block: the real-cluster suite's time
# cli: a bounded fuzz run (40 s over the four targets; longer, coverage-guided runs:
# scripts/fuzz.sh). It ends with "fuzz: N passed, N failed".
target/debug/distarch-fuzz --seconds 40
