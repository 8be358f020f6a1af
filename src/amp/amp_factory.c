/* SPDX-License-Identifier: MIT */
/*
 * The AMP factory: what every connection it builds shares (the responder
 * table, the size limits, the connected and lost callbacks). The factory
 * owns its dispatcher; each connection points at the factory, which the
 * listener or connector keeps alive while connections exist.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <twine/amp.h>

#include "amp/amp_conn_internal.h"

static const tw_factory_ops amp_factory_ops;

static tw__amp_factory *as_amp_factory(tw_factory *f)
{
    if (f == NULL || f->ops != &amp_factory_ops)
        return NULL;
    return tw_container_of(f, tw__amp_factory, base);
}

static tw_protocol *amp_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    return tw__amp_connection_new(as_amp_factory(f));
}

static void amp_factory_destroy(tw_factory *f)
{
    tw__amp_factory *af = as_amp_factory(f);
    tw__amp_dispatcher_release(&af->dispatcher);
    tw__amp_call_stats_release(&af->calls);
    free(af);
}

static const tw_factory_ops amp_factory_ops = {
    .build_protocol = amp_build,
    .destroy = amp_factory_destroy,
};

TW_API tw_factory *tw_amp_factory_new(void)
{
    tw__amp_factory *af = calloc(1, sizeof *af);
    if (af == NULL)
        return NULL;
    tw_factory_init(&af->base, &amp_factory_ops);
    af->max_box = TW_AMP_DEFAULT_MAX_BOX_SIZE;
    af->max_pending = TW_AMP_DEFAULT_MAX_PENDING;
    return &af->base;
}

TW_API tw_amp_dispatcher *tw_amp_factory_dispatcher(tw_factory *f)
{
    tw__amp_factory *af = as_amp_factory(f);
    return af != NULL ? &af->dispatcher : NULL;
}

TW_API int tw_amp_factory_set_callbacks(tw_factory *f, tw_amp_connected_fn connected,
                                        tw_amp_lost_fn lost, void *arg)
{
    tw__amp_factory *af = as_amp_factory(f);
    if (af == NULL)
        return -EINVAL;
    af->connected = connected;
    af->lost = lost;
    af->cb_arg = arg;
    return 0;
}

TW_API int tw_amp_factory_set_limits(tw_factory *f, size_t max_box_size, size_t max_pending)
{
    tw__amp_factory *af = as_amp_factory(f);
    if (af == NULL)
        return -EINVAL;
    af->max_box = max_box_size ? max_box_size : TW_AMP_DEFAULT_MAX_BOX_SIZE;
    af->max_pending = max_pending ? max_pending : TW_AMP_DEFAULT_MAX_PENDING;
    return 0;
}
