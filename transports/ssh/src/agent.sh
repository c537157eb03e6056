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
#   t ID SIG           send SIG to the instance's process group, if it still runs
#   c ID o|e N         N more bytes of stdout|stderr may be sent
#   k                  keepalive from the master
# Agent -> master, one line each, written whole (one write of at most PIPE_BUF):
#   0 h 1              the agent is ready
#   ID o|e TEXT        a stdout|stderr line; ID O|E TEXT: a piece of a longer line
#   ID p PID           the worker runs as PID (its process group and session id)
#   ID x STATUS        the worker ended (shell status: 128+N = killed by signal N)
#
# Each instance has a runner (a subshell) that starts the worker with `setsid`
# (so its pid is its process group), relays its stdout and stderr with one awk
# each (whole lines, a credit window per stream: awk stops reading when the
# master has not granted more, so a flooding worker waits, alone), holds its
# stdin fifo open until told to close it, reaps it and reports its status after
# its last output line. When the master goes (stdin ends, or no keepalive for two
# periods), every worker's stdin is closed, then after GRACE its group gets
# SIGTERM, and SIGKILL after KILL more.
ka=$1 W=$2
runners= wd=
export LC_ALL=C
for t in awk mkfifo mktemp setsid; do
    command -v "$t" >/dev/null 2>&1 || {
        echo "distarch-ssh: $t is not installed on this host" >&2
        exit 125
    }
done
D=$(mktemp -d "${TMPDIR:-/tmp}/distarch-ssh.XXXXXXXX") || exit 125
mkfifo -m 600 "$D/m" || exit 125
# The stream relays: an awk that hands on each line as soon as it is read
# (mawk only does with -W interactive; gawk and busybox awk always do).
if command -v gawk >/dev/null 2>&1; then
    relay() { exec gawk "$@"; }
elif command -v busybox >/dev/null 2>&1 && busybox awk 'BEGIN { }' </dev/null >/dev/null 2>&1; then
    relay() { exec busybox awk "$@"; }
else
    case $(awk -W version 2>&1 </dev/null) in
    *mawk*) relay() { exec awk -W interactive "$@"; } ;;
    *) relay() { exec awk "$@"; } ;;
    esac
fi
# Runners set their own USR2 trap; until they do, the signal must not
# kill them (a signal ignored here can still be trapped in a subshell).
trap "" PIPE USR2
cat <"$D/m" &
exec >"$D/m"
# The relay of one stream: whole lines, pieces of at most 2000 bytes, and a wait
# for credit whenever the window is used up.
FRAMER='
function credit(n) {
    c -= n
    while (c <= 0) { if ((getline x < cf) <= 0) exit 1; c += x }
}
{
    n = length($0)
    for (i = 1; n - i >= 2000; i += 2000) {
        printf "%s %s %s\n", id, big, substr($0, i, 2000); fflush()
        credit(2000)
    }
    printf "%s %s %s\n", id, k, substr($0, i); fflush()
    credit(n - i + 2)
}'
# Run by setsid in the worker's place once it leads its own session and process
# group: only now may the group be signalled, so only now is the pid told.
LEADER='printf "%s\n" "$$" >"$1/p"; printf "%s p %s\n" "$2" "$$" >&9; exec 9>&-; shift 2; exec "$@"'
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
# esc PGID GRACE KILL: wait GRACE for the group to end, then SIGTERM, then SIGKILL.
esc() {
    # Until setsid has made the group, the worker is not gone.
    while ! kill -0 "-$1" 2>/dev/null && kill -0 "$1" 2>/dev/null; do
        sleep 0.1 2>/dev/null || sleep 1
    done
    wait_gone "$1" "$2" && return 0
    kill -TERM "-$1" 2>/dev/null
    wait_gone "$1" "$3" && return 0
    kill -KILL "-$1" 2>/dev/null
}
# run ID GRACE KILL NENV WORKDIR K=V... ARGV...
run() {
    id=$1 g=$2 k=$3 n=$4 w=$5
    shift 5
    d=$D/$id
    p= st=125 gone_= intr=
    a1= a2=
    trap 'exec 3>&-; intr=1; gone_=1
        [ -n "$p" ] && { esc "$p" "$g" "$k" >/dev/null & }
        [ -e "$D/gone" ] && [ -n "$a2" ] && kill "$a1" "$a2" 2>/dev/null' USR2
    if mkfifo -m 600 "$d/i" "$d/o" "$d/e" "$d/co" "$d/ce"; then
        exec 3<>"$d/i" 4<>"$d/co" 5<>"$d/ce"
        relay -v id="$id" -v k=o -v big=O -v cf="$d/co" -v c="$W" "$FRAMER" <"$d/o" 3>&- 4>&- 5>&- &
        a1=$!
        relay -v id="$id" -v k=e -v big=E -v cf="$d/ce" -v c="$W" "$FRAMER" <"$d/e" 3>&- 4>&- 5>&- &
        a2=$!
        (
            trap - PIPE USR2
            if [ -n "$w" ]; then
                cd -- "$w" || exit 126
            fi
            while [ "$n" -gt 0 ]; do
                export "$1" || exit 125
                shift
                n=$((n - 1))
            done
            exec setsid /bin/sh -c "$LEADER" distarch-ssh "$d" "$id" "$@"
        ) 9>&1 <"$d/i" >"$d/o" 2>"$d/e" 3>&- 4>&- 5>&- &
        p=$!
        if [ -n "$gone_" ] || [ -e "$D/gone" ]; then
            exec 3>&-
            gone_=1
            esc "$p" "$g" "$k" >/dev/null &
        fi
        # `wait` returns early (128 + USR2) when the trap runs; the shell keeps
        # the worker's status for the next `wait` if it ended meanwhile.
        while :; do
            intr=
            wait "$p"
            st=$?
            if [ -n "$intr" ] && [ "$st" -gt 128 ]; then
                case $(kill -l "$st" 2>/dev/null) in USR2) continue ;; esac
            fi
            break
        done
        : >"$d/x"
        # What is left of the worker's group (children it started) ends too.
        if ! gone "$p"; then
            kill -TERM "-$p" 2>/dev/null
            esc "$p" 0 "$k" >/dev/null &
        fi
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
    printf '%s x %s\n' "$id" "$st"
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
printf '0 h 1\n'
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
            printf '%s x 125\n' "$id"
        fi
        set --
        ;;
    i) [ -p "$d/i" ] && printf '%s\n' "$r" 2>/dev/null 1<>"$d/i" ;;
    j) [ -p "$d/i" ] && printf '%s' "$r" 2>/dev/null 1<>"$d/i" ;;
    e) [ -f "$d/r" ] && read -r q <"$d/r" && kill -USR2 "$q" 2>/dev/null ;;
    t)
        if [ -f "$d/p" ] && [ ! -e "$d/x" ] && read -r q <"$d/p"; then
            case $r in TERM | KILL | INT | HUP | QUIT | USR1 | USR2) kill -"$r" "-$q" 2>/dev/null ;; esac
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
