# Shared by the docker and kubernetes benchmarks (sourced, not run): a private
# dockerd under $DIR listening on $HOST, the worker image imported without any
# registry, and timing helpers. Callers set DIR and HOST first.

DOCKERD_PID=

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }

# Starts dockerd as the tests run it and waits until its API answers.
dockerd_start() {
    dockerd --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$DIR/dockerd.pid" \
        -H "$HOST" --iptables=false --ip6tables=false --bridge=none >"$DIR/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 600); do docker -H "$HOST" version >/dev/null 2>&1 && break; sleep 0.05; done
}

# Removes every container, stops dockerd and unmounts what it left under $DIR.
dockerd_stop() {
    if [ -n "$DOCKERD_PID" ]; then
        ids=$(docker -H "$HOST" ps -aq 2>/dev/null || true)
        [ -z "$ids" ] || docker -H "$HOST" rm -f $ids >/dev/null 2>&1 || true
        kill -TERM "$DOCKERD_PID" 2>/dev/null || true
        for _ in $(seq 1 200); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    fi
    # dockerd may leave mounts (exec/netns/default) under its dir.
    for m in $(awk -v d="$DIR" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}

# import_worker_image BINARY IMAGE: the binary plus the libraries ldd lists, as
# /worker, imported with `docker import` (no registry needed).
import_worker_image() {
    local root="$DIR/rootfs"
    mkdir -p "$root/tmp"
    cp "$1" "$root/worker"
    for lib in $(ldd "$1" | grep -o '/[^ ]*' | sort -u); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    tar -C "$root" -c . | docker -H "$HOST" import -c 'ENTRYPOINT ["/worker"]' - "$2" >/dev/null
}
