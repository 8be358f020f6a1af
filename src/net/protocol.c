/* SPDX-License-Identifier: MIT */
/*
 * Factory bookkeeping: start_factory and stop_factory bracket the time a
 * factory is in use, counted across all the listeners and client
 * connections that share it, as Twisted's doStart/doStop do.
 */
#include "config.h"

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
