#!/bin/sh
# A distarch worker in plain POSIX sh, with no SDK: it speaks protocol v1 as
# described in docs/protocol.md. It runs under dash, busybox sh and bash.
#
# What it does: logs who it is (as a frame and as plain lines), sends `ready`,
# then works in a background loop (one plain line, a `status` and a `ping` every
# second) while the foreground reads stdin. A `stop` frame or the end of stdin
# (the master is gone) kills the work loop; the worker sends `ended` and exits 0.
#
# Exit codes: 0 after a stop, or when the master is gone; 2 when not started by
# distarch; 143 on SIGTERM.

set -u

RS=$(printf '\036')   # the frame marker, ASCII record separator

# frame JSON: writes one frame (JSON must be one compact object, on one line).
frame() {
    printf '\036%s\n' "$1"
}

# json_string TEXT: TEXT as a JSON string literal. Escapes \ " and tab; drops the
# other control characters (newlines included), which is enough for log text.
json_string() {
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' | tr -d '\000-\037')"
}

# Refuse to run outside distarch (a missing id), or with a protocol we do not know.
if [ -z "${DISTARCH_ID:-}" ]; then
    echo "shell-worker: not started by distarch: DISTARCH_ID is not set" >&2
    exit 2
fi
if [ "${DISTARCH_PROTOCOL:-}" != 1 ]; then
    echo "shell-worker: unsupported protocol version '${DISTARCH_PROTOCOL:-}' (this worker speaks 1)" >&2
    exit 2
fi
for n in "$DISTARCH_ID" "${DISTARCH_GROUP_ID:-}" "${DISTARCH_GROUP_COUNT:-}"; do
    case $n in
        '' | *[!0-9]*)
            echo "shell-worker: DISTARCH_ID, DISTARCH_GROUP_ID and DISTARCH_GROUP_COUNT must be numbers" >&2
            exit 2
            ;;
    esac
done

# DISTARCH_PARAMS is a JSON object; a raw newline can only be whitespace in JSON,
# so removing them keeps it valid and on one line.
params=$(printf '%s' "${DISTARCH_PARAMS:-}" | tr -d '\r\n')
[ -n "$params" ] || params='{}'
# A simple-minded read of one string param (no escaped quotes inside).
message=$(printf '%s' "$params" | sed -n 's/.*"message" *: *"\([^"\\]*\)".*/\1/p')
[ -n "$message" ] || message="hello"

frame "{\"type\":\"log\",\"level\":\"info\",\"message\":$(json_string "$message"),\"fields\":{\"id\":$DISTARCH_ID,\"group\":$(json_string "${DISTARCH_GROUP:-}"),\"group_id\":$DISTARCH_GROUP_ID,\"group_count\":$DISTARCH_GROUP_COUNT,\"params\":$params}}"
echo "instance $DISTARCH_ID is $DISTARCH_GROUP_ID of $DISTARCH_GROUP_COUNT in group ${DISTARCH_GROUP:-} on ${DISTARCH_HOST:-}"
echo "params: $params"
echo "shell-worker: a line on stderr, shown by the master at warn" >&2
frame '{"type":"ready"}'

# The work loop, run in the background. Its `sleep` runs in the background too and
# is waited for, so that a TERM from the foreground interrupts the wait at once and
# the trap also ends the sleep (which would otherwise hold stdout open).
work() {
    sleeper=
    trap 'if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; fi; exit 0' TERM
    step=0
    while :; do
        step=$((step + 1))
        echo "working: step $step"
        frame "{\"type\":\"status\",\"text\":\"step $step\"}"
        frame '{"type":"ping"}'
        sleep 1 </dev/null >/dev/null 2>&1 &
        sleeper=$!
        wait "$sleeper"
        sleeper=
    done
}

work &
work_pid=$!

stop_work() {
    kill "$work_pid" 2>/dev/null
    wait "$work_pid" 2>/dev/null
}
trap 'stop_work; exit 143' TERM

# The foreground reads the master's frames. The master writes compact JSON with
# "type" first, so a pattern is enough; any other line is ignored.
reason="master gone"
while IFS= read -r line || [ -n "$line" ]; do
    case $line in
        "$RS"'{"type":"stop"'*)
            reason="stop requested"
            break
            ;;
    esac
done

stop_work
echo "stopping: $reason"
frame '{"type":"ended"}'
exit 0
