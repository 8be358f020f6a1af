/* SPDX-License-Identifier: MIT */
/*
 * Deferred concurrency primitives, as Twisted's DeferredLock,
 * DeferredSemaphore and DeferredQueue: coordination between pieces of
 * asynchronous code running on one reactor thread. Nothing here blocks or
 * involves threads; "waiting" means holding a deferred that fires later.
 *
 *   acquire() ---> fired deferred (a token was free)
 *            \---> waiting deferred --release()--> fired, in FIFO order
 *                                   --cancel()---> TW_ECANCELLED, no token
 *
 * Every acquire or get returns a deferred the caller owns (one reference,
 * see the reference rule of twine/deferred.h); the primitive holds another
 * while the deferred waits and fires it. Cancelling a waiting deferred
 * removes it from the queue of waiters: it fails with TW_ECANCELLED and
 * never receives a token or an item.
 *
 * Reentrancy: release(), put() and the free functions may be called from
 * any callback, including a callback of a deferred the same primitive
 * fired. Handing tokens to waiters is a loop, not a recursion, so a release
 * made inside a waiter's callback passes the token on without growing the
 * stack, however many waiters there are.
 *
 * Threads: like deferreds, these belong to the reactor's thread.
 */
#ifndef TWINE_CONCURRENCY_H
#define TWINE_CONCURRENCY_H

#include <stddef.h>
#include <twine/common.h>
#include <twine/deferred.h>

TW_BEGIN_DECLS

/* ---- Semaphore ---------------------------------------------------------- */

/** A semaphore whose acquire returns a deferred (Twisted's DeferredSemaphore). */
typedef struct tw_deferred_semaphore tw_deferred_semaphore;

/**
 * Make a semaphore with @p tokens tokens (at least 1).
 * @return the semaphore, owned by the caller and released with
 *         tw_deferred_semaphore_free(); NULL if @p tokens is 0 or memory runs
 *         out.
 */
TW_API tw_deferred_semaphore *tw_deferred_semaphore_new(size_t tokens);

/**
 * Free the semaphore. Acquirers still waiting fail with TW_ECANCELLED, in
 * order, before this returns (their errbacks run synchronously). A
 * tw_deferred_semaphore_run() in progress keeps the memory alive until it
 * completes, then gives nothing back. May be called from any callback,
 * including one the semaphore fired. NULL is ignored.
 */
TW_API void tw_deferred_semaphore_free(tw_deferred_semaphore *s);

/**
 * Take a token. The deferred fires with the semaphore itself (borrowed, no
 * destructor) once a token is the caller's: at once when one is free (the
 * callbacks added to it run as they are added), or when a release hands one
 * over, first come first served. Cancelling it while it waits fails it with
 * TW_ECANCELLED and takes no token.
 * @return a new reference, or NULL when memory runs out (nothing was taken).
 */
TW_API tw_deferred *tw_deferred_semaphore_acquire(tw_deferred_semaphore *s);

/**
 * Give a token back. If acquirers wait, the first one gets it and its
 * callbacks run synchronously, before this returns.
 * @return 0, or TW_ESTATE if every token is already free (more releases
 *         than acquires).
 */
TW_API int tw_deferred_semaphore_release(tw_deferred_semaphore *s);

/**
 * Acquire a token, then run @p fn as a callback of a new deferred (as
 * tw_maybe_deferred() does), and release the token once the result @p fn
 * set is final: at once for a value or failure, or when the deferred it set
 * with tw_result_set_deferred() fires, with a value or a failure. The
 * returned deferred fires with that result. Cancelling it while it waits
 * for the token fails it with TW_ECANCELLED; @p fn then never runs and no
 * token is taken. Cancelling it later cancels what @p fn is waiting on.
 * @param arg borrowed: must stay valid until @p fn ran or the returned
 *        deferred failed without running it.
 * @return a new reference, or NULL when memory runs out (then @p fn will
 *         not run and no token was taken).
 */
TW_API tw_deferred *tw_deferred_semaphore_run(tw_deferred_semaphore *s, tw_deferred_fn fn,
                                              void *arg);

/** @return how many tokens are free now. */
TW_API size_t tw_deferred_semaphore_tokens(const tw_deferred_semaphore *s);

/** @return how many acquirers wait for a token. */
TW_API size_t tw_deferred_semaphore_waiting(const tw_deferred_semaphore *s);

/* ---- Lock --------------------------------------------------------------- */

/** A lock whose acquire returns a deferred (Twisted's DeferredLock). */
typedef struct tw_deferred_lock tw_deferred_lock;

/**
 * Make an unlocked lock: a semaphore of one token.
 * @return the lock, owned by the caller and released with
 *         tw_deferred_lock_free(), or NULL when memory runs out.
 */
TW_API tw_deferred_lock *tw_deferred_lock_new(void);

/** Free the lock, as tw_deferred_semaphore_free(). NULL is ignored. */
TW_API void tw_deferred_lock_free(tw_deferred_lock *l);

/**
 * Lock it. The deferred fires with the lock itself (borrowed, no
 * destructor) once the caller holds it, as tw_deferred_semaphore_acquire().
 * @return a new reference, or NULL when memory runs out.
 */
TW_API tw_deferred *tw_deferred_lock_acquire(tw_deferred_lock *l);

/**
 * Unlock it; the first waiter, if any, gets it before this returns.
 * @return 0, or TW_ESTATE if it is not locked.
 */
TW_API int tw_deferred_lock_release(tw_deferred_lock *l);

/** tw_deferred_semaphore_run() holding the lock. @return as that function. */
TW_API tw_deferred *tw_deferred_lock_run(tw_deferred_lock *l, tw_deferred_fn fn, void *arg);

/** @return nonzero while the lock is held. */
TW_API int tw_deferred_lock_locked(const tw_deferred_lock *l);

/* ---- Queue -------------------------------------------------------------- */

/** A queue whose get returns a deferred (Twisted's DeferredQueue). */
typedef struct tw_deferred_queue tw_deferred_queue;

/** No bound, for tw_deferred_queue_new()'s @p size or @p backlog. */
#define TW_DEFERRED_QUEUE_UNBOUNDED ((size_t)-1)

/**
 * Make an empty queue.
 * @param size how many items may wait for a getter; a put beyond it fails
 *        with TW_EOVERFLOW (backpressure: the producer learns at once that
 *        it is ahead). TW_DEFERRED_QUEUE_UNBOUNDED for no limit.
 * @param backlog how many getters may wait for an item; a get beyond it
 *        fails with TW_EUNDERFLOW. TW_DEFERRED_QUEUE_UNBOUNDED for no limit.
 * @return the queue, owned by the caller and released with
 *         tw_deferred_queue_free(), or NULL when memory runs out.
 */
TW_API tw_deferred_queue *tw_deferred_queue_new(size_t size, size_t backlog);

/**
 * Free the queue: items still queued are destroyed, getters still waiting
 * fail with TW_ECANCELLED (their errbacks run before this returns). May be
 * called from any callback, including a getter's. NULL is ignored.
 */
TW_API void tw_deferred_queue_free(tw_deferred_queue *q);

/**
 * Add an item. If a getter waits, the first one fires with it now (its
 * callbacks run synchronously, before this returns); otherwise the item
 * waits in FIFO order.
 * @param value taken over on success, destroyed later with @p free_fn (may
 *        be NULL) by whoever ends up owning it; on error the caller keeps it.
 * @return 0, TW_EOVERFLOW if @p size items already wait, or -ENOMEM.
 */
TW_API int tw_deferred_queue_put(tw_deferred_queue *q, void *value, tw_free_fn free_fn);

/**
 * Take the next item. The deferred fires with the item's value and
 * destructor (ownership passes to its chain): at once if an item waits,
 * else when the next put comes, getters served in the order they asked.
 * Cancelling it while it waits fails it with TW_ECANCELLED and it takes no
 * item.
 * @return a new reference: fired, waiting, or already failed with
 *         TW_EUNDERFLOW when @p backlog getters wait; NULL when memory runs
 *         out.
 */
TW_API tw_deferred *tw_deferred_queue_get(tw_deferred_queue *q);

/** @return how many items wait for a getter. */
TW_API size_t tw_deferred_queue_pending(const tw_deferred_queue *q);

/** @return how many getters wait for an item. */
TW_API size_t tw_deferred_queue_waiting(const tw_deferred_queue *q);

TW_END_DECLS

#endif
