#!/usr/bin/env bash
# SSH benchmark: time until 3 hosts x 30 instances have all reported `ready`, through
# the ssh transport (shared connections) and with one OpenSSH client process per
# instance at a fan-out of 32 (as pdsh / GNU parallel do), against real sshd servers
# on 127.0.0.1-3 started for the run. Prints one table with sshd as the machine is
# and one with an empty ~/.bashrc (see docs/transports/ssh.md, "Benchmark").
#
# Usage: bench/ssh.sh [ROUNDS]   (default 3; run as root; needs openssh-server)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /run/sshd
exec cargo run --release -q -p distarch-transport-ssh --example bench -- "${1:-3}"
