#!/usr/bin/env bash
# Job pool throughput (issue 12): trivial jobs (the worker echoes the payload)
# through `distarch run` on 4 local workers, next to GNU parallel and `xargs -P 4`
# running one process per job (`echo`), in the same run; then over SSH (one sshd on
# 127.0.0.1 started here, 4 workers on it) next to `parallel --sshlogin` (4 jobs at
# a time over the same sshd, one ssh session per job).
#
# Usage: bench/jobs.sh [JOBS] [PROCESS_JOBS]
#   JOBS          jobs through distarch (default 500000)
#   PROCESS_JOBS  jobs through parallel/xargs, one process each (default 5000;
#                 over ssh a tenth of it)
# Installs GNU parallel (Debian package) when it is missing; the SSH part needs
# openssh-server and runs as root (it is skipped otherwise). Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-500000}
PJOBS=${2:-5000}
if ! command -v parallel >/dev/null; then
    echo "bench/jobs.sh: installing GNU parallel" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends parallel >/dev/null
fi
CARGO_INCREMENTAL=0 cargo build --release -q -p distarch-cli -p distarch-e2e --bin distarch --bin distarch-job-worker
D=$PWD/target/release/distarch
W=$PWD/target/release/distarch-job-worker
tmp=$(mktemp -d)
sshd_pid=
cleanup() {
    [ -z "$sshd_pid" ] || kill "$sshd_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
seq 1 "$JOBS" >"$tmp/jobs.txt"
seq 1 "$PJOBS" >"$tmp/pjobs.txt"

# seconds COMMAND...: runs it (output to files in $tmp), prints the elapsed seconds.
seconds() {
    local start=$EPOCHREALTIME
    "$@"
    /usr/bin/python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$EPOCHREALTIME"
}
rate() { /usr/bin/python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):,.0f}')" "$1" "$2"; }
check_lines() {
    local got
    got=$(wc -l <"$1")
    [ "$got" -eq "$2" ] || { echo "bench/jobs.sh: $1 has $got lines, expected $2" >&2; exit 1; }
}

run_distarch() { # CREDIT EXTRA-ARGS...
    local credit=$1
    shift
    "$D" run -j 4 --input "$tmp/jobs.txt" -o "$tmp/out.jsonl" --log-level warn --progress 0 \
        --set "groups.run.params={ credit = $credit }" "$@" -- "$W" 2>"$tmp/log"
}
t_d16=$(seconds run_distarch 16)
check_lines "$tmp/out.jsonl" "$JOBS"
t_d256=$(seconds run_distarch 256)
check_lines "$tmp/out.jsonl" "$JOBS"
t_dord=$(seconds run_distarch 256 --keep-order)
check_lines "$tmp/out.jsonl" "$JOBS"
t_par=$(seconds sh -c "parallel --will-cite -j 4 echo {} <'$tmp/pjobs.txt' >'$tmp/par.out'")
check_lines "$tmp/par.out" "$PJOBS"
t_xargs=$(seconds sh -c "xargs -P 4 -I{} echo {} <'$tmp/pjobs.txt' >'$tmp/xargs.out'")
check_lines "$tmp/xargs.out" "$PJOBS"

r_d16=$(rate "$JOBS" "$t_d16")
r_d256=$(rate "$JOBS" "$t_d256")
r_dord=$(rate "$JOBS" "$t_dord")
r_par=$(rate "$PJOBS" "$t_par")
r_xargs=$(rate "$PJOBS" "$t_xargs")
echo "local, 4 workers, trivial jobs                    jobs   seconds      jobs/s"
printf '%-44s %10s %9s %11s\n' \
    "distarch run (credit 16, the SDK default)" "$JOBS" "$t_d16" "$r_d16" \
    "distarch run (credit 256)" "$JOBS" "$t_d256" "$r_d256" \
    "distarch run --keep-order (credit 256)" "$JOBS" "$t_dord" "$r_dord" \
    "GNU parallel -j 4 echo (a process per job)" "$PJOBS" "$t_par" "$r_par" \
    "xargs -P 4 echo (a process per job)" "$PJOBS" "$t_xargs" "$r_xargs"
/usr/bin/python3 -c "import sys; a,b,c=map(float,sys.argv[1:]); print(f'distarch (credit 256) / GNU parallel: {b/a:,.0f}x; / xargs -P 4: {b/c:,.1f}x')" \
    "${r_par//,/}" "${r_d256//,/}" "${r_xargs//,/}"

# ---- over SSH ---------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ] || [ ! -x /usr/sbin/sshd ]; then
    echo "(ssh part skipped: needs root and openssh-server)"
    exit 0
fi
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/client_key"
cp "$tmp/client_key.pub" "$tmp/authorized_keys"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/sshd_config" <<EOF
HostKey $tmp/host_key
AuthorizedKeysFile $tmp/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 100
MaxStartups 100:30:200
EOF
/usr/sbin/sshd -D -e -f "$tmp/sshd_config" -o ListenAddress=127.0.0.1:$port -o PidFile="$tmp/sshd.pid" 2>"$tmp/sshd.log" &
sshd_pid=$!
/usr/bin/python3 - "$port" <<'EOF'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.1).close(); break
    except OSError:
        time.sleep(0.02)
EOF
echo "[127.0.0.1]:$port $(cat "$tmp/host_key.pub")" >"$tmp/known_hosts"
cat >"$tmp/ssh_config" <<EOF
Host bench
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $tmp/client_key
  UserKnownHostsFile $tmp/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
EOF
cat >"$tmp/ssh.toml" <<EOF
[groups.run]
command = ["$W"]
params = { credit = 256 }
placements.remote = { transport = "ssh", hosts = ["root@127.0.0.1:$port"], instances = 4, identity_files = ["$tmp/client_key"], known_hosts = "$tmp/known_hosts", ssh_config = "none" }
EOF
SJOBS=$JOBS
SPJOBS=$((PJOBS / 10))
seq 1 "$SPJOBS" >"$tmp/spjobs.txt"
t_ds=$(seconds "$D" run -c "$tmp/ssh.toml" --pool run --input "$tmp/jobs.txt" -o "$tmp/out.jsonl" --log-level warn --progress 0 2>"$tmp/log")
check_lines "$tmp/out.jsonl" "$SJOBS"
t_ps=$(seconds sh -c "PARALLEL_SSH='ssh -F $tmp/ssh_config' parallel --will-cite -j 4 --sshlogin 4/bench echo {} <'$tmp/spjobs.txt' >'$tmp/spar.out'")
check_lines "$tmp/spar.out" "$SPJOBS"
r_ds=$(rate "$SJOBS" "$t_ds")
r_ps=$(rate "$SPJOBS" "$t_ps")
echo
echo "over ssh (one sshd on 127.0.0.1), 4 workers       jobs   seconds      jobs/s"
printf '%-44s %10s %9s %11s\n' \
    "distarch run, ssh placement (credit 256)" "$SJOBS" "$t_ds" "$r_ds" \
    "parallel --sshlogin 4/host echo (ssh per job)" "$SPJOBS" "$t_ps" "$r_ps"
/usr/bin/python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(f'distarch / parallel --sshlogin: {b/a:,.0f}x')" "${r_ps//,/}" "${r_ds//,/}"
