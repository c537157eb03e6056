#!/usr/bin/env bash
# Kubernetes benchmark. First against the test API server (tests/kube-apiserver) on
# a private dockerd: time until N pods have all reported `ready` through distarch,
# and the API requests made per pod (counted by the server: lower is better, and it
# must not grow with how long the pods run, since nothing polls). Then against the
# real control plane of the tests (tests/k8s-cluster: API server, scheduler,
# controller manager, kubelet + containerd): the same N pods through distarch, next
# to `kubectl apply` of the same N pods and `kubectl wait` until they are Ready, in
# the same run; requests per pod from the API server itself (its audit log of the
# client's user, and its /metrics for all clients). Prints tables.
#
# Usage: bench/kubernetes.sh [N]   (default 100; run as root; needs docker.io,
#        containerd, containernetworking-plugins, python3, curl, Go, and a build:
#        `cargo build --workspace --bins` and tests/k8s-cluster/build.sh, or set
#        BIN_DIR to a release build dir; SKIP_REAL=1 skips the real cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib/private-dockerd.sh
N=${1:-100}
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}
DISTARCH=$BIN_DIR/distarch
WORKER=$BIN_DIR/distarch-example-worker
SERVER=$BIN_DIR/distarch-fake-apiserver
CLUSTER=$BIN_DIR/distarch-k8s-cluster
for b in "$DISTARCH" "$WORKER" "$SERVER" "$CLUSTER"; do
    [ -x "$b" ] || { echo "bench/kubernetes.sh: $b is missing: build first (cargo build --workspace --bins)" >&2; exit 1; }
done

DIR=$(mktemp -d /tmp/kbench.XXXX)
HOST="unix://$DIR/docker.sock"
IMAGE=distarch-bench/worker:1
SERVER_PID=
CLUSTER_PID=
cleanup() {
    if [ -n "$CLUSTER_PID" ]; then
        # Closing its stdin stops the cluster and removes everything it made.
        exec {CL_IN}>&- 2>/dev/null || true
        for _ in $(seq 1 1200); do kill -0 "$CLUSTER_PID" 2>/dev/null || break; sleep 0.05; done
    fi
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

[ "${SKIP_REAL:-0}" = 1 ] && exit 0

# ---------------------------------------------------------------------------
# The real control plane.
# ---------------------------------------------------------------------------
tests/k8s-cluster/build.sh
mkfifo "$DIR/cl.in"
"$CLUSTER" <"$DIR/cl.in" >"$DIR/cluster.out" 2>"$DIR/cluster.log" &
CLUSTER_PID=$!
exec {CL_IN}>"$DIR/cl.in"
for _ in $(seq 1 4000); do grep -q '^ready$' "$DIR/cluster.out" 2>/dev/null && break
    kill -0 "$CLUSTER_PID" 2>/dev/null || { echo "the cluster did not start:" >&2; tail -30 "$DIR/cluster.log" >&2; exit 1; }
    sleep 0.05; done
eval "$(grep -E '^(ADMIN_KUBECONFIG|USER_KUBECONFIG|DOCKER_HOST)=' "$DIR/cluster.out" | sed 's/^/export /')"
KUBECTL_BIN=$(sed -n 's/^KUBECTL=\(.*\) kubectl$/\1/p' "$DIR/cluster.out")
kc() { "$KUBECTL_BIN" kubectl --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
ku() { "$KUBECTL_BIN" kubectl --kubeconfig "$USER_KUBECONFIG" "$@"; }
# The same worker image, built on the cluster's engine and loaded into the node.
HOST_SAVE=$HOST; HOST=$DOCKER_HOST; rm -rf "$DIR/rootfs"; import_worker_image "$WORKER" "$IMAGE"; HOST=$HOST_SAVE
echo "load $IMAGE" >&$CL_IN
for _ in $(seq 1 1200); do grep -q "^loaded $IMAGE" "$DIR/cluster.out" && break; sleep 0.05; done
AUDIT=$(dirname "$(dirname "$ADMIN_KUBECONFIG")")/audit.log
for ns in bench-distarch bench-kubectl; do
    kc create namespace $ns >/dev/null
    kc apply -n $ns -f docs/kubernetes-rbac.yaml >/dev/null
    for _ in $(seq 1 600); do kc get serviceaccount default -n $ns >/dev/null 2>&1 && break; sleep 0.1; done
done
# Requests of the user distarch in the audit log (each request once), and the sum
# of apiserver_request_total over every client.
user_requests() { python3 -c '
import json, sys
seen = set()
for line in open(sys.argv[1]):
    try: seen.add(json.loads(line)["auditID"])
    except Exception: pass
print(len(seen))' "$AUDIT"; }
all_requests() { kc get --raw /metrics | awk '/^apiserver_request_total\{/ { s += $NF } END { printf "%d", s }'; }
wait_gone() { for _ in $(seq 1 2400); do [ "$(ku get pods -n "$1" --no-headers 2>/dev/null | wc -l)" = 0 ] && return; sleep 0.25; done; }

# distarch, as the user distarch holding docs/kubernetes-rbac.yaml.
cat >"$DIR/real.toml" <<TOML
[launcher]
stop_grace = "10s"
[groups.bench]
command = ["/worker"]
params = { tick_seconds = 1.0 }
placements.k8s = { transport = "kubernetes", image = "$IMAGE", kubeconfig = "$USER_KUBECONFIG", namespace = "bench-distarch", instances = $N }
TOML
u0=$(user_requests); a0=$(all_requests)
start=$(now)
"$DISTARCH" launch -c "$DIR/real.toml" --run-id kreal >"$DIR/real.log" 2>&1 &
MASTER=$!
while [ "$(grep -c 'distarch: ready' "$DIR/real.log" || true)" -lt "$N" ]; do
    kill -0 "$MASTER" 2>/dev/null || { echo "distarch ended early:" >&2; tail -20 "$DIR/real.log" >&2; exit 1; }
    sleep 0.05
done
r_ready=$(since "$start")
u1=$(user_requests); a1=$(all_requests)
stop_start=$(now)
kill -INT "$MASTER"
wait "$MASTER" || true
wait_gone bench-distarch
r_stop=$(since "$stop_start")
u2=$(user_requests); a2=$(all_requests)

# kubectl apply + kubectl wait of the same N pods (same image, command, stdin).
python3 - "$N" "$IMAGE" >"$DIR/pods.yaml" <<'PY'
import sys
n, image = int(sys.argv[1]), sys.argv[2]
for i in range(1, n + 1):
    print(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: kubectl-{i}, labels: {{bench: kubectl}}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 10
  containers:
  - name: worker
    image: {image}
    command: [/worker]
    stdin: true
    env:
    - {{name: DISTARCH_PARAMS, value: '{{"tick_seconds": 1.0}}'}}
    - {{name: DISTARCH_ID, value: "{i}"}}
    - {{name: DISTARCH_GROUP, value: bench}}
    - {{name: DISTARCH_GROUP_ID, value: "{i}"}}
    - {{name: DISTARCH_GROUP_COUNT, value: "{n}"}}
    - {{name: DISTARCH_RUN_ID, value: kubectl}}
    - {{name: DISTARCH_HOST, value: bench-kubectl}}
    - {{name: DISTARCH_RESTART, value: "0"}}
    - {{name: DISTARCH_PROTOCOL, value: "1"}}""")
PY
start=$(now)
ku apply -n bench-kubectl -f "$DIR/pods.yaml" >/dev/null
k_apply=$(since "$start")
ku wait -n bench-kubectl --for=condition=Ready pod -l bench=kubectl --timeout=600s >/dev/null
k_ready=$(since "$start")
u3=$(user_requests); a3=$(all_requests)
ku delete -n bench-kubectl pods -l bench=kubectl --grace-period=0 --wait=false >/dev/null 2>&1 || true
wait_gone bench-kubectl

per2() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.2f", (a - b) / n }'; }
printf '\n%-62s %10s %10s\n' "kubernetes benchmark, $N pods, real control plane (v$(sed -n 's/^require k8s.io\/kubernetes v//p' tests/k8s-cluster/go.mod))" "distarch" "kubectl"
printf '%-62s %10.2f %10.2f\n' "seconds: start until all $N pods ready (kubectl: apply + wait)" "$r_ready" "$k_ready"
printf '%-62s %10s %10.2f\n' "seconds: kubectl apply alone" "-" "$k_apply"
printf '%-62s %10s %10s\n' "requests per pod by the client until ready (audit log)" "$(per2 "$u1" "$u0")" "$(per2 "$u3" "$u2")"
printf '%-62s %10s %10s\n' "requests per pod, all clients, until ready (/metrics)" "$(per2 "$a1" "$a0")" "$(per2 "$a3" "$a2")"
printf '%-62s %10s %10s\n' "requests per pod by distarch for the whole run (audit log)" "$(per2 "$u2" "$u0")" "-"
printf '%-62s %10.2f %10s\n' "seconds: Ctrl-C until all pods stopped and deleted" "$r_stop" "-"
