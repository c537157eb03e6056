#!/usr/bin/env bash
# Transport plugins (issue 17): start N instances (default 200) of `true` through the
# Python plugin (distarch-transport-pgroup) until all ended, next to the same
# instances through the built-in local transport and through the Rust plugin
# (distarch-transport-rlocal), in one run of this script; prints the wall time of
# each and the overhead per instance. Uses target/debug binaries unless
# DISTARCH_BIN is set (build first: cargo build -p distarch-cli -p distarch-transport-rlocal).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
rounds=${ROUNDS:-3}
bin=${DISTARCH_BIN:-$PWD/target/debug/distarch}
export PATH="$PWD/plugins/python:$(dirname "$bin"):$PATH"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for t in local pgroup rlocal; do
    cat > "$dir/$t.toml" <<TOML
[groups.b]
command = ["true"]
[groups.b.placements.p]
transport = "$t"
instances = $n
TOML
done
now() { date +%s.%N; }
declare -A best
for r in $(seq "$rounds"); do
    for t in local pgroup rlocal; do
        s=$(now)
        "$bin" launch -c "$dir/$t.toml" >/dev/null 2>&1
        e=$(now)
        ms=$(echo "($e - $s) * 1000 / 1" | bc)
        if [ -z "${best[$t]:-}" ] || [ "$ms" -lt "${best[$t]}" ]; then best[$t]=$ms; fi
    done
done
echo "$n instances of \`true\`, start until all ended, best of $rounds ($(basename "$bin") $(file -b "$bin" | grep -q 'not stripped' && echo debug build || echo build), $(nproc) CPUs):"
for t in local pgroup rlocal; do
    per=$(echo "scale=2; (${best[$t]} - ${best[local]}) / $n" | bc)
    printf '  %-7s %6d ms   %6.2f ms/instance   overhead vs local %s ms/instance\n' \
        "$t" "${best[$t]}" "$(echo "scale=2; ${best[$t]} / $n" | bc)" "$per"
done
