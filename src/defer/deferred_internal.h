/* SPDX-License-Identifier: MIT */
/*
 * What the files built on the deferred core (deferred_list.c for gather and
 * list, deferred_time.c for timeouts and defer_later) need beyond the public
 * API: a constructor whose canceller owns its argument, and a way to tell a
 * deferred that is being released from a live one, because those files hold
 * deferreds weakly and must not revive one whose last reference went.
 * amp_requests.c needs a way to hand a settled result to a callback pair
 * without queuing it (it says why, with a measurement); the test kit's
 * result readers (src/testing/results.c) use it too, to read a result now
 * or not at all. Last, the FIFO of waiting
 * deferreds that the semaphore and the queue share.
 */
#ifndef TWINE_DEFERRED_INTERNAL_H
#define TWINE_DEFERRED_INTERNAL_H

#include <twine/deferred.h>

#include "core/list_internal.h"

/*
 * tw_deferred_new_at() whose canceller argument is owned: @p arg_free runs
 * once, when the deferred fires (after the canceller returned, if it fired
 * from inside it) or is released unfired, after which the canceller is
 * never called.
 */
tw_deferred *tw__deferred_new_full(tw_canceller_fn canceller, void *arg, tw_free_fn arg_free,
                                   const char *file, int line);

/*
 * Nonzero if @p d has fired and nothing holds its chain up (not paused, not
 * waiting, no pair queued, no run loop on it): a pair added now runs at once.
 */
int tw__deferred_settled(const tw_deferred *d);

/*
 * If @p d has fired and nothing holds its chain up (not paused, not
 * waiting, no pair queued, no run loop on it), run @p cb or @p eb with its
 * result now, exactly as a pair added with tw_deferred_add_callbacks()
 * would run, but without queuing an entry for it, and @return 1.
 * Otherwise @return 0 and run nothing: add the pair the ordinary way.
 * Saves an allocation for the common producer that answers at once.
 */
int tw__deferred_run_settled(tw_deferred *d, tw_deferred_fn cb, tw_deferred_fn eb, void *arg);

/* Nonzero unless the last reference to @p d is gone and it awaits release. */
int tw__deferred_alive(const tw_deferred *d);

/*
 * deferred_waiters.c: a FIFO of waiting deferreds for the concurrency
 * primitives (semaphore.c, deferred_queue.c). Zero-initialised is empty;
 * list.count is how many wait.
 */
typedef struct tw__waiters {
    tw__list list;
} tw__waiters;

/* Append a new waiting deferred whose cancellation takes it out of the
 * FIFO. @return a new reference for the caller (the FIFO holds another),
 * or NULL when memory runs out. */
tw_deferred *tw__waiters_add(tw__waiters *ws, const char *file, int line);

/* Take the first waiter out: @return its deferred with the FIFO's
 * reference, now the caller's, to fire and release; NULL when none waits. */
tw_deferred *tw__waiters_shift(tw__waiters *ws);

#endif
