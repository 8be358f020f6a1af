/* SPDX-License-Identifier: MIT */
/*
 * Deferreds and the reactor's clock: tw_deferred_add_timeout (Twisted's
 * Deferred.addTimeout) and tw_defer_later (task.deferLater).
 *
 * Both pair a timed call with a deferred, and each side may finish first,
 * so the small record between them is counted: one reference for the timer
 * until it ran or was cancelled, one for the deferred's side (a callback
 * pair, or a canceller) until that ran or was dropped. While its timer is
 * pending the record holds the deferred, as the reference rule says a
 * producer does.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <twine/deferred.h>
#include <twine/reactor.h>

#include "defer/deferred_internal.h"

/* ---- add_timeout ------------------------------------------------------- */

typedef struct timeout {
    int refs;
    tw_deferred *d; /* held while the timer is pending */
    tw_call *call;  /* our handle, until released */
    double seconds;
    unsigned char timed_out; /* the timer went off and cancelled d */
    unsigned char firing;    /* inside timeout_fired */
} timeout;

static void timeout_unref(void *arg)
{
    timeout *t = arg;
    if (--t->refs == 0)
        free(t);
}

static void timeout_fired(void *arg)
{
    timeout *t = arg;
    tw_deferred *d = t->d;
    t->d = NULL;
    t->timed_out = 1;
    t->firing = 1;
    tw_deferred_cancel(d);
    t->firing = 0;
    tw_call_release(t->call);
    t->call = NULL;
    tw_deferred_unref(d);
    timeout_unref(t);
}

/* The timer will not run (we cancelled it, or the reactor dropped it when
 * it stopped or was freed): let go of what it held. */
static void timeout_dropped(void *arg)
{
    timeout *t = arg;
    tw_call_release(t->call);
    t->call = NULL;
    tw_deferred *held = t->d;
    t->d = NULL;
    timeout_unref(t); /* the timer's */
    tw_deferred_unref(held);
}

static void timeout_disarm(timeout *t)
{
    if (t->call != NULL && !t->firing)
        tw_call_cancel(t->call); /* runs timeout_dropped */
}

/* The chain reached the point where the timeout was added. */
static void timeout_reached(tw_deferred *d, tw_result *res, void *arg)
{
    timeout *t = arg;
    (void)d;
    timeout_disarm(t);
    const tw_failure *f = tw_result_failure(res);
    if (t->timed_out && f != NULL && tw_failure_code(f) == TW_ECANCELLED)
        tw_result_set_failure(
            res, tw_failure_new(TW_ETIMEDOUT, "deferred timed out after %g seconds", t->seconds));
}

TW_API int tw_deferred_add_timeout(tw_deferred *d, struct tw_reactor *reactor, double seconds)
{
    if (d == NULL || reactor == NULL || !isfinite(seconds) || seconds < 0)
        return -EINVAL;
    timeout *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->refs = 2;
    t->seconds = seconds;
    t->d = tw_deferred_ref(d);
    int rc = tw_reactor_call_later_full(reactor, seconds, timeout_fired, t, timeout_dropped,
                                        &t->call);
    if (rc < 0) {
        tw_deferred_unref(d);
        free(t);
        return rc;
    }
    /* May run timeout_reached at once when d already has a result. */
    rc = tw_deferred_add_callbacks_full(d, timeout_reached, timeout_reached, t, timeout_unref);
    if (rc < 0) {
        tw_call_cancel(t->call); /* drops the timer's hold on d and t */
        timeout_unref(t);
        return rc;
    }
    return 0;
}

/* ---- defer_later ------------------------------------------------------- */

typedef struct later {
    int refs;
    tw_deferred *d; /* held while the timer is pending */
    tw_call *call;
} later;

static void later_unref(void *arg)
{
    later *l = arg;
    if (--l->refs == 0)
        free(l);
}

static void later_fire(void *arg)
{
    later *l = arg;
    tw_deferred *d = l->d;
    l->d = NULL;
    tw_call_release(l->call);
    l->call = NULL;
    tw_deferred_callback(d, NULL, NULL);
    tw_deferred_unref(d);
    later_unref(l);
}

/* The timer will not run: cancelled, or dropped by the reactor. */
static void later_dropped(void *arg)
{
    later *l = arg;
    tw_call_release(l->call);
    l->call = NULL;
    tw_deferred *held = l->d;
    l->d = NULL;
    later_unref(l); /* the timer's */
    tw_deferred_unref(held);
}

static void later_cancel(tw_deferred *d, void *arg)
{
    later *l = arg;
    (void)d;
    if (l->call != NULL)
        tw_call_cancel(l->call); /* runs later_dropped */
    /* Not firing d here makes cancel() fail it with TW_ECANCELLED. */
}

TW_API tw_deferred *tw_defer_later_at(struct tw_reactor *reactor, double seconds, tw_deferred_fn fn,
                                      void *arg, const char *file, int line)
{
    if (reactor == NULL || !isfinite(seconds) || seconds < 0)
        return NULL;
    later *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->refs = 1; /* the canceller's, released by d */
    tw_deferred *d = tw__deferred_new_full(later_cancel, l, later_unref, file, line);
    if (d == NULL) {
        free(l);
        return NULL;
    }
    if (fn != NULL && tw_deferred_add_callback(d, fn, arg) < 0) {
        tw_deferred_unref(d);
        return NULL;
    }
    l->refs++; /* the timer's */
    l->d = tw_deferred_ref(d);
    if (tw_reactor_call_later_full(reactor, seconds, later_fire, l, later_dropped, &l->call) < 0) {
        l->d = NULL;
        l->refs--;
        tw_deferred_unref(d); /* the timer's hold */
        tw_deferred_unref(d); /* ours: drops fn's entry unrun, and l */
        return NULL;
    }
    return d;
}
