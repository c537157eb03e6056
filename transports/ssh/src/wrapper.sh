# distarch-ssh wrapper: run by `/bin/sh -c` on the remote host for one instance.
# Arguments: GRACE KILL_AFTER (tenths of a second) WORKDIR ('' = none) NENV,
# then NENV `NAME=VALUE` words, then the worker's argv.
#
# The worker is exec'ed in place of this shell, so it keeps the pid that sshd
# made a session (and process group) leader: the exit status and any signal sent
# to that group concern the worker itself. A watcher, in a session of its own,
# relays the channel's stdin to the worker through a fifo; when that stdin ends
# (the master closed it or died, the connection dropped, or the worker exited and
# sshd closed it), the watcher closes the worker's stdin, waits up to GRACE for
# the worker's process group to end, then sends it SIGTERM, and SIGKILL after
# KILL_AFTER more. Only one program (mkfifo) runs before the worker starts.
g=$1 k=$2 w=$3 n=$4
shift 4
if [ -n "$w" ]; then
    cd -- "$w" || exit 126
fi
command -v setsid >/dev/null 2>&1 || {
    echo "distarch-ssh: setsid(1) is not installed on this host (util-linux or busybox)" >&2
    exit 125
}
f=${TMPDIR:-/tmp}/distarch-ssh.$$.in
mkfifo -m 600 "$f" 2>/dev/null || { rm -f "$f" && mkfifo -m 600 "$f"; } || exit 125
watch='
rm -f "$2"
cat >&4
exec 4>&-
p=$1
gone() { ! kill -0 "-$p" 2>/dev/null; }
wait_gone() {
    i=$1
    while [ "$i" -gt 0 ]; do
        gone && return 0
        sleep 0.1 2>/dev/null || sleep 1
        i=$((i - 1))
    done
    gone
}
if kill -0 "$p" 2>/dev/null; then
    wait_gone "$3" && exit 0
fi
gone && exit 0
kill -TERM "-$p" 2>/dev/null
wait_gone "$4" && exit 0
kill -KILL "-$p" 2>/dev/null
exit 0
'
exec 3<&0
(
    exec 4>"$f"
    exec setsid /bin/sh -c "$watch" distarch-ssh-watch "$$" "$f" "$g" "$k" <&3 >/dev/null 2>&1
) &
exec 4<"$f" 3<&-
while [ "$n" -gt 0 ]; do
    export "$1" || exit 125
    shift
    n=$((n - 1))
done
printf 'distarch-ssh pid %s\n' "$$"
exec "$@" <&4 4<&-
