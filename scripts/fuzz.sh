#!/usr/bin/env bash
# Long, coverage-guided fuzzing of distarch's fuzz targets (fuzz/src/lib.rs) with
# libFuzzer, on stable Rust: the targets are built with coverage instrumentation
# (`-Cpasses=sancov-module`, no sanitizer: the code under test has no unsafe) and
# each runs for SECONDS (default 300), starting from the corpus in fuzz/corpus/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # targets: frame_decoder line_splitter
#                                              #          config_loader ssh_quote
#   scripts/fuzz.sh --merge [TARGET...]        # minimize what runs found into fuzz/corpus
#
# New inputs go to target/fuzz/corpus/TARGET (not into the repository); a crash is
# written to fuzz/artifacts/TARGET/ and ends the run with exit code 1. The bounded
# run in CI is `distarch-fuzz --seconds 40` (scripts/test.sh), which needs no
# instrumentation. With a nightly toolchain, `cargo +nightly fuzz run TARGET
# --fuzz-dir fuzz/libfuzzer` (cargo-fuzz) works on the same targets, with sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(frame_decoder line_splitter config_loader ssh_quote)
merge=false
seconds=300
if [ "${1:-}" = "--merge" ]; then merge=true; shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
command -v c++ >/dev/null || { echo "scripts/fuzz.sh: a C++ compiler is needed for libFuzzer: apt-get install -y g++" >&2; exit 1; }

export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation out of build scripts (as cargo-fuzz).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --manifest-path fuzz/libfuzzer/Cargo.toml --target-dir target/fuzz \
    --target "$host" --bins
bin=target/fuzz/$host/release
status=0
for t in "${targets[@]}"; do
    work=target/fuzz/corpus/$t
    mkdir -p "$work" "fuzz/artifacts/$t"
    if $merge; then
        # Keep in the repository only inputs that add coverage.
        "$bin/$t" -merge=1 "fuzz/corpus/$t" "$work" 2>&1 | tail -1
        continue
    fi
    echo "== $t: ${seconds}s" >&2
    if ! "$bin/$t" "$work" "fuzz/corpus/$t" -max_total_time="$seconds" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
        2>"target/fuzz/$t.log"; then
        status=1
        echo "$t: FAILED; see target/fuzz/$t.log and fuzz/artifacts/$t/" >&2
    fi
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|Done [0-9]+ runs" "target/fuzz/$t.log" >&2 || true
done
exit $status
