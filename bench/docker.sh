#!/usr/bin/env bash
# Docker benchmark: time until 50 containers have all reported `ready` through
# distarch, against the same 50 containers started by a loop of `docker run -d`,
# on the same private engine (started here, removed at the end). Prints a table.
#
# Usage: bench/docker.sh [N]   (default 50; run as root; needs docker.io and a build:
#        `cargo build --workspace --bins`, or set BIN_DIR to a release build dir)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/private-dockerd.sh
N=${1:-50}
NETWORK=${NETWORK:-none}   # network mode of every container, both ways
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}
DISTARCH=$BIN_DIR/distarch
WORKER=$BIN_DIR/distarch-example-worker
for b in "$DISTARCH" "$WORKER"; do
    [ -x "$b" ] || { echo "bench/docker.sh: $b is missing: build first (cargo build --workspace --bins)" >&2; exit 1; }
done

DIR=$(mktemp -d /tmp/dbench.XXXX)
HOST="unix://$DIR/docker.sock"
IMAGE=distarch-bench/worker:1
cleanup() {
    dockerd_stop
    rm -rf "$DIR" 2>/dev/null || true
}
trap cleanup EXIT


# 1. A private engine, as the tests run it.
dockerd_start

# 2. The image: the SDK example worker with its libraries, no registry.
import_worker_image "$WORKER" "$IMAGE"

# Warm-up: one container each way, so neither side pays the first-start costs.
docker -H "$HOST" run -d -i --network "$NETWORK" --name warm "$IMAGE" >/dev/null
docker -H "$HOST" rm -f warm >/dev/null

# 3. distarch: N containers, until every one has sent `ready`.
cat >"$DIR/bench.toml" <<TOML
[launcher]
stop_grace = "10s"
[groups.bench]
command = ["/worker"]
params = { tick_seconds = 5.0 }
placements.box = { transport = "docker", image = "$IMAGE", host = "$HOST", network = "$NETWORK", pull = "never", entrypoint = [], init = false, instances = $N }
TOML
: >"$DIR/distarch.log"
ready() { grep -c 'distarch: ready' "$DIR/distarch.log" || true; }
start=$(now)
"$DISTARCH" launch -c "$DIR/bench.toml" --run-id bench >>"$DIR/distarch.log" 2>&1 &
MASTER=$!
while [ "$(ready)" -lt "$N" ]; do
    kill -0 "$MASTER" 2>/dev/null || { echo "distarch ended early:" >&2; tail -20 "$DIR/distarch.log" >&2; exit 1; }
    sleep 0.01
done
t_distarch=$(since "$start")
stop_start=$(now)
kill -INT "$MASTER"
wait "$MASTER" || true
t_distarch_stop=$(since "$stop_start")
left=$(docker -H "$HOST" ps -aq --filter label=distarch.run=bench | wc -l)

# 4. The CLI loop: the same N containers, one `docker run -d` after another.
start=$(now)
for i in $(seq 1 "$N"); do
    docker -H "$HOST" run -d -i --network "$NETWORK" --name "loop-$i" \
        -e DISTARCH_ID="$i" -e DISTARCH_GROUP=bench "$IMAGE" >/dev/null
done
t_loop=$(since "$start")
stop_start=$(now)
docker -H "$HOST" rm -f $(docker -H "$HOST" ps -aq --filter name=loop-) >/dev/null
t_loop_rm=$(since "$stop_start")

# 5. For reference, the engine's own limit: the same N `docker run -d` all at once.
start=$(now)
seq 1 "$N" | xargs -P "$N" -I{} docker -H "$HOST" run -d -i --network "$NETWORK" \
    --name "par-{}" "$IMAGE" >/dev/null
t_par=$(since "$start")
docker -H "$HOST" rm -f $(docker -H "$HOST" ps -aq --filter name=par-) >/dev/null

# 6. Orphans: N plain programs (busybox `sleep 300`, which never reads stdin) under
#    a master that is SIGKILLed. Baseline: the same containers started by
#    `docker run -i` whose client is SIGKILLed (what docker itself does).
BB=distarch-bench/busybox:1
mkdir -p "$DIR/bb/bin"
cp /bin/busybox "$DIR/bb/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$DIR/bb/bin/$a"; done
tar -C "$DIR/bb" -c . | docker -H "$HOST" import - "$BB" >/dev/null
running() { docker -H "$HOST" ps -q --filter "label=$1" | wc -l; }
cat >"$DIR/orphans.toml" <<TOML
[groups.plain]
command = ["sleep", "300"]
placements.box = { transport = "docker", image = "$BB", host = "$HOST", network = "$NETWORK", pull = "never", instances = $N }
TOML
: >"$DIR/orphans.log"
"$DISTARCH" launch -c "$DIR/orphans.toml" --run-id orphans >>"$DIR/orphans.log" 2>&1 &
MASTER=$!
while [ "$(grep -c 'distarch: started' "$DIR/orphans.log" || true)" -lt "$N" ]; do
    kill -0 "$MASTER" 2>/dev/null || { echo "distarch ended early:" >&2; tail -20 "$DIR/orphans.log" >&2; exit 1; }
    sleep 0.05
done
kill -KILL "$MASTER"
wait "$MASTER" 2>/dev/null || true
start=$(now)
t_orphans=
while [ "$(since "$start" | cut -d. -f1)" -lt 10 ]; do
    if [ "$(running distarch.run=orphans)" -eq 0 ]; then t_orphans=$(since "$start"); break; fi
    sleep 0.1
done
left_orphans=$(running distarch.run=orphans)
mkfifo "$DIR/stdin"
exec 7<>"$DIR/stdin"   # an stdin that never ends, like the master's attach
clients=
for i in $(seq 1 "$N"); do
    docker -H "$HOST" run -i --network "$NETWORK" --label bench=raw --name "raw-$i" "$BB" \
        sleep 300 <&7 >/dev/null 2>&1 &
    clients="$clients $!"
done
while [ "$(running bench=raw)" -lt "$N" ]; do sleep 0.1; done
for p in $clients; do kill -KILL "$p" 2>/dev/null || true; done
exec 7>&-
sleep 10
left_raw=$(running bench=raw)
docker -H "$HOST" rm -f $(docker -H "$HOST" ps -aq) >/dev/null

speedup=$(awk -v a="$t_loop" -v b="$t_distarch" 'BEGIN { printf "%.1f", a / b }')
printf '\n%-58s %10s\n' "docker benchmark, $N containers, one engine" "seconds"
printf '%-58s %10.2f\n' "distarch: launch until all $N sent ready" "$t_distarch"
printf '%-58s %10.2f\n' "docker run -d loop: all $N started (no readiness)" "$t_loop"
printf '%-58s %9sx\n' "speed-up (loop / distarch)" "$speedup"
printf '%-58s %10.2f\n' "(engine limit: $N docker run -d at once, no readiness)" "$t_par"
printf '%-58s %10.2f\n' "distarch: Ctrl-C until all stopped and removed" "$t_distarch_stop"
printf '%-58s %10.2f\n' "docker rm -f of the loop's $N containers" "$t_loop_rm"
printf '%-58s %10s\n' "containers of the distarch run left after it" "$left"
printf '%-58s %10s\n' "master SIGKILLed: distarch's $N plain containers all ended" "${t_orphans:-no}"
printf '%-58s %10s\n' "  ... still running 10 s after (must be 0)" "$left_orphans"
printf '%-58s %10s\n' "  baseline: docker run -i, client SIGKILLed, 10 s after" "$left_raw"
