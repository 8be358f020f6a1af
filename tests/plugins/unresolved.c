/* SPDX-License-Identifier: MIT */
/*
 * A module that needs a symbol nothing provides, as one built against a
 * newer libtwine would: dlopen(RTLD_NOW) must fail at load time, not at the
 * first connection.
 */
#include <stddef.h>
#include <twine.h>

extern tw_factory *tw_factory_that_does_not_exist(void);

static tw_factory *unresolved_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                           size_t errlen)
{
    (void)r;
    (void)opts;
    (void)err;
    (void)errlen;
    return tw_factory_that_does_not_exist();
}

TW_PLUGIN(unresolved, .type = TW_PLUGIN_PROTOCOL, .name = "unresolved",
          .description = "needs a missing symbol",
          .ctx = &(const tw_plugin_protocol){.make_factory = unresolved_make_factory});
