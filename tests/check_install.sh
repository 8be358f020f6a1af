#!/bin/sh
# SPDX-License-Identifier: MIT
# What `make install` gives an embedder works on its own. This installs
# twine into a temporary DESTDIR, checks that the headers, libtwine, twine.pc,
# reactord, the manual pages (with nothing left unexpanded in them), the
# documentation and the examples are there, then builds examples/embed out of
# tree the way its Makefile says -- with nothing but pkg-config and the
# installed files -- links it twice (against the installed libtwine.so, and
# statically against libtwine.a with `pkg-config --static`, which proves
# twine.pc's Requires.private/Libs.private are complete), and runs both
# builds' --selftest: one echo round trip through a host-owned event_base.
# Before any of that, the example built in the tree must pass its selftest.
# Last, a unit test using the test kit (<twine/testing.h>) builds the same
# way and passes.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
# make check runs this from the top of the build tree and sets these.
builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
MAKE=${TWINE_MAKE:-make}
CC=${TWINE_CC:-cc}
# The build's own flags, so a sanitizer build links its examples alike.
CFLAGS=${TWINE_CFLAGS:-}
LDFLAGS=${TWINE_LDFLAGS:-}
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: pkg-config not found"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-install.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/dest

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }
# Run with a time limit where coreutils' timeout exists.
bounded() {
    if command -v timeout >/dev/null 2>&1; then timeout 30 "$@"; else "$@"; fi
}

# 0. The example as built in the tree.
if bounded "$builddir/examples/embed/embed" --selftest >"$tmp/tree.log" 2>&1; then
    ok "examples/embed built in the tree passes --selftest"
else
    fail "examples/embed --selftest (build tree) failed:"
    sed 's/^/    /' "$tmp/tree.log"
fi

# 1. Install. make check installs into TWINE_CHAT_DESTDIR before any test
# starts (check_DATA), so use that; installing from here, while other tests
# run, could relink binaries under them. Outside make check, install now.
if [ -n "${TWINE_CHAT_DESTDIR:-}" ] && [ -d "$TWINE_CHAT_DESTDIR" ]; then
    dest=$TWINE_CHAT_DESTDIR
    ok "make install DESTDIR=<build>/tests/chat-dest (made before the tests ran)"
else
    # The parent make's flags (jobserver, TESTS=...) are not ours.
    # shellcheck disable=SC2086
    if ! (cd "$builddir" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $MAKE install DESTDIR="$dest") \
        >"$tmp/install.log" 2>&1; then
        echo "FAIL: make install DESTDIR=$dest failed:"
        tail -30 "$tmp/install.log" | sed 's/^/    /'
        exit 1
    fi
    ok "make install DESTDIR=<tmp>"
fi

pc=$(find "$dest" -path '*/pkgconfig/twine.pc' | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no pkgconfig/twine.pc was installed"; exit 1; }
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
PKG_CONFIG_PATH=$pcdir
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
ok "twine.pc installed in ${pcdir#"$dest"}"

# 2. The installed files.
incdir=$(pkg-config --variable=includedir twine)
case $incdir in "$dest"/*) ;; *) incdir=$dest$incdir ;; esac
for h in "$srcdir"/include/twine/*.h; do
    [ -f "$incdir/twine/$(basename "$h")" ] || fail "header twine/$(basename "$h") was not installed"
done
for f in twine.h twine/version.h; do
    [ -f "$incdir/$f" ] || fail "header $f was not installed"
done
[ $failures -eq 0 ] && ok "every public header installed under ${incdir#"$dest"}"
[ -e "$libdir/libtwine.so" ] || fail "libtwine.so was not installed in ${libdir#"$dest"}"
soname=""
for f in "$libdir"/libtwine.so.[0-9]*; do
    case $f in *.so.*.*) ;; *) [ -e "$f" ] && soname=$(basename "$f") ;; esac
done
if [ -n "$soname" ]; then ok "libtwine installed with its soname link $soname"; else
    fail "no libtwine.so.N soname link in ${libdir#"$dest"}"
fi
bin=$dest${TWINE_SBINDIR:-/usr/local/sbin}
if [ -x "$bin/reactord" ]; then ok "reactord installed"; else fail "reactord was not installed in $bin"; fi
mandir=$dest${TWINE_MANDIR:-/usr/local/share/man}
pages=0
for page in "$srcdir"/*.[1-8] "$srcdir"/docs/*.[1-8] "$srcdir"/docs/man/*.[1-8]; do
    [ -f "$page" ] || continue
    name=$(basename "$page")
    section=${name##*.}
    if [ -f "$mandir/man$section/$name" ]; then pages=$((pages + 1)); else
        fail "manual page $name was not installed in ${mandir#"$dest"}/man$section"
    fi
done
if [ $pages -gt 0 ]; then ok "$pages manual page(s) installed"; else fail "no manual page was installed"; fi
# An installed page must read as written: no make variable or configure
# substitution left unexpanded, such as $(pkglibdir), ${libdir} or @bindir@
# (a shell's "$(cat FILE)" in an example is meant).
unexpanded='\$\([A-Za-z_][A-Za-z0-9_]*\)|\$\{(prefix|exec_prefix|[a-z_]*dir)\}|@[A-Za-z_]+@'
for page in "$mandir"/man*/*; do
    [ -f "$page" ] || continue
    if grep -n -E "$unexpanded" "$page" >"$tmp/unexpanded"; then
        fail "the installed ${page#"$dest"} holds unexpanded text:"
        sed 's/^/    /' "$tmp/unexpanded"
    fi
done
# The documentation and the examples, where packagers and readers look.
docdir=$dest${TWINE_DOCDIR:-/usr/local/share/doc/twine}
for f in README.md COPYING tutorial.md api.md; do
    [ -f "$docdir/$f" ] || fail "$f was not installed in ${docdir#"$dest"}"
done
missing_examples=0
for f in $(cd "$srcdir" && find examples -type f \( -name '*.c' -o -name '*.h' -o -name Makefile \)); do
    if [ ! -f "$docdir/$f" ]; then
        fail "$f was not installed in ${docdir#"$dest"}/examples"
        missing_examples=1
    fi
done
[ $missing_examples -eq 0 ] && ok "the docs and every example installed in ${docdir#"$dest"}"

# 3. twine.pc itself.
version=$(sed -n 's/^#define TW_VERSION_STRING "\(.*\)"/\1/p' "$builddir/include/twine/version.h")
modversion=$(pkg-config --modversion twine)
if [ "$modversion" = "$version" ]; then ok "pkg-config --modversion twine is $version"; else
    fail "pkg-config --modversion twine says '$modversion', the headers '$version'"
fi
if pkg-config --print-requires-private twine | grep -q '^libevent'; then
    ok "twine.pc: Requires.private names libevent"
else
    fail "twine.pc has no Requires.private: libevent"
fi
if pkg-config --libs twine | grep -q -- '-levent'; then
    fail "pkg-config --libs twine leaks -levent into a shared link (belongs in Requires.private)"
fi

# 4. examples/embed, out of tree, with its own Makefile: shared libtwine.
mkdir "$tmp/embed"
cp "$srcdir/examples/embed/embed.c" "$srcdir/examples/embed/Makefile" "$tmp/embed/"
# shellcheck disable=SC2086
if (cd "$tmp/embed" &&
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $MAKE CC="$CC" CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS") \
    >"$tmp/build.log" 2>&1; then
    ok "examples/embed builds out of tree with its Makefile and pkg-config"
    if LD_LIBRARY_PATH=$libdir bounded "$tmp/embed/embed" --selftest >"$tmp/run.log" 2>&1; then
        ok "the out-of-tree embed passes --selftest against the installed libtwine.so"
    else
        fail "the out-of-tree embed --selftest failed:"
        sed 's/^/    /' "$tmp/run.log"
    fi
    if command -v ldd >/dev/null 2>&1; then
        if LD_LIBRARY_PATH=$libdir ldd "$tmp/embed/embed" | grep -q "$libdir/libtwine.so"; then
            ok "it runs with the installed libtwine.so"
        else
            fail "the out-of-tree embed does not use $libdir/libtwine.so"
        fi
    fi
else
    fail "examples/embed does not build out of tree:"
    sed 's/^/    /' "$tmp/build.log"
fi

# 5. The static link: `pkg-config --static` alone must bring everything
#    libtwine.a needs (libevent, pthreads, libm, libdl ...). Only libtwine
#    is linked statically; the system libraries stay shared.
if [ -f "$libdir/libtwine.a" ]; then
    # All of libtwine.a, not only the members embed happens to use, so that
    # Libs.private must cover the whole library.
    archive=$libdir/libtwine.a
    $CC -Wl,--help 2>/dev/null | grep -q -- --whole-archive &&
        archive="-Wl,--whole-archive $archive -Wl,--no-whole-archive"
    libs=""
    for w in $(pkg-config --static --libs twine); do
        [ "$w" = -ltwine ] && w=$archive
        libs="$libs $w"
    done
    # shellcheck disable=SC2046,SC2086
    if $CC $CFLAGS $(pkg-config --cflags twine) -o "$tmp/embed-static" \
        "$srcdir/examples/embed/embed.c" $libs $LDFLAGS >"$tmp/static.log" 2>&1; then
        ok "embed links statically with: pkg-config --static --libs twine"
        if command -v readelf >/dev/null 2>&1 &&
            readelf -d "$tmp/embed-static" | grep NEEDED | grep -q libtwine; then
            fail "the static build still needs libtwine.so"
        fi
        if bounded env -u LD_LIBRARY_PATH "$tmp/embed-static" --selftest >"$tmp/srun.log" 2>&1; then
            ok "the static embed passes --selftest"
        else
            fail "the static embed --selftest failed:"
            sed 's/^/    /' "$tmp/srun.log"
        fi
    else
        fail "a static link with \`pkg-config --static --libs twine\` ($libs) fails:"
        sed 's/^/    /' "$tmp/static.log"
    fi
else
    echo "note: no libtwine.a installed (--disable-static); the static link is not checked"
fi

# 6. A protocol's unit test, out of tree: <twine/testing.h> is installed and
#    its kit (string transport, pump, clock, result readers) is in the
#    installed libtwine, so `pkg-config twine` is all a test needs.
mkdir "$tmp/kit"
cat >"$tmp/kit/echo_test.c" <<'EOF_C'
/* echo_test: the built-in echo protocol, tested with the installed kit. */
#include <stdio.h>
#include <twine.h>
#include <twine/testing.h>

static void answer(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tw_result_set_value(res, arg, NULL);
}

int main(void)
{
    char err[128];
    const tw_plugin *echo = tw_plugin_builtin_find("echo");
    tw_factory *f = echo != NULL ? echo->make_factory(NULL, NULL, err, sizeof err) : NULL;
    if (f == NULL)
        return 2;
    tw_clock *clock = tw_clock_new();
    tw_string_transport *t = tw_string_transport_open(tw_clock_reactor(clock), f);
    tw_string_transport_feed_str(t, "ping");
    int ok = tw_string_transport_output_is(t, "ping");
    tw_transport_lose_connection(&t->base);
    ok = ok && tw_string_transport_run_close(t) == 1 && t->lost_code == TW_EDONE;
    tw_string_transport_free(t);
    static int value = 7;
    tw_deferred *d = tw_defer_later(tw_clock_reactor(clock), 60, answer, &value);
    void *got = NULL;
    ok = ok && tw_deferred_success_result(d, &got, NULL) == TW_ESTATE;
    ok = ok && tw_clock_advance(clock, 60) == 0;
    ok = ok && tw_deferred_success_result(d, &got, NULL) == 0 && got == &value;
    tw_deferred_unref(d);
    tw_clock_free(clock);
    tw_factory_free(f);
    printf("%s\n", ok ? "echo_test: passed" : "echo_test: FAILED");
    return ok ? 0 : 1;
}
EOF_C
# shellcheck disable=SC2046,SC2086
if $CC $CFLAGS -std=gnu11 -Wall -Wextra -Werror $(pkg-config --cflags twine) -o "$tmp/kit/echo_test" \
    "$tmp/kit/echo_test.c" $(pkg-config --libs twine) $LDFLAGS >"$tmp/kit.log" 2>&1; then
    ok "a unit test using <twine/testing.h> builds out of tree with pkg-config twine"
    if LD_LIBRARY_PATH=$libdir bounded "$tmp/kit/echo_test" >"$tmp/kitrun.log" 2>&1; then
        ok "it passes against the installed libtwine.so"
    else
        fail "the out-of-tree kit test failed:"
        sed 's/^/    /' "$tmp/kitrun.log"
    fi
else
    fail "a unit test using <twine/testing.h> does not build against the installed twine:"
    sed 's/^/    /' "$tmp/kit.log"
fi

if [ $failures -gt 0 ]; then
    echo "$failures install check(s) failed"
    exit 1
fi
echo "PASS: the installed twine is complete; examples/embed and a test kit user build and run against it"
exit 0
