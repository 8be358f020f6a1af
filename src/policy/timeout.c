/* SPDX-License-Identifier: MIT */
/*
 * The resettable per-connection timeout (Twisted's TimeoutMixin). One
 * reactor call per set timeout, moved on each reset rather than made anew,
 * so resetting on every data_received costs a timer update and no
 * allocation. The default handler closes in order; a peer that does not
 * read could hold that close for ever, so the timeout stays armed one more
 * period and then aborts.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <twine/policies.h>
#include <twine/transport.h>

static void drop_call(tw_timeout *t)
{
    if (t->call != NULL) {
        tw_call_cancel(t->call);
        tw_call_release(t->call);
        t->call = NULL;
    }
}

static void fired(void *arg)
{
    tw_timeout *t = arg;
    drop_call(t);
    tw_transport *tr = t->protocol->transport;
    if (t->timeout_connection != NULL) {
        t->period = 0; /* the handler may set it again */
        t->timeout_connection(t);
        return;
    }
    if (t->closing || tw_transport_disconnecting(tr)) {
        t->period = 0;
        tw_transport_abort_connection(tr);
        return;
    }
    t->closing = 1;
    tw_transport_set_close_reason(tr, TW_CLOSE_TIMEOUT);
    tw_transport_lose_connection(tr);
    /* The close must finish within one more period. */
    if (tw_reactor_call_later(tr->reactor, t->period, fired, t, &t->call) < 0) {
        t->call = NULL;
        t->period = 0;
    }
}

TW_API void tw_timeout_init(tw_timeout *t, tw_protocol *p, tw_timeout_fn timeout_connection)
{
    t->protocol = p;
    t->timeout_connection = timeout_connection;
    t->period = 0;
    t->call = NULL;
    t->closing = 0;
}

TW_API int tw_timeout_set(tw_timeout *t, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        return -EINVAL;
    if (seconds == 0) {
        drop_call(t);
        t->period = 0;
        return 0;
    }
    tw_transport *tr = t->protocol->transport;
    if (tr == NULL || tr->reactor == NULL)
        return TW_ESTATE;
    if (t->call != NULL && tw_call_reset(t->call, seconds) == 0) {
        t->period = seconds;
        return 0;
    }
    drop_call(t);
    int rc = tw_reactor_call_later(tr->reactor, seconds, fired, t, &t->call);
    if (rc < 0) {
        t->call = NULL;
        t->period = 0;
        return rc;
    }
    t->period = seconds;
    return 0;
}

TW_API void tw_timeout_reset(tw_timeout *t)
{
    if (t->period > 0 && !t->closing && t->call != NULL)
        tw_call_reset(t->call, t->period);
}

TW_API double tw_timeout_period(const tw_timeout *t)
{
    return t->period;
}

TW_API void tw_timeout_cleanup(tw_timeout *t)
{
    drop_call(t);
    t->period = 0;
}
