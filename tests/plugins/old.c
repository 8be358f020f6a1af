/* SPDX-License-Identifier: MIT */
/*
 * A module built for ABI 1.0, before the descriptor became a type and a
 * context: its descriptor holds make_factory where ABI 2 has its type. A
 * loader of ABI 2 must refuse it, naming both versions, after reading only
 * the magic and version every major shares. The 1.0 layout is spelled out
 * here, as that old header defined it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <twine.h>

typedef struct {
    uint32_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *name;
    const char *description;
    const tw_option_spec *options;
    tw_plugin_factory_fn make_factory;
} plugin_abi_1_0;

static void old_data(tw_protocol *p, const void *data, size_t len)
{
    tw_transport_write(p->transport, data, len);
}

static void old_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void old_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops old_ops = {
    .data_received = old_data,
    .connection_lost = old_lost,
    .destroy = old_destroy,
};

static tw_protocol *old_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    tw_protocol *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->ops = &old_ops;
    return p;
}

static void old_factory_destroy(tw_factory *f)
{
    free(f);
}

static const tw_factory_ops old_factory_ops = {
    .build_protocol = old_build,
    .destroy = old_factory_destroy,
};

static tw_factory *old_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                    size_t errlen)
{
    (void)r;
    (void)opts;
    (void)err;
    (void)errlen;
    tw_factory *f = malloc(sizeof *f);
    if (f != NULL)
        tw_factory_init(f, &old_factory_ops);
    return f;
}

TW_API const plugin_abi_1_0 tw_plugin_descriptor = {
    .magic = TW_PLUGIN_MAGIC,
    .abi_major = 1,
    .abi_minor = 0,
    .name = "old",
    .description = "echo, built for module ABI 1.0",
    .options = NULL,
    .make_factory = old_make_factory,
};
