/* SPDX-License-Identifier: MIT */
/*
 * Built as echo.so: a module claiming the name of the built-in echo module.
 * Built-ins come first in the search order, so the loader refuses it as a
 * duplicate rather than letting a file silently replace a built-in.
 */
#include <stddef.h>
#include <twine.h>

static tw_factory *dupecho_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                        size_t errlen)
{
    (void)r;
    (void)opts;
    (void)err;
    (void)errlen;
    return NULL;
}

TW_PLUGIN(dupecho, .type = TW_PLUGIN_PROTOCOL, .name = "echo", .description = "a second echo",
          .ctx = &(const tw_plugin_protocol){.make_factory = dupecho_make_factory});
