/* SPDX-License-Identifier: MIT */
/*
 * Built as alias.so but declaring the protocol "aliased": a module file must
 * be named after its protocol, so the loader refuses it.
 */
#include <stddef.h>
#include <twine.h>

static tw_factory *alias_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                      size_t errlen)
{
    (void)r;
    (void)opts;
    (void)err;
    (void)errlen;
    return NULL;
}

TW_PLUGIN(alias, .type = TW_PLUGIN_PROTOCOL, .name = "aliased",
          .description = "named after another protocol",
          .ctx = &(const tw_plugin_protocol){.make_factory = alias_make_factory});
