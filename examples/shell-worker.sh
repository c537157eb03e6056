#!/bin/sh
# A distarch worker in plain POSIX sh, with no SDK: it speaks protocol v1 as
# described in docs/protocol.md. It runs under dash, busybox sh and bash.
#
# What it does: sends `hello`, logs who it is (as a frame and as plain lines), sends `ready`,
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

# Refuse to run outside distarch (a missing id), with a variable missing or
# malformed, or with a protocol we do not know. Each message names the variable.
fail() {
    echo "shell-worker: $1" >&2
    exit 2
}
[ -n "${DISTARCH_ID+set}" ] || fail "not started by distarch: DISTARCH_ID is not set"
for var in DISTARCH_PROTOCOL DISTARCH_RUN_ID DISTARCH_GROUP DISTARCH_GROUP_ID \
    DISTARCH_GROUP_COUNT DISTARCH_HOST DISTARCH_RESTART DISTARCH_PARAMS; do
    eval "[ -n \"\${$var+set}\" ]" || fail "not started by distarch: $var is not set"
done
[ "$DISTARCH_PROTOCOL" = 1 ] ||
    fail "DISTARCH_PROTOCOL: unsupported protocol version '$DISTARCH_PROTOCOL' (this worker speaks 1)"
for var in DISTARCH_ID DISTARCH_GROUP_ID DISTARCH_GROUP_COUNT DISTARCH_RESTART; do
    eval "value=\$$var"
    case $value in
        '' | *[!0-9]*) fail "$var has an invalid value '$value': not a number" ;;
    esac
    if [ "$var" != DISTARCH_RESTART ] && [ "$value" -lt 1 ]; then
        fail "$var has an invalid value '$value': must be at least 1"
    fi
done

# DISTARCH_PARAMS is a JSON object; a raw newline can only be whitespace in JSON,
# so removing them keeps it valid and on one line.
params=$(printf '%s' "${DISTARCH_PARAMS:-}" | tr -d '\r\n')
[ -n "$params" ] || params='{}'
# Not a JSON parser: an object starts with { and ends with }.
case $params in
    '{'*'}') ;;
    *) fail "DISTARCH_PARAMS has an invalid value: not a JSON object" ;;
esac
# A simple-minded read of one string param (no escaped quotes inside).
# (grep -o, not a sed with .*: that backtracks for seconds on large params).
string_param() {
    printf '%s' "$params" | grep -o "\"$1\" *: *\"[^\"\\]*\"" | head -n 1 | sed 's/^[^:]*: *"//; s/"$//'
}
message=$(string_param message)
[ -n "$message" ] || message="hello"
# What the conformance kit (distarch-conformance) asks of its worker; see docs/conformance.md.
conformance=$(string_param conformance)

# "I speak the protocol", before anything else.
frame '{"type":"hello","protocol":1}'

frame "{\"type\":\"log\",\"level\":\"info\",\"message\":$(json_string "$message"),\"fields\":{\"id\":$DISTARCH_ID,\"group\":$(json_string "${DISTARCH_GROUP:-}"),\"group_id\":$DISTARCH_GROUP_ID,\"group_count\":$DISTARCH_GROUP_COUNT,\"host\":$(json_string "$DISTARCH_HOST"),\"run_id\":$(json_string "$DISTARCH_RUN_ID"),\"restart\":$DISTARCH_RESTART,\"params\":$params}}"
echo "instance $DISTARCH_ID is $DISTARCH_GROUP_ID of $DISTARCH_GROUP_COUNT in group ${DISTARCH_GROUP:-} on ${DISTARCH_HOST:-}"
echo "params: $params"
echo "shell-worker: a line on stderr, shown by the master at warn" >&2
frame '{"type":"ready"}'

case $conformance in
    levels)
        n=0
        for level in trace debug info warn error; do
            n=$((n + 1))
            frame "{\"type\":\"log\",\"level\":\"$level\",\"message\":\"level $level\",\"fields\":{\"n\":$n}}"
        done
        ;;
    status) frame "{\"type\":\"status\",\"text\":$(json_string "$(string_param text)")}" ;;
esac

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

# Job pools (docs/protocol.md §12): with params.conformance = "jobs" (or params.jobs =
# "echo") the worker asks for jobs and answers each with its payload as result; a
# payload with a "fail" member fails, not retryable.
jobs=$(string_param jobs)
[ "$conformance" = jobs ] && jobs=echo
if [ "$jobs" = echo ]; then
    frame '{"type":"want","n":4}'
fi

# The foreground reads the master's frames. The master writes compact JSON with
# "type" first, so a pattern is enough; any other line is ignored.
reason="master gone"
while IFS= read -r line || [ -n "$line" ]; do
    case $line in
        "$RS"'{"type":"stop"'*)
            reason="stop requested"
            break
            ;;
        "$RS"'{"type":"job","id":'*)
            [ "$jobs" = echo ] || continue
            # {"type":"job","id":N,"payload":P}: N up to the comma, P up to the last }.
            id=${line#*'"id":'}
            id=${id%%,*}
            payload=${line#*'"payload":'}
            payload=${payload%'}'}
            case $payload in
                '{'*'"fail":'*) frame "{\"type\":\"failed\",\"id\":$id,\"error\":\"asked to fail\",\"retryable\":false}" ;;
                *) frame "{\"type\":\"done\",\"id\":$id,\"result\":$payload}" ;;
            esac
            frame '{"type":"want","n":1}'
            ;;
        "$RS"'{"type":"group_count","count":'*)
            # The group was scaled: log its new size.
            count=${line#*'"count":'}
            count=${count%%[!0-9]*}
            [ -z "$count" ] || frame "{\"type\":\"log\",\"level\":\"info\",\"message\":\"group_count\",\"fields\":{\"count\":$count}}"
            ;;
    esac
done

stop_work
echo "stopping: $reason"
frame '{"type":"ended"}'
exit 0
