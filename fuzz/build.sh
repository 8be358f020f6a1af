#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer harnesses: fuzz/build.sh [OUTDIR]
#
# How. Every harness is linked with clang (-fsanitize=fuzzer,address,undefined)
# against the library compiled from source -- the libtwine_la_SOURCES that
# configure selected (read from the generated Makefile, so that conditional
# sources such as the poller backend are right; none of the project's make
# rules run; the test kit's string transport is one of them) -- all
# instrumented for coverage (fuzzer-no-link), built once into OUTDIR/obj and
# shared by the harnesses.
# Compiling the sources directly, rather than linking libtwine.so, puts the
# library's code under the fuzzer's coverage and the sanitizers with no
# libtool in between.
#
# The sources need the config.h and include/twine/version.h that configure
# writes. They are taken from, in this order:
#   1. $TWINE_CONFIG_DIR, a configured build directory;
#   2. the source tree itself, when it was configured in place (CI's first
#      step does that);
#   3. OUTDIR/config, configured here out of tree with CC=clang (the tree
#      must have its configure script: run autoreconf -fi once).
# The source tree is never written to.
#
# OUTDIR defaults to $TWINE_FUZZ_OUT, else ${TMPDIR:-/tmp}/twine-fuzz. The
# harnesses land in OUTDIR/bin/fuzz_<name>. CC_FUZZ (default clang),
# FUZZ_CFLAGS and FUZZ_JOBS (parallel compilers, default 2) may be set.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${TWINE_FUZZ_OUT:-${TMPDIR:-/tmp}/twine-fuzz}}
cc=${CC_FUZZ:-clang}
mkdir -p "$out/obj" "$out/bin"
out=$(cd "$out" && pwd)

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz/build.sh: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi
probe="$out/probe.c"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n ? 0 : 0; }' >"$probe"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/probe" 2>"$out/probe.log"; then
    echo "fuzz/build.sh: $cc cannot link with libFuzzer; install the compiler-rt of" \
        "its version (apt-get install libclang-rt-14-dev for clang 14):" >&2
    cat "$out/probe.log" >&2
    exit 2
fi

# config.h and version.h
if [ -n "${TWINE_CONFIG_DIR:-}" ]; then
    cfg=$(cd "$TWINE_CONFIG_DIR" && pwd)
elif [ -f "$top/config.h" ] && [ -f "$top/include/twine/version.h" ]; then
    cfg=$top
else
    cfg="$out/config"
    # config.status keeps an unchanged config.h's date: a stamp tells when it ran.
    if [ ! -f "$cfg/config.h" ] || [ ! -f "$cfg/include/twine/version.h" ] ||
        [ ! -f "$cfg/configured" ] || [ "$top/configure" -nt "$cfg/configured" ] ||
        [ "$top/Makefile.in" -nt "$cfg/configured" ]; then
        if [ ! -x "$top/configure" ]; then
            echo "fuzz/build.sh: $top has no configure script; run autoreconf -fi there" \
                "or set TWINE_CONFIG_DIR to a configured build directory" >&2
            exit 2
        fi
        mkdir -p "$cfg"
        echo "fuzz/build.sh: configuring in $cfg"
        (cd "$cfg" && "$top/configure" -q CC="$cc" >configure.log 2>&1) ||
            { tail -n 30 "$cfg/configure.log" >&2; exit 2; }
        touch "$cfg/configured"
    fi
fi

# shellcheck disable=SC2086
pkg_cflags=$(pkg-config --cflags libevent libssl libcrypto 2>/dev/null || true)
pkg_libs=$(pkg-config --libs libevent libssl libcrypto 2>/dev/null || echo -levent -lssl -lcrypto)
# UBSan recovers only to skip the findings fuzz/known-ub.supp lists (open
# bugs, each with its reproducer in fuzz/regressions/); every other report
# halts, as the options compiled into each harness say.
san="-fsanitize=address,undefined -fsanitize-recover=undefined"
ubsan_defaults="halt_on_error=1:print_stacktrace=1:suppressions=$top/fuzz/known-ub.supp"
common="-std=gnu11 -g -O1 -fno-omit-frame-pointer \
  -I$cfg -I$cfg/include -I$top/include -I$top/src -I$top/tests -I$top/fuzz \
  ${FUZZ_CFLAGS:-}"
# The library's warnings are the main build's business (clang has a few
# gcc has not); the harnesses must be clean.
lib_warn="-w"
harness_warn="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror"

# The library objects, rebuilt when a source or header is newer.
# shellcheck disable=SC2012
newest_header=$(ls -t "$top"/include/twine/*.h "$top"/include/*.h "$top"/src/*/*.h \
    "$cfg/config.h" | head -n 1)
# Changed flags rebuild everything.
stamp="$out/obj/flags"
flags="$cc $common $lib_warn $pkg_cflags $san"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$flags" ]; then
    rm -f "$out"/obj/*.o
    echo "$flags" >"$stamp"
fi
# The library's sources as configured: libtwine_la_SOURCES and the
# am__append_N variables automake makes of conditional additions, copied out
# of the generated Makefile and evaluated by make alone (-r -R, no rules).
if [ ! -f "$cfg/Makefile" ]; then
    echo "fuzz/build.sh: $cfg has no Makefile to take the library's sources from" >&2
    exit 2
fi
sed -n '/^\(libtwine_la_SOURCES\|am__append_[0-9]*\) *+*=/,/[^\\]$/p' "$cfg/Makefile" \
    >"$out/sources.mk"
# shellcheck disable=SC2016
printf 'print-sources:\n\t@echo $(libtwine_la_SOURCES)\n' >>"$out/sources.mk"
lib_sources=()
for f in $(make -r -R -s -f "$out/sources.mk" print-sources); do
    case $f in *.c) lib_sources+=("$top/$f") ;; esac
done
if [ ${#lib_sources[@]} -lt 10 ]; then
    echo "fuzz/build.sh: found only ${#lib_sources[@]} library sources in $cfg/Makefile" >&2
    exit 1
fi

objs=()
todo=()
for src in "${lib_sources[@]}"; do
    rel=${src#"$top"/}
    obj="$out/obj/${rel//\//_}"
    obj=${obj%.c}.o
    objs+=("$obj")
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
        todo+=("$src" "$obj")
    fi
done
if [ ${#todo[@]} -gt 0 ]; then
    # shellcheck disable=SC2016
    # xargs runs FUZZ_JOBS compilers at a time and fails if any of them does.
    printf '%s\n' "${todo[@]}" |
        xargs -d '\n' -n 2 -P "${FUZZ_JOBS:-2}" sh -c \
            'echo "  CC $1"; exec '"$cc $common $lib_warn $pkg_cflags $san"' -fsanitize=fuzzer-no-link -c "$1" -o "$2"' \
            cc-one
fi
rm -f "$out/obj/libtwine-fuzz.a"
ar rcs "$out/obj/libtwine-fuzz.a" "${objs[@]}"

names=()
for h in "$top"/fuzz/fuzz_*.c; do
    name=$(basename "$h" .c)
    names+=("${name#fuzz_}")
    echo "  LD bin/$name"
    # shellcheck disable=SC2086
    "$cc" $common $harness_warn $pkg_cflags -fsanitize=fuzzer,address,undefined -fsanitize-recover=undefined \
        "-DFUZZ_UBSAN_DEFAULTS=\"$ubsan_defaults\"" \
        "$h" "$out/obj/libtwine-fuzz.a" $pkg_libs -lpthread -ldl -lm -o "$out/bin/$name"
done
echo "fuzz/build.sh: built ${names[*]} in $out/bin"
