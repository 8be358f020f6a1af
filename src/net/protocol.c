/* SPDX-License-Identifier: MIT */
/*
 * Factory bookkeeping: start_factory and stop_factory bracket the time a
 * factory is in use, counted across all the listeners and client
 * connections that share it, as Twisted's doStart/doStop do; and the
 * factory of one protocol type, as Twisted's Factory.forProtocol.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <twine/protocol.h>

TW_API void tw_factory_init(tw_factory *f, const tw_factory_ops *ops)
{
    f->ops = ops;
    f->users = 0;
}

TW_API void tw_factory_start(tw_factory *f)
{
    if (f->users++ == 0 && f->ops->start_factory != NULL)
        f->ops->start_factory(f);
}

TW_API void tw_factory_stop(tw_factory *f)
{
    if (f->users > 0 && --f->users == 0 && f->ops->stop_factory != NULL)
        f->ops->stop_factory(f);
}

TW_API void tw_factory_free(tw_factory *f)
{
    if (f != NULL && f->ops->destroy != NULL)
        f->ops->destroy(f);
}

/*
 * tw_factory_for_protocol(): the factory holds the protocol size and a copy
 * of the caller's ops whose destroy is its own, so that the memory the
 * factory allocated is freed by the factory's code, whatever the caller's
 * destroy does. A protocol finds the factory again through its ops pointer,
 * which points into the factory.
 */
typedef struct {
    tw_factory base;
    tw_protocol_ops ops;
    void (*user_destroy)(tw_protocol *p);
    size_t size;
} for_protocol_factory;

static void for_protocol_destroy(tw_protocol *p)
{
    for_protocol_factory *f = tw_container_of(p->ops, for_protocol_factory, ops);
    if (f->user_destroy != NULL)
        f->user_destroy(p);
    free(p);
}

static tw_protocol *for_protocol_build(tw_factory *base, const tw_address *peer)
{
    (void)peer;
    for_protocol_factory *f = tw_container_of(base, for_protocol_factory, base);
    tw_protocol *p = calloc(1, f->size);
    if (p != NULL)
        p->ops = &f->ops;
    return p;
}

static void for_protocol_factory_destroy(tw_factory *base)
{
    free(tw_container_of(base, for_protocol_factory, base));
}

static const tw_factory_ops for_protocol_factory_ops = {
    .build_protocol = for_protocol_build,
    .destroy = for_protocol_factory_destroy,
};

TW_API tw_factory *tw_factory_for_protocol(const tw_protocol_ops *ops, size_t size)
{
    if (ops == NULL || size < sizeof(tw_protocol)) {
        errno = EINVAL;
        return NULL;
    }
    for_protocol_factory *f = malloc(sizeof *f);
    if (f == NULL)
        return NULL;
    tw_factory_init(&f->base, &for_protocol_factory_ops);
    f->ops = *ops;
    f->user_destroy = ops->destroy;
    f->ops.destroy = for_protocol_destroy;
    f->size = size;
    return &f->base;
}
