#!/usr/bin/env bash
# Local benchmark: distarch vs minimal floors, measured in the same run.
# Prints a table: start time of 1000 instances until all ended (against a std
# spawner and against a minimal posix_spawn + poll launcher), lines/s from 4
# flooding workers, peak RSS, the stop figure (SIGTERM to the master -> 100 plain
# workers that exit on SIGTERM all gone, against a launcher that forwards SIGTERM),
# and the master's peak RSS with 500 SDK workers running and with 1, with its RSS
# sampled then split into private memory and the binary's and libraries' pages.
# Extra arguments go to the bench (--instances, --workers, --lines, --runs,
# --stop-instances, --memory-instances).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p distarch-cli -p distarch-e2e --bins
exec target/release/distarch-bench-local "$@"
