/* SPDX-License-Identifier: MIT */
/*
 * The TLS tests' certificates (tlscerts.h): one directory per test
 * program, made by the shell script the interop tests also use.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tlscerts.h"

static char certs[PATH_MAX];

void tu_tls_make_certs(const char *tag)
{
    const char *src = getenv("TWINE_SRCDIR");
    snprintf(certs, sizeof certs, "%s/%s.%ld", P_tmpdir, tag, (long)getpid());
    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/tls/mkcerts.sh' '%s' >/dev/null", src ? src : ".",
             certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the test certificates with %s\n", cmd);
        exit(99);
    }
}

const char *tu_tls_cert(const char *name)
{
    static char paths[8][PATH_MAX + 32];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", certs, name);
    return p;
}

void tu_tls_remove_certs(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", certs);
}
