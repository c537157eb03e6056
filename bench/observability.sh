#!/usr/bin/env bash
# Observability benchmark (issue 9), figures printed, nothing asserted:
#  1. W2 flood: 4 workers x 250,000 lines, distarch with metrics on and a log file
#     next to distarch with neither, alternating in the same run (RUNS each); the
#     median wall times and their ratio (the goal: at most 10 % slower); beside
#     them the floor of a log file: the run without one while as many bytes are
#     written into another file, 1 MiB at a time spread over the run (the page
#     cache's own cost on the same cores).
#  2. `distarch top` on a run of 2000 instances: its CPU use while idle, in % of one
#     core, measured from /proc over WINDOW seconds (the goal: under 5 %).
# Needs tmux (top needs a terminal). Environment: RUNS (default 11: one run takes
# about 0.2 s, so the median needs many), LINES (250000),
# WORKERS (4), TOP_INSTANCES (2000), WINDOW (10); SKIP_TOP=1 leaves out part 2.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-11}
LINES=${LINES:-250000}
WORKERS=${WORKERS:-4}
TOP_INSTANCES=${TOP_INSTANCES:-2000}
WINDOW=${WINDOW:-10}
cargo build --release -q -p distarch-cli -p distarch-e2e --bins
bin=$PWD/target/release/distarch
worker=$PWD/target/release/distarch-test-worker
tmp=$(mktemp -d)
trap 'tmux -L distarch-bench kill-server 2>/dev/null || true; [ -n "${master:-}" ] && kill "$master" 2>/dev/null; rm -rf "$tmp"' EXIT
export XDG_RUNTIME_DIR=$tmp/rt
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

cat > "$tmp/plain.toml" <<TOML
[launcher]
log_level = "info"
[groups.flood]
command = ["$worker", "flood", "$LINES"]
instances = $WORKERS
timeout = "0s"
TOML
cat "$tmp/plain.toml" > "$tmp/observed.toml"
cat >> "$tmp/observed.toml" <<TOML
[launcher.log_file]
path = "$tmp/logs/run.log"
max_size = "200MB"
keep = 2
TOML

now() { date +%s.%N; }
time_run() { # config, extra args...
    local cfg=$1; shift
    local t0 t1
    rm -rf "$tmp/logs"
    t0=$(now)
    "$bin" launch -c "$cfg" "$@" > "$tmp/stdout.log" 2>/dev/null
    t1=$(now)
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

# The floor of a log file: the plain run while a pacer writes as many bytes as
# the log file holds into another file on the same file system, 1 MiB at a time
# spread evenly over the plain run's time (as the file thread writes them while
# the flood lasts), from memory (no formatting): what the page cache costs for
# those bytes alone, on the same cores. The pacer (python) is started and waits
# before the clock starts, so its start-up is not counted.
cat > "$tmp/pacer.py" <<'PY'
import os, sys, time
path, total, secs, ready, go = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
chunk = memoryview(bytes(1 << 20))
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
n = (total + len(chunk) - 1) // len(chunk)
with open(ready, "w") as f:
    f.write("ready\n")
with open(go) as f:
    f.readline()
start = time.monotonic()
for i in range(n):
    os.write(fd, chunk[: min(len(chunk), total - i * len(chunk))])
    wait = start + secs * (i + 1) / n - time.monotonic()
    if wait > 0:
        time.sleep(wait)
os.close(fd)
PY
floor_run() { # config
    local t0 t1 pacer
    rm -rf "$tmp/logs" "$tmp/copy.log" "$tmp/ready" "$tmp/go"
    mkfifo "$tmp/ready" "$tmp/go"
    python3 "$tmp/pacer.py" "$tmp/copy.log" "$log_bytes" "$pace" "$tmp/ready" "$tmp/go" &
    pacer=$!
    read -r _ < "$tmp/ready"
    t0=$(now)
    echo go > "$tmp/go"
    "$bin" launch -c "$1" > "$tmp/stdout.log" 2>/dev/null
    wait "$pacer"
    t1=$(now)
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

plain=()
observed=()
metrics=()
file=()
floor=()
for i in $(seq "$RUNS"); do
    plain+=("$(time_run "$tmp/plain.toml")")
    observed+=("$(time_run "$tmp/observed.toml" --metrics 127.0.0.1:0)")
    metrics+=("$(time_run "$tmp/plain.toml" --metrics 127.0.0.1:0)")
    file+=("$(time_run "$tmp/observed.toml")")
    if [ "$i" = 1 ]; then
        log_bytes=$(cat "$tmp"/logs/* | wc -c)
        pace=${plain[0]}
    fi
    floor+=("$(floor_run "$tmp/plain.toml")")
done
rm -f "$tmp/copy.log"
lines=$((LINES * WORKERS))
echo "log file: $log_bytes bytes per run"
python3 - "$lines" "${plain[*]}" "${observed[*]}" "${metrics[*]}" "${file[*]}" "${floor[*]}" <<'PY'
import statistics, sys
lines = int(sys.argv[1])
runs = [[float(x) for x in a.split()] for a in sys.argv[2:7]]
names = ["no metrics, no log file", "metrics on + log file (text)", "metrics only", "log file only",
         "floor: no log file, as many bytes paced"]
p = statistics.median(runs[0])
print(f"W2 flood, {lines} lines, stdout to a file (median of {len(runs[0])} interleaved runs)")
print(f"  {'setup':<40} {'seconds':>8} {'lines/s':>12} {'vs plain':>9}")
for name, r in zip(names, runs):
    m = statistics.median(r)
    print(f"  {name:<40} {m:>8.3f} {lines / m:>12.0f} {100 * (m / p - 1):>+8.1f}%")
print("  goal: metrics on + log file at most +10 %; the floor is what writing the log")
print("  file's bytes costs on the same cores, whatever writes them")
for name, r in zip(names, runs):
    print(f"  runs, {name}: {r}")
PY

# --- top on TOP_INSTANCES idle instances --------------------------------------
[ -n "${SKIP_TOP:-}" ] && exit 0
cat > "$tmp/many.toml" <<TOML
[launcher]
log_level = "info"
[groups.idle]
command = ["sleep", "3600"]
instances = $TOP_INSTANCES
TOML
"$bin" launch -c "$tmp/many.toml" --run-id benchtop --max-instances 100000 > /dev/null 2>&1 &
master=$!
for _ in $(seq 120); do
    running=$("$bin" ps benchtop -o json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin) if i["state"]=="running"))' 2>/dev/null || echo 0)
    [ "$running" -ge "$TOP_INSTANCES" ] && break
    sleep 1
done
tmux -L distarch-bench -f /dev/null new-session -d -s top -x 160 -y 50 \
    "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR $bin top benchtop"
sleep 3 # let it connect and settle
# The view itself (not the tmux server, whose command line holds the same text).
top_pid=$(pgrep -f "^$bin top benchtop" | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks "$top_pid"); t0=$(now)
sleep "$WINDOW"
c1=$(ticks "$top_pid"); t1=$(now)
python3 -c "
cpu = ($c1 - $c0) / $hz
wall = $t1 - $t0
print(f'top on $running running instances, idle for {wall:.1f} s: {100 * cpu / wall:.2f} % of one core (goal: under 5 %)')
"
tmux -L distarch-bench send-keys -t top q
kill -INT "$master"; wait "$master" 2>/dev/null || true
master=
