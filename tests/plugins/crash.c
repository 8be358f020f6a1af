/* SPDX-License-Identifier: MIT */
/*
 * A module that crashes, for reactord's crash reports: its make_factory
 * always dies of SIGSEGV; while loading it dies too when the environment
 * has TWINE_TEST_CRASH_ON_LOAD (so the other tests can load it safely). It
 * also appends the effective uid it was loaded as to the file named by
 * TWINE_TEST_LOAD_RECORD, which shows who runs a module's constructors.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <twine.h>

__attribute__((constructor)) static void crash_loaded(void)
{
    const char *record = getenv("TWINE_TEST_LOAD_RECORD");
    if (record != NULL) {
        FILE *f = fopen(record, "a");
        if (f != NULL) {
            fprintf(f, "loaded as uid %u\n", (unsigned)geteuid());
            fclose(f);
        }
    }
    if (getenv("TWINE_TEST_CRASH_ON_LOAD") != NULL)
        raise(SIGSEGV);
}

static tw_factory *crash_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                      size_t errlen)
{
    (void)r;
    (void)opts;
    (void)err;
    (void)errlen;
    raise(SIGSEGV);
    return NULL;
}

TW_PLUGIN(crash, .type = TW_PLUGIN_PROTOCOL, .name = "crash",
          .description = "crashes when it starts (a test module)",
          .ctx = &(const tw_plugin_protocol){.make_factory = crash_make_factory});
