#!/bin/sh
# SPDX-License-Identifier: MIT
# tw_reactor_call_from_thread() is the one thread-safe entry point, and
# examples/threads leans on it: worker threads hand results to the reactor.
# This runs that example twice:
#   - as built for users (examples/threads/threads): the totals must match;
#   - as tests/threads_tsan, the same example compiled together with every
#     source of libtwine under -fsanitize=thread (the system libevent is not
#     instrumented, but twine uses it from the reactor's thread only). Any
#     "WARNING: ThreadSanitizer" report fails the test.
# configure builds tests/threads_tsan only when the compiler can link with
# -fsanitize=thread; without it the TSan half is skipped (exit 77) after the
# plain half passed. A kernel whose address-space layout TSan cannot use
# ("unexpected memory mapping") gets a second try with ASLR off (setarch -R)
# before the TSan half is skipped, with the reason.
set -u

builddir=${TWINE_BUILDDIR:-.}
plain=$builddir/examples/threads/threads
tsan=$builddir/tests/threads_tsan
tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-tsan.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

bounded() {
    if command -v timeout >/dev/null 2>&1; then timeout 300 "$@"; else "$@"; fi
}

# 1. The example as users build it.
if bounded "$plain" 8 100000 >"$tmp/plain.log" 2>&1 && grep -q ': match$' "$tmp/plain.log"; then
    echo "ok: examples/threads (8 workers) totals match: $(grep 'all 8 workers' "$tmp/plain.log")"
else
    echo "FAIL: examples/threads did not finish with matching totals:"
    sed 's/^/    /' "$tmp/plain.log"
    exit 1
fi

# 2. The same under ThreadSanitizer.
if [ ! -x "$tsan" ]; then
    echo "SKIP: no tests/threads_tsan: configure found no -fsanitize=thread support in the compiler"
    exit 77
fi
run_tsan() {
    TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
        bounded "$@" "$tsan" 8 100000 >"$tmp/tsan.log" 2>&1
}
run_tsan
rc=$?
if grep -q 'FATAL: ThreadSanitizer' "$tmp/tsan.log"; then
    echo "note: $(grep -m1 'FATAL: ThreadSanitizer' "$tmp/tsan.log"); retrying with ASLR off"
    if command -v setarch >/dev/null 2>&1; then
        run_tsan setarch "$(uname -m)" -R
        rc=$?
    fi
    if grep -q 'FATAL: ThreadSanitizer' "$tmp/tsan.log"; then
        echo "SKIP: ThreadSanitizer cannot run on this kernel: $(grep -m1 'FATAL: ThreadSanitizer' "$tmp/tsan.log")"
        exit 77
    fi
fi
if grep -q 'WARNING: ThreadSanitizer' "$tmp/tsan.log"; then
    echo "FAIL: ThreadSanitizer reported $(grep -c 'WARNING: ThreadSanitizer' "$tmp/tsan.log") problem(s):"
    cat "$tmp/tsan.log"
    exit 1
fi
if [ $rc -ne 0 ] || ! grep -q ': match$' "$tmp/tsan.log"; then
    echo "FAIL: tests/threads_tsan exited $rc without matching totals:"
    sed 's/^/    /' "$tmp/tsan.log"
    exit 1
fi
echo "PASS: examples/threads under ThreadSanitizer: no report, $(grep 'all 8 workers' "$tmp/tsan.log")"
exit 0
