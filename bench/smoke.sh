#!/bin/sh
# SPDX-License-Identifier: MIT
# make check's smoke test of the benchmark suite: run every workload of
# bench/run for a moment against every server that exists here, and fail if
# any of them produced no figure, a zero figure or an error. Workloads whose
# protocol module reactord does not have yet, and the TLS workloads while
# reactord refuses ssl: endpoints, are reported "n/a" and pass.
# It asserts no speed.
set -eu

builddir=$(pwd)
srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
reactord=${REACTORD:-$builddir/reactord}
if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi

# The reports are written too, so that their code runs, but not kept.
out=$(mktemp -d "${TMPDIR:-/tmp}/twine-bench-smoke.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM

"$py" "$srcdir/bench/run" --quick --check \
    --reactord "$reactord" \
    --loadgen "$builddir/bench/loadgen" \
    --raw-echo "$builddir/bench/raw_echo" \
    --raw-tls-echo "$builddir/bench/raw_tls_echo" \
    --python "${PYTHON_TWISTED:-/usr/bin/python3}" \
    --out "$out"
