/* SPDX-License-Identifier: MIT */
/*
 * The waiting side of the deferred concurrency primitives: a FIFO of
 * deferreds that wait for something (a semaphore's token, a queue's item).
 * The FIFO holds a reference to each until its owner shifts it out to fire
 * it. Cancelling one while it waits takes it out of the FIFO, so it fails
 * with TW_ECANCELLED and is never handed anything.
 */
#include "config.h"

#include <stdlib.h>

#include "defer/deferred_internal.h"

typedef struct waiter {
    tw__link link;        /* first: a waiter is its link */
    tw_deferred *d;       /* the FIFO's reference */
    tw__waiters *waiters; /* NULL once it left the FIFO */
} waiter;

static void cancel_wait(tw_deferred *d, void *arg)
{
    waiter *w = arg;
    (void)d;
    if (w->waiters == NULL)
        return;
    tw__list_remove(&w->waiters->list, &w->link);
    w->waiters = NULL;
    tw_deferred_unref(w->d);
}

tw_deferred *tw__waiters_add(tw__waiters *ws, const char *file, int line)
{
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    /* The record is the canceller's argument, freed as the deferred fires. */
    tw_deferred *d = tw__deferred_new_full(cancel_wait, w, free, file, line);
    if (d == NULL) {
        free(w);
        return NULL;
    }
    w->d = tw_deferred_ref(d);
    w->waiters = ws;
    tw__list_append(&ws->list, &w->link);
    return d;
}

tw_deferred *tw__waiters_shift(tw__waiters *ws)
{
    waiter *w = (waiter *)tw__list_shift(&ws->list);
    if (w == NULL)
        return NULL;
    w->waiters = NULL;
    return w->d;
}
