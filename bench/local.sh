#!/usr/bin/env bash
# Local benchmark: distarch vs a minimal spawner floor, measured in the same run.
# Prints a table: start time of 1000 instances, lines/s from 4 flooding workers,
# peak RSS of both. Extra arguments go to the bench (--instances, --workers, --lines).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p distarch-cli -p distarch-e2e --bins
exec target/release/distarch-bench-local "$@"
