/* SPDX-License-Identifier: MIT */
/*
 * The reconnecting client service. It connects through the endpoint code
 * with a factory of its own (embedded in the service), which is how it hears
 * of every failed attempt and every lost connection without asking anything
 * of the caller's factory. Each protocol the caller's factory builds is
 * wrapped in a thin protocol that forwards every callback, so the caller's
 * protocol keeps its own factory pointer.
 *
 * Lifetime: the service's factory counts its users like any factory -- the
 * service itself while running, each attempt, each connection -- and the
 * service's memory goes when it was freed and the last user stopped, which
 * is the last thing a closing connection does with its factory.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <twine/log.h>
#include <twine/reconnect.h>
#include <twine/transport.h>

typedef struct wrapper {
    tw_protocol base; /* what the transport sees */
    tw_protocol *inner;
    tw_reconnect *rc;
} wrapper;

struct tw_reconnect {
    tw_factory base; /* the factory every attempt and connection uses */
    tw_reactor *r;
    tw_endpoint ep;
    tw_factory *user;
    tw_reconnect_options o;
    int running;
    int freed;
    unsigned failures;
    double delay;
    unsigned long connections;
    tw_call *retry;
    tw_deferred *attempt; /* ours, while an attempt is under way */
    wrapper *current;
    tw_deferred **waiters; /* from when_connected, one reference each */
    size_t nwaiters, capwaiters;
    uint64_t rng;
};

TW_API void tw_reconnect_options_init(tw_reconnect_options *o)
{
    memset(o, 0, sizeof *o);
    o->initial_delay = 1.0;
    o->factor = 2.0;
    o->max_delay = 60.0;
    o->jitter = 0.1;
}

/* ---------------------------------------------------------------- wrapper */

static void w_made(tw_protocol *p)
{
    wrapper *w = (wrapper *)p;
    w->rc->current = w; /* so a stop from inside connection_made reaches it */
    w->inner->transport = p->transport;
    if (w->inner->ops->connection_made != NULL)
        w->inner->ops->connection_made(w->inner);
}

static void w_data(tw_protocol *p, const void *data, size_t len)
{
    tw_protocol *in = ((wrapper *)p)->inner;
    if (in->ops->data_received != NULL)
        in->ops->data_received(in, data, len);
}

static void w_lost(tw_protocol *p, const tw_failure *reason)
{
    tw_protocol *in = ((wrapper *)p)->inner;
    if (in->ops->connection_lost != NULL)
        in->ops->connection_lost(in, reason);
}

static void w_read_lost(tw_protocol *p)
{
    tw_protocol *in = ((wrapper *)p)->inner;
    in->ops->read_connection_lost(in);
}

static void w_write_lost(tw_protocol *p)
{
    tw_protocol *in = ((wrapper *)p)->inner;
    if (in->ops->write_connection_lost != NULL)
        in->ops->write_connection_lost(in);
}

static void w_pause(tw_protocol *p)
{
    tw_protocol *in = ((wrapper *)p)->inner;
    if (in->ops->pause_producing != NULL)
        in->ops->pause_producing(in);
}

static void w_resume(tw_protocol *p)
{
    tw_protocol *in = ((wrapper *)p)->inner;
    if (in->ops->resume_producing != NULL)
        in->ops->resume_producing(in);
}

static void w_destroy(tw_protocol *p)
{
    wrapper *w = (wrapper *)p;
    if (w->rc->current == w)
        w->rc->current = NULL;
    if (w->inner->ops->destroy != NULL)
        w->inner->ops->destroy(w->inner);
    free(w);
}

/* Whether a peer's half-close closes the connection is decided by the
 * presence of read_connection_lost, so the wrapper mirrors the inner one. */
static const tw_protocol_ops wrapper_ops = {
    .connection_made = w_made,
    .data_received = w_data,
    .connection_lost = w_lost,
    .write_connection_lost = w_write_lost,
    .pause_producing = w_pause,
    .resume_producing = w_resume,
    .destroy = w_destroy,
};

static const tw_protocol_ops wrapper_half_close_ops = {
    .connection_made = w_made,
    .data_received = w_data,
    .connection_lost = w_lost,
    .read_connection_lost = w_read_lost,
    .write_connection_lost = w_write_lost,
    .pause_producing = w_pause,
    .resume_producing = w_resume,
    .destroy = w_destroy,
};

/* ---------------------------------------------------------------- waiters */

static void fire_waiters(tw_reconnect *rc, tw_protocol *p, const tw_failure *why)
{
    /* Callbacks may add waiters or stop the service: work on a copy. */
    tw_deferred **list = rc->waiters;
    size_t n = rc->nwaiters;
    rc->waiters = NULL;
    rc->nwaiters = rc->capwaiters = 0;
    for (size_t i = 0; i < n; i++) {
        if (why != NULL)
            tw_deferred_errback(list[i], tw_failure_new(tw_failure_code(why), "%s",
                                                        tw_failure_message(why)));
        else
            tw_deferred_callback(list[i], p, NULL);
        tw_deferred_unref(list[i]);
    }
    free(list);
}

static void cancel_waiter(tw_deferred *d, void *arg)
{
    tw_reconnect *rc = arg;
    for (size_t i = 0; i < rc->nwaiters; i++) {
        if (rc->waiters[i] == d) {
            memmove(&rc->waiters[i], &rc->waiters[i + 1],
                    (rc->nwaiters - i - 1) * sizeof rc->waiters[0]);
            rc->nwaiters--;
            tw_deferred_unref(d); /* the canceller's caller holds one */
            return;
        }
    }
}

/* ---------------------------------------------------------------- backoff */

static double random01(tw_reconnect *rc)
{
    /* xorshift64*: plenty for spreading retries, and reproducible by seed. */
    rc->rng ^= rc->rng >> 12;
    rc->rng ^= rc->rng << 25;
    rc->rng ^= rc->rng >> 27;
    return (double)((rc->rng * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

static void connect_now(tw_reconnect *rc);

static void on_retry(void *arg)
{
    tw_reconnect *rc = arg;
    tw_call_release(rc->retry);
    rc->retry = NULL;
    rc->delay = 0;
    connect_now(rc);
}

static void schedule_retry(tw_reconnect *rc)
{
    if (!rc->running || rc->retry != NULL)
        return;
    if (tw_reactor_stopping(rc->r)) {
        /* The reactor's stop ends the service, as tw_reconnect_stop()
         * would: once the stop completed it may be started again. */
        tw_reconnect_stop(rc, 0);
        return;
    }
    /* initial_delay * factor^(n-1), capped: multiply until the cap. */
    unsigned n = rc->failures > 0 ? rc->failures : 1;
    double d = rc->o.initial_delay;
    for (unsigned i = 1; i < n && d < rc->o.max_delay && rc->o.factor > 1.0; i++)
        d *= rc->o.factor;
    if (d > rc->o.max_delay)
        d = rc->o.max_delay;
    if (rc->o.jitter > 0)
        d *= 1.0 + rc->o.jitter * (2.0 * random01(rc) - 1.0);
    rc->delay = d;
    if (tw_reactor_call_later(rc->r, d, on_retry, rc, &rc->retry) < 0) {
        rc->delay = 0;
        tw_log(TW_LOG_ERROR, "reconnect", "cannot schedule a retry: out of memory");
    }
}

/* ---------------------------------------------------------------- attempts */

static void give_up(tw_reconnect *rc, const tw_failure *why)
{
    char where[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(&rc->ep, where, sizeof where);
    tw_failure *f =
        tw_failure_new(tw_failure_code(why), "gave up connecting to %s after %u failed attempts: %s",
                       where, rc->failures, tw_failure_message(why));
    tw_log(TW_LOG_WARN, "reconnect", "%s", tw_failure_message(f));
    rc->running = 0;
    fire_waiters(rc, NULL, f);
    tw_failure_unref(f);
    tw_factory_stop(&rc->base);
}

static void on_connected(tw_deferred *d, tw_result *res, void *arg)
{
    tw_reconnect *rc = arg;
    wrapper *w = tw_result_value(res);
    rc->attempt = NULL;
    tw_deferred_unref(d); /* the chain holds it until we return */
    rc->failures = 0;
    rc->connections++;
    rc->current = w;
    fire_waiters(rc, w->inner, NULL);
}

static void on_failed(tw_deferred *d, tw_result *res, void *arg)
{
    tw_reconnect *rc = arg;
    tw_failure *why = tw_result_take_failure(res);
    rc->attempt = NULL;
    tw_deferred_unref(d);
    if (rc->running) { /* not our own cancel from stop */
        rc->failures++;
        if (rc->o.max_retries > 0 && rc->failures > rc->o.max_retries)
            give_up(rc, why);
        else
            schedule_retry(rc);
    }
    tw_failure_unref(why);
}

static void connect_now(tw_reconnect *rc)
{
    if (!rc->running || rc->current != NULL || rc->attempt != NULL)
        return;
    tw_deferred *d = tw_endpoint_connect(rc->r, &rc->ep, &rc->base);
    if (d == NULL) {
        rc->failures++;
        schedule_retry(rc);
        return;
    }
    rc->attempt = d;
    /* A deferred that failed already runs on_failed inside this call. */
    if (tw_deferred_add_callbacks(d, on_connected, on_failed, rc) < 0) {
        rc->attempt = NULL;
        tw_deferred_cancel(d);
        tw_deferred_unref(d);
        rc->failures++;
        schedule_retry(rc);
    }
}

/* ---------------------------------------------------------------- factory */

static tw_protocol *svc_build(tw_factory *f, const tw_address *peer)
{
    tw_reconnect *rc = (tw_reconnect *)f;
    wrapper *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    tw_protocol *in = rc->user->ops->build_protocol(rc->user, peer);
    if (in == NULL) {
        free(w);
        return NULL;
    }
    in->factory = rc->user;
    w->inner = in;
    w->rc = rc;
    w->base.ops = in->ops->read_connection_lost != NULL ? &wrapper_half_close_ops : &wrapper_ops;
    return &w->base;
}

static void svc_start(tw_factory *f)
{
    tw_factory_start(((tw_reconnect *)f)->user);
}

static void svc_stop(tw_factory *f)
{
    tw_reconnect *rc = (tw_reconnect *)f;
    tw_factory_stop(rc->user);
    if (rc->freed) { /* the last user is gone: nothing refers to us now */
        free(rc->waiters);
        free(rc);
    }
}

static void svc_failed(tw_factory *f, const tw_failure *reason)
{
    tw_reconnect *rc = (tw_reconnect *)f;
    if (rc->user->ops->client_connection_failed != NULL)
        rc->user->ops->client_connection_failed(rc->user, reason);
}

static void svc_lost(tw_factory *f, const tw_failure *reason)
{
    tw_reconnect *rc = (tw_reconnect *)f;
    if (rc->user->ops->client_connection_lost != NULL)
        rc->user->ops->client_connection_lost(rc->user, reason);
    schedule_retry(rc); /* after a connection, the count starts again */
}

static const tw_factory_ops service_factory_ops = {
    .build_protocol = svc_build,
    .start_factory = svc_start,
    .stop_factory = svc_stop,
    .client_connection_failed = svc_failed,
    .client_connection_lost = svc_lost,
};

/* ---------------------------------------------------------------- public */

TW_API int tw_reconnect_new(tw_reactor *r, const tw_endpoint *e, tw_factory *f,
                            const tw_reconnect_options *o, tw_reconnect **out)
{
    tw_reconnect_options defaults;
    if (o == NULL) {
        tw_reconnect_options_init(&defaults);
        o = &defaults;
    }
    if (r == NULL || e == NULL || f == NULL || out == NULL || !e->client)
        return -EINVAL;
    if (!isfinite(o->initial_delay) || o->initial_delay < 0 || !isfinite(o->factor) ||
        o->factor < 1 || !isfinite(o->max_delay) || o->max_delay < o->initial_delay ||
        !(o->jitter >= 0 && o->jitter <= 1))
        return -EINVAL;
    tw_reconnect *rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return -ENOMEM;
    tw_factory_init(&rc->base, &service_factory_ops);
    rc->r = r;
    rc->ep = *e;
    rc->user = f;
    rc->o = *o;
    rc->rng = o->seed != 0 ? o->seed
                           : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)rc;
    if (rc->rng == 0)
        rc->rng = 0x9e3779b97f4a7c15ULL;
    *out = rc;
    return 0;
}

TW_API int tw_reconnect_start(tw_reconnect *rc)
{
    if (rc->running)
        return TW_ESTATE;
    if (tw_reactor_stopping(rc->r))
        return TW_ESHUTDOWN;
    rc->running = 1;
    rc->failures = 0;
    tw_factory_start(&rc->base); /* the service's own use, until it stops */
    connect_now(rc);
    return 0;
}

TW_API void tw_reconnect_stop(tw_reconnect *rc, int disconnect)
{
    if (rc->running) {
        rc->running = 0;
        if (rc->retry != NULL) {
            tw_call_cancel(rc->retry);
            tw_call_release(rc->retry);
            rc->retry = NULL;
        }
        rc->delay = 0;
        tw_deferred *d = rc->attempt;
        if (d != NULL) { /* on_failed (or, too late, on_connected) runs inside */
            tw_deferred_ref(d);
            tw_deferred_cancel(d);
            tw_deferred_unref(d);
        }
        tw_failure *why = tw_failure_new(TW_ECANCELLED, "the reconnecting service was stopped");
        fire_waiters(rc, NULL, why);
        tw_failure_unref(why);
        if (disconnect && rc->current != NULL)
            tw_transport_lose_connection(rc->current->base.transport);
        tw_factory_stop(&rc->base); /* the service's own use */
        return;
    }
    if (disconnect && rc->current != NULL)
        tw_transport_lose_connection(rc->current->base.transport);
}

TW_API void tw_reconnect_free(tw_reconnect *rc)
{
    if (rc == NULL)
        return;
    tw_reconnect_stop(rc, 1);
    rc->freed = 1;
    if (rc->base.users == 0) { /* else the last user's stop frees it */
        free(rc->waiters);
        free(rc);
    }
}

TW_API tw_deferred *tw_reconnect_when_connected(tw_reconnect *rc)
{
    if (rc->current != NULL)
        return tw_deferred_succeed(rc->current->inner, NULL);
    if (rc->nwaiters == rc->capwaiters) {
        size_t cap = rc->capwaiters ? rc->capwaiters * 2 : 4;
        tw_deferred **grown = realloc(rc->waiters, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        rc->waiters = grown;
        rc->capwaiters = cap;
    }
    tw_deferred *d = tw_deferred_new(cancel_waiter, rc);
    if (d == NULL)
        return NULL;
    rc->waiters[rc->nwaiters++] = d;
    return tw_deferred_ref(d);
}

TW_API tw_protocol *tw_reconnect_protocol(const tw_reconnect *rc)
{
    return rc->current != NULL ? rc->current->inner : NULL;
}

TW_API unsigned tw_reconnect_attempts(const tw_reconnect *rc)
{
    return rc->failures;
}

TW_API double tw_reconnect_delay(const tw_reconnect *rc)
{
    return rc->retry != NULL ? rc->delay : 0;
}

TW_API unsigned long tw_reconnect_connections(const tw_reconnect *rc)
{
    return rc->connections;
}

TW_API int tw_reconnect_running(const tw_reconnect *rc)
{
    return rc->running;
}
