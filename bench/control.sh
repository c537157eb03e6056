#!/usr/bin/env bash
# Control-plane benchmark: `distarch ps` of 1000 instances next to reading /proc, and
# a flood with and without 20 clients hammering `ps` / `logs -f` (wall time, master
# peak RSS). Extra arguments go to the bench (--instances, --lines, --samples).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p distarch-cli -p distarch-e2e --bins
exec target/release/distarch-bench-control "$@"
