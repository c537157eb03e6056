#!/usr/bin/env bash
# SDK benchmark: per SDK (Rust, Python, PHP), the log frames per second a worker
# emits through the master (frames with two fields, master output to /dev/null),
# next to the Rust SDK in the same run; and each SDK's import + start time (start
# the process, import the SDK, read the environment, send hello and ready, end),
# next to the bare interpreter's start. Medians of RUNS runs.
# Usage: bench/sdk.sh [FRAMES] [RUNS]   (defaults 200000 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${1:-200000}
runs=${2:-3}
# Only the local transport is used: no need to build the others.
cargo build --release -q -p distarch-cli --bins --no-default-features
cargo build --release -q -p distarch-worker --example bench_worker
target_dir=${CARGO_TARGET_DIR:-target}
distarch=$target_dir/release/distarch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -A cmd=(
    [rust]="\"$target_dir/release/examples/bench_worker\""
    [python]="\"/usr/bin/python3\", \"bench/sdk/worker.py\""
    [php]="\"php\", \"bench/sdk/worker.php\""
)
declare -A bare=(
    [rust]="/bin/true"
    [python]="/usr/bin/python3 -c pass"
    [php]="php -r ;"
)

now() { date +%s.%N; }

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# seconds for one `distarch launch` of one instance sending $2 frames
launch() {
    local sdk=$1 n=$2
    cat > "$tmp/$sdk.toml" <<TOML
[launcher]
log_level = "info"
[groups.$sdk]
command = [${cmd[$sdk]}]
params = { frames = $n }
timeout = "0s"
instances = 1
TOML
    local t0 t1
    t0=$(now)
    "$distarch" launch -c "$tmp/$sdk.toml" > "$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }
    t1=$(now)
    local got
    got=$(grep -c ' INFO frame ' "$tmp/out" || true)
    [ "$got" -eq "$n" ] || { echo "bench/sdk.sh: $sdk: $got frames arrived, not $n" >&2; exit 1; }
    echo "$t1 - $t0" | bc -l
}

# seconds to run a command once with the DISTARCH_* variables of an instance
started() {
    local t0 t1
    t0=$(now)
    env DISTARCH_PROTOCOL=1 DISTARCH_RUN_ID=bench DISTARCH_ID=1 DISTARCH_GROUP=g DISTARCH_GROUP_ID=1 \
        DISTARCH_GROUP_COUNT=1 DISTARCH_HOST=localhost DISTARCH_RESTART=0 DISTARCH_PARAMS='{"frames":0}' \
        "$@" < /dev/null > /dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

command -v bc >/dev/null || { echo "bench/sdk.sh: needs bc (apt-get install bc)" >&2; exit 1; }
printf '%-8s %14s %10s %14s %10s %16s %16s\n' sdk "frames" "seconds" "frames/s" "vs rust" "import+start" "bare interpreter"
rust_rate=
for sdk in rust python php; do
    secs=$(for _ in $(seq "$runs"); do launch "$sdk" "$frames"; done | median)
    rate=$(echo "$frames / $secs" | bc -l)
    [ -n "$rust_rate" ] || rust_rate=$rate
    # shellcheck disable=SC2086 # the commands are split on purpose
    start=$(for _ in $(seq 10); do eval "started ${cmd[$sdk]//,/}"; done | median)
    # shellcheck disable=SC2086
    base=$(for _ in $(seq 10); do started ${bare[$sdk]}; done | median)
    printf '%-8s %14d %10.3f %14.0f %9.2fx %14.1f ms %14.1f ms\n' "$sdk" "$frames" "$secs" "$rate" \
        "$(echo "$rate / $rust_rate" | bc -l)" "$(echo "$start * 1000" | bc -l)" "$(echo "$base * 1000" | bc -l)"
done
