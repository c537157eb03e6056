# distarch-docker: the entrypoint of a container with `end_with_master = true`,
# run as `/bin/sh -c <this> distarch-docker GRACE KILL_AFTER ARGV...` (tenths of a
# second, then the worker's full command line).
#
# The worker is exec'ed in place of this shell, so it keeps this pid: the one the
# engine's init forwards `docker stop` to (PID 1 itself without init), so exit
# status and signals concern the worker as before. A watcher, started in the
# background and left to the init, relays the container's stdin to the worker
# through a fifo in /dev/shm (or $TMPDIR, /tmp). When that stdin ends (the master
# closed it or died, or its connection to the engine dropped: the engine closes
# the stdin of a StdinOnce container when its attach goes), the watcher closes the
# worker's stdin, waits up to GRACE for the worker to end, then sends SIGTERM to
# its process group, and SIGKILL after KILL_AFTER more. Without what it needs
# (mkfifo, cat, sleep, a writable /dev/shm or /tmp), the worker runs as it is.
g=$1 k=$2
shift 2
f=
if command -v mkfifo >/dev/null 2>&1 && command -v cat >/dev/null 2>&1 \
    && command -v sleep >/dev/null 2>&1; then
    for d in /dev/shm "${TMPDIR:-/tmp}"; do
        if mkfifo -m 600 "$d/distarch-stdin.$$" 2>/dev/null; then
            f=$d/distarch-stdin.$$
            break
        fi
    done
fi
[ -n "$f" ] || exec "$@"
watch='
trap "" TERM INT HUP QUIT
exec 4>"$2"
rm -f "$2"
cat >&4
exec 4>&-
p=$1
gone() { ! kill -0 "$p" 2>/dev/null; }
wait_gone() {
    i=$1
    while [ "$i" -gt 0 ]; do
        gone && return 0
        sleep 0.1 2>/dev/null || sleep 1
        i=$((i - 1))
    done
    gone
}
group=-$p
[ "$p" = 1 ] && group=1
wait_gone "$3" && exit 0
kill -TERM "$group" 2>/dev/null || kill -TERM "$p" 2>/dev/null
wait_gone "$4" && exit 0
kill -KILL "$group" 2>/dev/null || kill -KILL "$p" 2>/dev/null
exit 0
'
exec 3<&0
(/bin/sh -c "$watch" distarch-docker-watch "$$" "$f" "$g" "$k" <&3 >/dev/null 2>&1 &)
exec "$@" <"$f" 3<&-
