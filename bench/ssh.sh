#!/usr/bin/env bash
# SSH benchmark (see docs/transports/ssh.md, "Benchmark"), against real sshd servers
# on 127.0.0.1-3 started for the run: start time of 3 hosts x 30 instances with an
# empty and with a slow remote ~/.bashrc, next to one OpenSSH client per instance
# (fan-out 32), with server CPU; stop time of the same 90 instances after SIGINT to
# `distarch launch`; throughput of 4 x 250,000 lines next to the local transport,
# read through the transport and through the master (`distarch launch`).
#
# Usage: bench/ssh.sh [ROUNDS]   (default 3; 0 skips the start figure; run as root;
# needs openssh-server)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p /run/sshd
# A release master (only the transports measured here), for the stop figure and
# the throughput through the master.
cargo build --release -q -p distarch-cli --no-default-features --features ssh
exec cargo run --release -q -p distarch-transport-ssh --example bench -- "${1:-3}" "$PWD/target/release/distarch"
