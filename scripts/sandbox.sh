#!/usr/bin/env bash
# A throw-away sshd, dockerd and test Kubernetes API server to run the examples
# against, started the way the end-to-end tests start theirs (testkit/): private
# keys, config, sockets and data in one directory, loopback only, nothing installed
# system-wide and nothing left behind by `stop`.
#
#   scripts/sandbox.sh start      # start all three (about 2 s; run as root)
#   eval "$(scripts/sandbox.sh env)"   # DOCKER_HOST, KUBECONFIG
#   scripts/sandbox.sh status     # what runs
#   scripts/sandbox.sh stop       # stop everything, remove the directory
#
# Directory: $SANDBOX_DIR (default /tmp/distarch-sandbox; keep it short: the
# docker socket path must stay under ~100 bytes). sshd listens on 127.0.0.1 port
# $SANDBOX_SSH_PORT (default 2222) and lets root in with the sandbox's own
# key only; the ssh host alias `sandbox` is defined in $SANDBOX_DIR/ssh_config.
# The Kubernetes API server is tests/kube-apiserver (pods run as containers on the
# sandbox's dockerd); it is started when `cargo build --workspace --bins` built it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DIR=${SANDBOX_DIR:-/tmp/distarch-sandbox}
SSH_PORT=${SANDBOX_SSH_PORT:-2222}
APISERVER=${SANDBOX_APISERVER:-$REPO/target/debug/distarch-fake-apiserver}

say() { echo "sandbox: $*" >&2; }
die() { say "$*"; exit 1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}

start_sshd() {
    alive "$DIR/sshd.pid" && { say "sshd already runs"; return; }
    [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing: apt-get install -y openssh-server"
    mkdir -p /run/sshd
    [ -f "$DIR/id_client" ] || ssh-keygen -q -t ed25519 -N '' -C distarch-sandbox -f "$DIR/id_client"
    [ -f "$DIR/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C sandbox-host -f "$DIR/host_key"
    cp "$DIR/id_client.pub" "$DIR/authorized_keys"
    cat >"$DIR/sshd_config" <<EOF
HostKey $DIR/host_key
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $DIR/sshd.pid
EOF
    local key
    key=$(cut -d' ' -f1,2 "$DIR/host_key.pub")
    printf '[127.0.0.1]:%s %s\n[sandbox]:%s %s\n' "$SSH_PORT" "$key" "$SSH_PORT" "$key" >"$DIR/known_hosts"
    cat >"$DIR/ssh_config" <<EOF
Host sandbox
    HostName 127.0.0.1
    Port $SSH_PORT
    User root
    IdentityFile $DIR/id_client
EOF
    /usr/sbin/sshd -e -f "$DIR/sshd_config" -o "ListenAddress=127.0.0.1:$SSH_PORT" 2>>"$DIR/sshd.log" \
        || die "sshd did not start: $(tail -5 "$DIR/sshd.log")"
    wait_for 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT" \
        || die "sshd does not listen on 127.0.0.1:$SSH_PORT: $(tail -5 "$DIR/sshd.log")"
    say "sshd on 127.0.0.1:$SSH_PORT (host alias \`sandbox\`)"
}

start_dockerd() {
    alive "$DIR/dockerd.pid" && { say "dockerd already runs"; return; }
    command -v dockerd >/dev/null || die "dockerd is missing: apt-get install -y --no-install-recommends docker.io"
    mkdir -p "$DIR/docker"
    setsid dockerd --data-root "$DIR/docker/data" --exec-root "$DIR/docker/exec" \
        --pidfile "$DIR/dockerd.pid" -H "unix://$DIR/docker.sock" \
        --iptables=false --ip6tables=false --bridge=none \
        </dev/null >>"$DIR/dockerd.log" 2>&1 &
    wait_for 60 docker -H "unix://$DIR/docker.sock" version \
        || die "dockerd did not answer within 60 s: $(tail -5 "$DIR/dockerd.log")"
    say "dockerd at unix://$DIR/docker.sock"
}

start_apiserver() {
    alive "$DIR/apiserver.pid" && { say "the Kubernetes API server already runs"; return; }
    if [ ! -x "$APISERVER" ]; then
        say "no Kubernetes API server ($APISERVER missing: cargo build --workspace --bins)"
        return
    fi
    : >"$DIR/apiserver.out"
    setsid "$APISERVER" --docker "unix://$DIR/docker.sock" --listen 127.0.0.1:0 --id sandbox \
        </dev/null >"$DIR/apiserver.out" 2>"$DIR/apiserver.log" &
    echo $! >"$DIR/apiserver.pid"
    wait_for 30 grep -q '^listening on http://' "$DIR/apiserver.out" \
        || die "the Kubernetes API server did not start: $(tail -5 "$DIR/apiserver.log")"
    local url
    url=$(sed -n 's/^listening on //p' "$DIR/apiserver.out" | head -1)
    cat >"$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: $url
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: sandbox
    namespace: default
current-context: sandbox
users:
- name: sandbox
  user: {}
EOF
    say "Kubernetes API server at $url (kubeconfig $DIR/kubeconfig)"
}

# TERM, then KILL after $2 seconds, of the process whose pid is in file $1 and of
# its process group (dockerd's containerd, started under setsid).
stop_pidfile() {
    local file=$1 grace=$2 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_for "$grace" bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$file"
}

cmd_start() {
    [ "$(id -u)" -eq 0 ] || die "run as root (sshd and dockerd need it)"
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    start_sshd
    start_dockerd
    start_apiserver
    say "ready; now: eval \"\$(scripts/sandbox.sh env)\""
}

cmd_env() {
    [ -d "$DIR" ] || die "no sandbox at $DIR: scripts/sandbox.sh start"
    echo "export DOCKER_HOST=unix://$DIR/docker.sock"
    [ -f "$DIR/kubeconfig" ] && echo "export KUBECONFIG=$DIR/kubeconfig"
    echo "# ssh: host alias sandbox = root@127.0.0.1:$SSH_PORT; settings ssh_config = \"$DIR/ssh_config\", known_hosts = \"$DIR/known_hosts\""
}

cmd_status() {
    local name
    for name in sshd dockerd apiserver; do
        if alive "$DIR/$name.pid"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; fi
    done
}

cmd_stop() {
    [ -d "$DIR" ] || { say "nothing to stop at $DIR"; return; }
    # The API server removes the containers it made on SIGTERM.
    stop_pidfile "$DIR/apiserver.pid" 10
    if alive "$DIR/dockerd.pid"; then
        local ids
        ids=$(docker -H "unix://$DIR/docker.sock" ps -aq 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || docker -H "unix://$DIR/docker.sock" rm -f -v $ids >/dev/null 2>&1 || true
    fi
    stop_pidfile "$DIR/dockerd.pid" 20
    stop_pidfile "$DIR/sshd.pid" 5
    # dockerd may leave mounts below its roots; unmount them before removing.
    { grep -o " $DIR/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$DIR"
    say "stopped; $DIR removed"
}

case "${1:-}" in
    start) cmd_start ;;
    env) cmd_env ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    *) echo "usage: scripts/sandbox.sh start|env|status|stop" >&2; exit 2 ;;
esac
