# distarch-ssh agent: run once per SSH connection by `/bin/sh -c`; starts,
# signals and reaps that connection's instances on the master's request.
# Arguments: KEEPALIVE (seconds, 0 = off) WINDOW (bytes of output each stream
# may send before the master grants more). Nothing here is ever evaluated: values
# arrive on stdin as lines and are used only as "$@" words.
#
# Master -> agent, one line each (ID: digits; VALUE: `\` written `\\`, newline `\n`):
#   a VALUE            append a word to the next start: WORKDIR, NENV `K=V`s, argv
#   s ID GRACE KILL    start instance ID with those words (GRACE, KILL: tenths of s)
#   i ID TEXT          write TEXT and a newline to the instance's stdin
#   j ID TEXT          write TEXT (no newline) to the instance's stdin
#   e ID               close the instance's stdin; if the worker has not ended
#                      after GRACE, its group gets SIGTERM, and SIGKILL after KILL
#   t ID SIG           send SIG (a name such as TERM, or a number) to the
#                      instance's process group, if it still runs
#   c ID o|e N         N more bytes of stdout|stderr may be sent
#   k                  keepalive from the master
# Agent -> master: records, each written whole while holding the output lock:
#   0 h 2              the agent is ready (protocol 2)
#   ID o|e N           followed by N raw bytes of the worker's stdout|stderr
#   ID p PID           the worker runs as PID (its process group and session id)
#   ID x CODE          the worker exited with CODE
#   ID k SIG           the worker was killed by signal SIG
#
# Each instance has a runner (a subshell) that starts the worker with `setsid`
# (so its pid is its process group), relays its stdout and stderr with one relay
# each, holds its stdin fifo open until told to close it, reaps it and reports
# how it ended after its last output. A relay hands on whatever one read of the
# stream returns (`dd count=1`: at most 64 KiB) as one `ID o N` record; once a
# read comes back full (the worker floods), it spools: a copier `dd` moves up to
# 1 MiB into a file while the relay sends what is there as one record (see
# `relay` and `spool`). Never more than the credit the master granted; when that
# is used up the relay waits, so a flooding worker waits, alone. Bytes pass
# unchanged (NULs, a last line without a newline).
# Records of all instances go straight to the agent's stdout, the channel (no
# relay in between: each one would copy every byte once more); a chunk is larger
# than one atomic pipe write, so every writer takes the output lock first (a fifo
# holding one token line) and gives it back after the whole record.
# When the master goes (stdin ends, or no keepalive for two periods), every
# worker's stdin is closed, then after GRACE its group gets SIGTERM, and SIGKILL
# after KILL more.
ka=$1 W=$2
runners= wd=
export LC_ALL=C
for t in awk cat dd mkfifo mktemp setsid; do
    command -v "$t" >/dev/null 2>&1 || {
        echo "distarch-ssh: $t is not installed on this host" >&2
        exit 125
    }
done
# Output chunks pass through files here: a memory file system if there is one
# (rewriting a file on disk again and again can cost a flush each time).
t=${TMPDIR:-}
if [ -z "$t" ]; then
    t=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && t=/dev/shm
fi
D=$(mktemp -d "$t/distarch-ssh.XXXXXXXX") || exit 125
# Absolute: workers change directory, and their leaders still write here.
case $D in /*) ;; *) D=$PWD/$D ;; esac
mkfifo -m 600 "$D/l" || exit 125
# A shell's `wait` gives 128+N both for a worker killed by signal N and for one
# that exits with 128+N. An awk whose system() reports a signal death as 256+N
# (gawk, mawk, the one true awk; not busybox) tells them apart: where there is
# one, it is each worker's parent. Elsewhere 128+N is read as signal N.
A=
for a in gawk awk mawk nawk; do
    command -v "$a" >/dev/null 2>&1 || continue
    case $("$a" 'BEGIN { print system("kill -9 $$") }' </dev/null 2>/dev/null) in
    265)
        A=$a
        break
        ;;
    esac
done
# Spool mode (see `spool`) needs a dd that copies a byte range of a file
# (GNU, busybox); elsewhere every read is relayed on its own.
SPOOL= SPOOL_START=262144 SPOOL_MAX=1048576
dd if=/dev/null of=/dev/null iflag=skip_bytes,count_bytes count=0 2>/dev/null && SPOOL=1
# Whether dd's statistics end with a byte count (GNU, BSD; not busybox).
DDB=
case $(dd if=/dev/null of=/dev/null 2>&1) in *' bytes '*) DDB=1 ;; esac
# Runners set their own USR2 trap; until they do, the signal must not
# kill them (a signal ignored here can still be trapped in a subshell).
trap "" PIPE USR1 USR2
exec 8<>"$D/l"
echo >&8
lock() { until read -r _ <&8; do :; done; }
unlock() { echo >&8; }
# count STATS FILE: the bytes dd copied into FILE, from its STATS (GNU and BSD
# dd say it first on their third line; busybox's does not, so `wc -c` does).
count() {
    n=
    { read -r _ && read -r _ && read -r n _; } <"$1"
    case $n in
    '' | *[!0-9]*)
        n=$(wc -c <"$2")
        n=${n##*[!0-9]}
        ;;
    esac
    n=${n:-0}
}
# relay ID o|e FD: sends this shell's stdin (one of the worker's streams) as
# records; FD delivers the master's grants (numbers) and, in spool mode, the
# relay's own events (`t` tick, `d` copier done). Quiet mode: one `dd count=1`
# per read, so a line is handed on as soon as it is written. A read that fills
# the pipe means the worker writes faster than that: spool mode, below.
relay() {
    f=$d/b$2 c=$W full= ep=0 tk= g=$SPOOL_START
    exec 6<&0
    while :; do
        while [ "$c" -le 0 ]; do
            read -r x <&"$3" || return 1
            case $x in '' | *[!0-9]*) continue ;; esac
            c=$((c + x))
        done
        if [ -n "$full" ] && [ "$c" -ge 65536 ]; then
            spool "$1" "$2" "$3" || return "$?"
            continue
        fi
        b=$c
        [ "$b" -gt 65536 ] && b=65536
        dd bs="$b" count=1 of="$f" 2>"$f.n" || return 1
        count "$f.n" "$f"
        [ "$n" -gt 0 ] || return 0
        lock
        printf '%s %s %s\n' "$1" "$2" "$n"
        cat "$f"
        unlock
        c=$((c - n))
        full=
        [ -n "$SPOOL" ] && [ "$n" -eq 65536 ] && full=1
    done
}
# Spool mode, one generation: a copier (`dd bs=4096 count=G/4096`: at most G
# bytes, within the credit and at most SPOOL_MAX) moves the worker's output
# into a spool file as fast as the worker writes it, while the relay sends what
# the spool holds when the copier is done or a tick finds it grown: one record
# of up to SPOOL_MAX bytes for a few processes, instead of two processes per
# pipe-full. Every read of the copier lands in the spool at once, so nothing
# waits longer than two ticks (a tick: 0.1 s, doubling up to 0.8 s while the
# spool stays the same). Back-pressure stays per stream: the copier reads no
# more than the credit allows, then the worker waits. G doubles while
# generations come in without an idle tick; after one with one, quiet mode.
spool() {
    s=$d/s$2
    [ "$g" -gt "$c" ] && g=$((c / 65536 * 65536))
    : >"$s"
    # Its statistics on stderr are the relay's events: the read count, and
    # (where dd says it) the byte count; the last of them means it is done.
    dd bs=4096 count=$((g / 4096)) of="$s" conv=notrunc <&6 2>&"$3" &
    iv=0.1
    if [ -z "$tk" ]; then
        ep=$((ep + 1)) tk=1
        echo "$ep $iv" >"$s.t"
        tick "$3" "$s.t" "$ep" </dev/null >/dev/null 2>&1 6<&- &
    fi
    o=0 done= idle= quiet=0 age=0 r=0 n=
    while :; do
        read -r x <&"$3" || return 1
        case $x in
        *'records in')
            x=${x%% *}
            case $x in *[0-9]+[0-9]*) r=$((${x%%+*} + ${x#*+})) ;; esac
            continue
            ;;
        *'records out')
            [ -n "$DDB" ] && continue
            n=$(wc -c <"$s")
            n=${n##*[!0-9]}
            done=1
            ;;
        [0-9]*' bytes '*)
            n=${x%% *}
            done=1
            ;;
        t)
            # A generation younger than a tick is likely to be done soon.
            age=$((age + 1))
            [ "$age" -ge 2 ] || continue
            ;;
        '' | *[!0-9]*) continue ;;
        *)
            c=$((c + x))
            continue
            ;;
        esac
        if [ -z "$done" ]; then
            n=$(wc -c <"$s")
            n=${n##*[!0-9]}
        fi
        t=$((${n:-0} - o))
        if [ "$t" -gt 0 ]; then
            lock
            printf '%s %s %s\n' "$1" "$2" "$t"
            dd if="$s" bs=65536 skip="$o" count="$t" iflag=skip_bytes,count_bytes 2>/dev/null
            unlock
            o=$((o + t))
            c=$((c - t))
            quiet=0
            [ "$iv" = 0.1 ] || { iv=0.1 && echo "$ep $iv" >"$s.t"; }
        elif [ -z "$done" ]; then
            # (Two quiet ticks in a row: a busy host may not run the worker
            # for one.)
            quiet=$((quiet + 1))
            [ "$quiet" -ge 2 ] && idle=1
            case $iv in 0.1) iv=0.2 ;; 0.2) iv=0.4 ;; *) iv=0.8 ;; esac
            echo "$ep $iv" >"$s.t"
        fi
        [ -n "$done" ] && break
    done
    # A generation that came in without an idle tick leaves the worker flooding
    # still; after one that did not (it paused), quiet mode. So does the end of
    # the stream (fewer reads than asked for), which quiet mode then sees.
    if [ -z "$idle" ] && [ "$r" -ge $((g / 4096)) ]; then
        g=$((g * 2))
        [ "$g" -gt "$SPOOL_MAX" ] && g=$SPOOL_MAX
    else
        full= g=$SPOOL_START tk=
        echo 0 >"$s.t"
    fi
    return 0
}
# tick FD FLAG EPISODE: a `t` event on FD after each interval FLAG names, as
# long as FLAG holds EPISODE.
tick() {
    v=0.1
    while sleep "$v" 2>/dev/null || sleep 1; do
        read -r x v <"$2" 2>/dev/null && [ "$x" = "$3" ] || exit 0
        echo t >&"$1" || exit 0
    done
}
# Run by setsid in the worker's place once it leads its own session and process
# group: only now may the group be signalled, so only now is its pid written to
# `p` and the runner (RUNNER_PID) told with SIGUSR1; the runner sends the record.
# (The leader never takes the output lock: a signal to the group could kill it
# while it holds it.)
LEADER='printf "%s\n" "$$" >"$1/p"; kill -USR1 "$3"; exec 9>&- 8>&-; shift 3; exec "$@"'
# Run by the parent awk's system(): the words come in the environment (an eval
# of fixed text: only a number is spliced in), and leave it before the worker.
RUN='i=0; set --
while [ "$i" -lt "$DISTARCH_SSH_N" ]; do
    eval "set -- \"\$@\" \"\$DISTARCH_SSH_$i\"; unset DISTARCH_SSH_$i"; i=$((i + 1))
done
d=$DISTARCH_SSH_D id=$DISTARCH_SSH_ID r=$DISTARCH_SSH_R L=$DISTARCH_SSH_LEADER
unset DISTARCH_SSH_N DISTARCH_SSH_D DISTARCH_SSH_ID DISTARCH_SSH_R DISTARCH_SSH_LEADER DISTARCH_SSH_RUN
exec setsid /bin/sh -c "$L" distarch-ssh "$d" "$id" "$r" "$@"'
PARENT='BEGIN { r = system(ENVIRON["DISTARCH_SSH_RUN"]); print r > (ENVIRON["DISTARCH_SSH_D"] "/st"); exit 0 }'
gone() { ! kill -0 "-$1" 2>/dev/null; }
wait_gone() {
    j=$2
    while [ "$j" -gt 0 ]; do
        gone "$1" && return 0
        sleep 0.1 2>/dev/null || sleep 1
        j=$((j - 1))
    done
    gone "$1"
}
# stop_group PGID GRACE KILL: wait GRACE for the group to end, then SIGTERM,
# then SIGKILL after KILL.
stop_group() {
    wait_gone "$1" "$2" && return 0
    kill -TERM "-$1" 2>/dev/null
    wait_gone "$1" "$3" && return 0
    kill -KILL "-$1" 2>/dev/null
}
# esc DIR GRACE KILL: stop_group, once the group may be signalled; nothing if
# the worker never got that far.
esc() {
    q=
    while :; do
        [ -d "$1" ] && [ ! -e "$1/x" ] || return 0
        [ -s "$1/p" ] && read -r q <"$1/p"
        case $q in '' | *[!0-9]*) ;; *) break ;; esac
        sleep 0.1 2>/dev/null || sleep 1
    done
    stop_group "$q" "$2" "$3"
}
# run ID GRACE KILL NENV WORKDIR K=V... ARGV...
run() {
    id=$1 g=$2 k=$3 n=$4 w=$5
    shift 5
    d=$D/$id
    p= st=125 how= gone_= intr=
    a1= a2=
    # The leader's SIGUSR1: the worker's pid is in `p`; tell the master at once
    # (in the trap: a `wait` that had not begun yet would not return for it).
    trap 'intr=1
        if [ -s "$d/p" ]; then
            read -r q <"$d/p"
            lock
            printf "%s p %s\n" "$id" "$q"
            unlock
        fi' USR1
    trap 'exec 3>&-; intr=1; gone_=1
        [ -n "$p" ] && { esc "$d" "$g" "$k" >/dev/null & }
        [ -e "$D/gone" ] && [ -n "$a2" ] && kill "$a1" "$a2" 2>/dev/null' USR2
    if mkfifo -m 600 "$d/i" "$d/o" "$d/e" "$d/co" "$d/ce"; then
        exec 3<>"$d/i" 4<>"$d/co" 5<>"$d/ce"
        # (Not `relay ... 3>&-`: a shell keeps a copy of an fd it closes for a
        # function, and the worker's stdin would stay open.)
        (
            exec 3>&- 5>&-
            relay "$id" o 4
        ) <"$d/o" &
        a1=$!
        (
            exec 3>&- 4>&-
            relay "$id" e 5
        ) <"$d/e" &
        a2=$!
        R=$(exec /bin/sh -c 'echo "$PPID"')
        (
            trap - PIPE USR1 USR2
            if [ -n "$w" ]; then
                cd -- "$w" || exit 126
            fi
            while [ "$n" -gt 0 ]; do
                export "$1" || exit 125
                shift
                n=$((n - 1))
            done
            if [ -n "$A" ]; then
                i=0
                for a in "$@"; do
                    export "DISTARCH_SSH_$i=$a"
                    i=$((i + 1))
                done
                export DISTARCH_SSH_N="$i" DISTARCH_SSH_D="$d" DISTARCH_SSH_ID="$id" \
                    DISTARCH_SSH_R="$R" DISTARCH_SSH_LEADER="$LEADER" DISTARCH_SSH_RUN="$RUN"
                exec "$A" "$PARENT"
            fi
            exec setsid /bin/sh -c "$LEADER" distarch-ssh "$d" "$id" "$R" "$@"
        ) 9>&1 <"$d/i" >"$d/o" 2>"$d/e" 3>&- 4>&- 5>&- &
        p=$!
        if [ -n "$gone_" ] || [ -e "$D/gone" ]; then
            exec 3>&-
            gone_=1
            esc "$d" "$g" "$k" >/dev/null &
        fi
        # `wait` returns early (128 + USR1|USR2) when a trap runs; the shell
        # keeps the worker's status for the next `wait` if it ended meanwhile.
        while :; do
            intr=
            wait "$p"
            st=$?
            if [ -n "$intr" ] && [ "$st" -gt 128 ]; then
                case $(kill -l "$st" 2>/dev/null) in USR1 | USR2) continue ;; esac
            fi
            break
        done
        : >"$d/x"
        # What is left of the worker's group (children it started) ends too.
        q=
        [ -s "$d/p" ] && read -r q <"$d/p"
        case $q in
        '' | *[!0-9]*) ;;
        *)
            if ! gone "$q"; then
                kill -TERM "-$q" 2>/dev/null
                stop_group "$q" 0 "$k" >/dev/null &
            fi
            ;;
        esac
        # How it ended: the awk parent says 256+N (512+N with a core dump) for
        # signal N; without one, the shell's 128+N is taken for signal N.
        how="x $st" r=
        [ -s "$d/st" ] && read -r r <"$d/st"
        case $r in
        '' | *[!0-9]*)
            [ "$st" -gt 128 ] && [ "$st" -le 192 ] && how="k $((st - 128))"
            ;;
        *)
            how="x $r"
            [ "$r" -ge 256 ] && how="k $((r % 256))"
            ;;
        esac
        # The relays end with the worker's output (they keep their credit fifos
        # open until then); if the master is gone, the USR2 trap ends them.
        exec 3>&-
        [ -e "$D/gone" ] && kill "$a1" "$a2" 2>/dev/null
        for a in "$a1" "$a2"; do
            while kill -0 "$a" 2>/dev/null; do
                wait "$a"
            done
        done
        exec 4>&- 5>&-
    fi
    rm -rf "$d"
    [ -e "$D/gone" ] && return 0
    lock
    printf '%s %s\n' "$id" "${how:-x $st}"
    unlock
}
# Every instance: close its stdin, then end its group after the grace period.
master_gone() {
    : >"$D/gone"
    for d in "$D"/[0-9]*; do
        [ -f "$d/r" ] && read -r r <"$d/r" && kill -USR2 "$r" 2>/dev/null
    done
}
if [ "$ka" -gt 0 ]; then
    : >"$D/ka"
    (
        trap - PIPE
        missed=0
        while sleep "$ka"; do
            if [ -e "$D/ka" ]; then
                rm -f "$D/ka"
                missed=0
            else
                missed=$((missed + 1))
                [ "$missed" -ge 2 ] && { master_gone; exit 0; }
            fi
        done
    ) </dev/null >/dev/null &
    wd=$!
fi
printf '0 h 2\n'
set --
while IFS= read -r line; do
    c=${line%% *}
    r=${line#"$c"}
    r=${r# }
    case $c in
    a)
        case $r in
        *\\*)
            r=$(printf '%bx' "$r")
            r=${r%x}
            ;;
        esac
        set -- "$@" "$r"
        continue
        ;;
    k)
        : >"$D/ka"
        continue
        ;;
    esac
    id=${r%% *}
    r=${r#"$id"}
    r=${r# }
    case $id in '' | *[!0-9]*) continue ;; esac
    d=$D/$id
    case $c in
    s)
        g=${r%% *} r=${r#* }
        k=${r%% *} n=${r#* }
        if mkdir -m 700 "$d" 2>/dev/null; then
            run "$id" "$g" "$k" "$n" "$@" </dev/null &
            printf '%s\n' "$!" >"$d/r"
            runners="$runners $!"
        else
            lock
            printf '%s x 125\n' "$id"
            unlock
        fi
        set --
        ;;
    i) [ -p "$d/i" ] && printf '%s\n' "$r" 2>/dev/null 1<>"$d/i" ;;
    j) [ -p "$d/i" ] && printf '%s' "$r" 2>/dev/null 1<>"$d/i" ;;
    e) [ -f "$d/r" ] && read -r q <"$d/r" && kill -USR2 "$q" 2>/dev/null ;;
    t)
        if [ -f "$d/p" ] && [ ! -e "$d/x" ] && read -r q <"$d/p"; then
            case $r in '' | *[!A-Z0-9]*) ;; *) kill -"$r" "-$q" 2>/dev/null ;; esac
        fi
        ;;
    c)
        case $r in
        o\ *) [ -p "$d/co" ] && printf '%s\n' "${r#o }" 2>/dev/null 1<>"$d/co" ;;
        e\ *) [ -p "$d/ce" ] && printf '%s\n' "${r#e }" 2>/dev/null 1<>"$d/ce" ;;
        esac
        ;;
    esac
done
master_gone
for r in $runners; do
    wait "$r"
done
[ -n "$wd" ] && kill "$wd" 2>/dev/null
rm -rf "$D"
