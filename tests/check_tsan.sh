#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/threads hands every chunk of a prime count to the reactor's
# thread pool with tw_defer_to_thread(): 4 pool threads take jobs from one
# queue and hand results back through tw_reactor_call_from_thread()'s queue,
# and stopping the reactor joins them. This runs that example twice:
#   - as built for users (examples/threads/threads): the totals must match;
#   - as tests/threads_tsan, the same example compiled together with every
#     source of libtwine under -fsanitize=thread (the system libevent is not
#     instrumented, but twine uses it from the reactor's thread only). Any
#     "WARNING: ThreadSanitizer" report fails the test;
# and then tests/threadpool_tsan, the thread pool's Check tests built the
# same way (cancelling queued and running work, stop, free with work queued).
# configure builds the two TSan programs only when the compiler can link with
# -fsanitize=thread; without it the TSan half is skipped (exit 77) after the
# plain half passed. A kernel whose address-space layout TSan cannot use
# ("unexpected memory mapping") gets a second try with ASLR off (setarch -R)
# before the TSan half is skipped, with the reason.
set -u

builddir=${TWINE_BUILDDIR:-.}
plain=$builddir/examples/threads/threads
tsan=$builddir/tests/threads_tsan
setarch_prefix=
tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-tsan.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

bounded() {
    if command -v timeout >/dev/null 2>&1; then timeout 300 "$@"; else "$@"; fi
}

# 1. The example as users build it.
if bounded "$plain" 4 100000 >"$tmp/plain.log" 2>&1 && grep -q ': match$' "$tmp/plain.log"; then
    echo "ok: examples/threads (4 pool threads) totals match: $(grep 'chunks done' "$tmp/plain.log")"
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
        bounded "$@" "$tsan" 4 100000 >"$tmp/tsan.log" 2>&1
}
run_tsan
rc=$?
if grep -q 'FATAL: ThreadSanitizer' "$tmp/tsan.log"; then
    echo "note: $(grep -m1 'FATAL: ThreadSanitizer' "$tmp/tsan.log"); retrying with ASLR off"
    if command -v setarch >/dev/null 2>&1; then
        setarch_prefix="setarch $(uname -m) -R"
        # shellcheck disable=SC2086
        run_tsan $setarch_prefix
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
echo "ok: examples/threads under ThreadSanitizer: no report, $(grep 'chunks done' "$tmp/tsan.log")"

# 3. The pool's own tests (tests/check_threadpool: cancellation, stop and
#    free with work queued) under ThreadSanitizer, in one process.
pool=$builddir/tests/threadpool_tsan
# shellcheck disable=SC2086
CK_FORK=no TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
    bounded $setarch_prefix "$pool" >"$tmp/pool.log" 2>&1
rc=$?
if grep -q 'WARNING: ThreadSanitizer' "$tmp/pool.log"; then
    echo "FAIL: ThreadSanitizer reported $(grep -c 'WARNING: ThreadSanitizer' "$tmp/pool.log") problem(s) in the thread pool's tests:"
    cat "$tmp/pool.log"
    exit 1
fi
if [ $rc -ne 0 ] || ! grep -q '100%: Checks' "$tmp/pool.log"; then
    echo "FAIL: tests/threadpool_tsan exited $rc:"
    sed 's/^/    /' "$tmp/pool.log"
    exit 1
fi
echo "PASS: examples/threads and the thread pool's tests under ThreadSanitizer: no report ($(grep '100%: Checks' "$tmp/pool.log"))"
exit 0
