/*
 * What the files built on the deferred core (deferred_list.c for gather and
 * list, deferred_time.c for timeouts and defer_later) need beyond the public
 * API: a constructor whose canceller owns its argument, and a way to tell a
 * deferred that is being released from a live one, because those files hold
 * deferreds weakly and must not revive one whose last reference went.
 */
#ifndef TWINE_DEFERRED_INTERNAL_H
#define TWINE_DEFERRED_INTERNAL_H

#include <twine/deferred.h>

/*
 * tw_deferred_new_at() whose canceller argument is owned: @p arg_free runs
 * once, when the deferred fires (after the canceller returned, if it fired
 * from inside it) or is released unfired, after which the canceller is
 * never called.
 */
tw_deferred *tw__deferred_new_full(tw_canceller_fn canceller, void *arg, tw_free_fn arg_free,
                                   const char *file, int line);

/* Nonzero unless the last reference to @p d is gone and it awaits release. */
int tw__deferred_alive(const tw_deferred *d);

#endif
