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
# cli: shells that check the completion scripts' syntax, groff for the man page.
command -v zsh >/dev/null || packages+=(zsh)
command -v fish >/dev/null || packages+=(fish)
command -v groff >/dev/null || packages+=(groff-base)
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

cargo build --workspace --bins
cargo test --workspace "$@"
# cli: a bounded fuzz run (40 s over the four targets; longer, coverage-guided runs:
# scripts/fuzz.sh). It ends with "fuzz: N passed, N failed".
target/debug/distarch-fuzz --seconds 40
