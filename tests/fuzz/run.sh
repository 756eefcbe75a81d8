#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang and runs each for N seconds
# (default 30), starting from its seeds in tests/fuzz/corpus/<target>/. The server libraries are
# built with ASan/UBSan and coverage instrumentation too, so the fuzzer sees and checks the code
# under test, not only the harness. New inputs go to tests/fuzz/corpus-out/<target>/ (ignored by
# git); a crash leaves its input there as crash-* and makes the script exit non-zero.
#   tests/fuzz/run.sh [seconds]      TENANTD_FUZZ_BUILD=<dir> overrides the build folder (build-fuzz)
set -eu

secs=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TENANTD_FUZZ_BUILD:-$root/build-fuzz}
out_root=$root/tests/fuzz/corpus-out

targets=
for f in "$root"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    targets="$targets $t"
done
[ -n "$targets" ] || { echo "run.sh: no fuzz targets" >&2; exit 1; }

CC=clang cmake -S "$root" -B "$build" -DTENANTD_FUZZ=ON -DTENANTD_TESTS=OFF -DTENANTD_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets

failed=
for t in $targets; do
    out=$out_root/$t
    mkdir -p "$out"
    seeds=$root/tests/fuzz/corpus/$t
    [ -d "$seeds" ] || seeds=
    echo "== $t for ${secs}s"
    # shellcheck disable=SC2086
    if ! "$build/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/" "$out" $seeds 2>"$out/log"; then
        failed="$failed $t"
        tail -n 40 "$out/log" >&2
    else
        grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "$out/log" || tail -n 3 "$out/log"
    fi
done

if [ -n "$failed" ]; then
    echo "run.sh: crashes in:$failed (inputs in $out_root/<target>/crash-*)" >&2
    exit 1
fi
echo "run.sh: no crash in$targets"
