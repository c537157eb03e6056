#!/usr/bin/env bash
# Kubernetes benchmark, against the test API server (tests/kube-apiserver) on a
# private dockerd: time until N pods have all reported `ready` through distarch,
# and the API requests made per pod (counted by the server: lower is better, and it
# must not grow with how long the pods run, since nothing polls). Prints a table.
#
# Usage: bench/kubernetes.sh [N]   (default 100; run as root; needs docker.io,
#        python3, curl and a build: `cargo build --workspace --bins`, or set
#        BIN_DIR to a release build dir)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/private-dockerd.sh
N=${1:-100}
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}
DISTARCH=$BIN_DIR/distarch
WORKER=$BIN_DIR/distarch-example-worker
SERVER=$BIN_DIR/distarch-fake-apiserver
for b in "$DISTARCH" "$WORKER" "$SERVER"; do
    [ -x "$b" ] || { echo "bench/kubernetes.sh: $b is missing: build first (cargo build --workspace --bins)" >&2; exit 1; }
done

DIR=$(mktemp -d /tmp/kbench.XXXX)
HOST="unix://$DIR/docker.sock"
IMAGE=distarch-bench/worker:1
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 400); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    dockerd_stop
    rm -rf "$DIR" 2>/dev/null || true
}
trap cleanup EXIT

counters() { curl -s "$URL/debug/requests"; }
total() { python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }

# 1. A private engine, as the tests run it.
dockerd_start

# 2. The image: the SDK example worker with its libraries, no registry.
import_worker_image "$WORKER" "$IMAGE"

# 3. The test API server and a kubeconfig for it.
"$SERVER" --docker "$HOST" --listen 127.0.0.1:0 --id kbench >"$DIR/server.out" 2>"$DIR/server.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do grep -q '^listening on ' "$DIR/server.out" 2>/dev/null && break; sleep 0.05; done
URL=$(sed -n 's/^listening on //p' "$DIR/server.out")
cat >"$DIR/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $URL
contexts:
- name: fake
  context: {cluster: fake, user: fake, namespace: default}
current-context: fake
users:
- name: fake
  user: {}
YAML

# 4. distarch: N pods, until every one has sent `ready`; then 5 s more of running
#    (to show that the request count does not grow), then Ctrl-C.
cat >"$DIR/bench.toml" <<TOML
[launcher]
stop_grace = "10s"
[groups.bench]
command = ["/worker"]
params = { tick_seconds = 1.0 }
placements.k8s = { transport = "kubernetes", image = "$IMAGE", kubeconfig = "$DIR/kubeconfig", instances = $N }
TOML
start=$(now)
"$DISTARCH" launch -c "$DIR/bench.toml" --run-id kbench >"$DIR/distarch.log" 2>&1 &
MASTER=$!
while [ "$(grep -c 'distarch: ready' "$DIR/distarch.log" || true)" -lt "$N" ]; do
    kill -0 "$MASTER" 2>/dev/null || { echo "distarch ended early:" >&2; tail -20 "$DIR/distarch.log" >&2; exit 1; }
    sleep 0.01
done
t_ready=$(since "$start")
at_ready=$(counters | total)
sleep 5
after_running=$(counters | total)
stop_start=$(now)
kill -INT "$MASTER"
wait "$MASTER" || true
t_stop=$(since "$stop_start")
final=$(counters)
at_end=$(echo "$final" | total)
left=$(curl -s "$URL/api/v1/namespaces/default/pods?labelSelector=distarch.run%3Dkbench" \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')

per() { awk -v a="$1" -v n="$N" 'BEGIN { printf "%.2f", a / n }'; }
printf '\n%-62s %10s\n' "kubernetes benchmark, $N pods, test API server + dockerd" "value"
printf '%-62s %10.2f\n' "seconds: launch until all $N pods sent ready" "$t_ready"
printf '%-62s %10s\n' "API requests until all ready" "$at_ready"
printf '%-62s %10s\n' "API requests per pod until all ready" "$(per "$at_ready")"
printf '%-62s %10s\n' "API requests during 5 s more of running (polling would show)" "$((after_running - at_ready))"
printf '%-62s %10.2f\n' "seconds: Ctrl-C until all pods stopped and deleted" "$t_stop"
printf '%-62s %10s\n' "API requests per pod for the whole run (start to end)" "$(per "$at_end")"
printf '%-62s %10s\n' "pods of the run left after it" "$left"
echo
echo "requests by verb and resource (whole run):"
echo "$final" | python3 -c 'import json,sys
for k, v in sorted(json.load(sys.stdin)["by"].items()):
    print(f"  {k:<40} {v:>8}")'
