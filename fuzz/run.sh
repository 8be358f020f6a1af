#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzz every harness for a while: fuzz/run.sh SECONDS [OUTDIR] [NAME...]
#
# Builds the harnesses with fuzz/build.sh (into OUTDIR, default
# $TWINE_FUZZ_OUT or ${TMPDIR:-/tmp}/twine-fuzz), then runs each one for
# SECONDS over its seed corpus fuzz/corpus/NAME and its saved regressions
# fuzz/regressions/NAME. New inputs go to OUTDIR/corpus/NAME, never into the
# source tree; a crash, a leak, a broken invariant or a timeout is written to
# OUTDIR/artifacts/NAME/ and makes the script fail, naming the file to keep
# in fuzz/regressions/NAME/. NAME... limits the run to those harnesses.
set -euo pipefail

if [ $# -lt 1 ] || ! [ "$1" -gt 0 ] 2>/dev/null; then
    echo "usage: fuzz/run.sh SECONDS [OUTDIR] [NAME...]" >&2
    exit 2
fi
seconds=$1
top=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-${TWINE_FUZZ_OUT:-${TMPDIR:-/tmp}/twine-fuzz}}
shift $(($# >= 2 ? 2 : 1))

"$top/fuzz/build.sh" "$out"
out=$(cd "$out" && pwd)

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for h in "$top"/fuzz/fuzz_*.c; do
        n=$(basename "$h" .c)
        names+=("${n#fuzz_}")
    done
fi

failed=()
for name in "${names[@]}"; do
    bin="$out/bin/fuzz_$name"
    work="$out/corpus/$name"
    art="$out/artifacts/$name"
    log="$out/fuzz_$name.log"
    mkdir -p "$work" "$art"
    dirs=("$work" "$top/fuzz/corpus/$name")
    [ -d "$top/fuzz/regressions/$name" ] && dirs+=("$top/fuzz/regressions/$name")
    # Boxes of more than 100 KB (thousands of keys) need long inputs; the
    # other harnesses keep libFuzzer's default.
    case $name in
    amp | amp_conn) max_len=(-max_len=262144) ;;
    stream) max_len=(-max_len=16384) ;;
    proxy) max_len=(-max_len=4608) ;; # past TW_PROXY_HEADER_MAX, so its limit is reached
    *) max_len=() ;;
    esac
    # A crash ends libFuzzer at once; the timeout only guards a hang in libFuzzer itself.
    set +e
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1" \
        timeout $((seconds + 120)) "$bin" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 ${max_len[@]+"${max_len[@]}"} -print_final_stats=1 -artifact_prefix="$art/" "${dirs[@]}" \
        >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [^ ]+' || true)
    if [ "$rc" -ne 0 ]; then
        echo "fuzz_$name: FAILED (exit $rc) after ${runs:-?} runs; log $log"
        grep -E 'ERROR|invariant broken|runtime error|SUMMARY|Test unit written' "$log" | head -n 20 || true
        for f in "$art"/*; do
            [ -f "$f" ] && echo "  reproducer: $f (keep it in fuzz/regressions/$name/)"
        done
        failed+=("$name")
    else
        echo "fuzz_$name: ok, ${runs:-?} runs in ${seconds}s (${speed:-?} exec/s), $cov"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: failed: ${failed[*]}"
    exit 1
fi
echo "fuzz/run.sh: ${#names[@]} harnesses ran ${seconds}s each without a finding"
