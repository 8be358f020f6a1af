/* SPDX-License-Identifier: MIT */
/*
 * tw_deferred: a result that is not there yet, with Twisted's Deferred
 * contract. Code that starts an asynchronous operation returns a deferred;
 * code that wants the outcome adds callbacks (success path) and errbacks
 * (failure path) to it; the producer fires it exactly once with a value
 * (tw_deferred_callback) or a tw_failure (tw_deferred_errback), and the chain
 * of callbacks runs in order, each one handing its result to the next.
 *
 * Results. A result is either a value -- a pointer plus an optional
 * destructor -- or a tw_failure. The chain owns the current result: each
 * callback sees it through a tw_result, may leave it alone (it passes on
 * unchanged), replace it (the old one is destroyed), take it out (ownership
 * moves to the callback) or make the chain wait for another deferred, whose
 * result is then taken over. Whatever result is still held when the deferred
 * is released is destroyed then, so every value is destroyed exactly once.
 *
 * Synchronous callbacks. Callbacks run as soon as there is a result: inside
 * tw_deferred_callback()/errback()/cancel() when they fire the deferred, and
 * inside tw_deferred_add_callbacks() and friends when it has already fired
 * (as Twisted does). Chains run iteratively, so a chain of any depth, or
 * deferreds waiting on deferreds to any depth, never grows the C stack.
 *
 * Reference rule -- the one lifetime rule of this header:
 *   - Every function that returns a tw_deferred * (tw_deferred_new,
 *     _succeed, _fail, _gather, _list, tw_defer_later) and tw_deferred_ref()
 *     gives the caller one reference, released with tw_deferred_unref().
 *     No function ever takes over a caller's deferred reference: passing a
 *     deferred to tw_result_set_deferred(), _gather(), _list() or
 *     _add_timeout() leaves your reference yours to release.
 *   - Whoever will fire a deferred holds a reference until it has fired.
 *     twine's own producers do: a pending tw_deferred_add_timeout() timer and
 *     a tw_defer_later() timer hold the deferred, and gather/list hold their
 *     result deferred until they fire it.
 *   - A deferred waiting on another (a callback returned it) is held by the
 *     one it waits on until that one fires, so a chain you have let go of
 *     still runs to the end. The waiting deferred does not keep the one it
 *     waits on alive: that one lives as long as someone who can fire it
 *     holds it. Likewise gather/list watch their inputs without holding them.
 *   - When the last reference goes, the deferred is released: a failure
 *     still held is reported as unhandled (below), a value still held is
 *     destroyed, and callbacks that never ran are dropped (their arg_free
 *     runs). A deferred released before it fired could never have fired,
 *     since nobody who could fire it still held it.
 *
 * Unhandled failures. A deferred released while its result is a failure
 * that no errback handled logs one record at TW_LOG_ERROR under "deferred"
 * with the failure and its cause chain. In debug mode (TWINE_DEFERRED_DEBUG=1
 * in the environment, or tw_deferred_set_debug(1)) the record also says
 * where the deferred was created and fired (file:line).
 *
 * Threads: a deferred belongs to one thread, like the reactor it is used with.
 */
#ifndef TWINE_DEFERRED_H
#define TWINE_DEFERRED_H

#include <stddef.h>
#include <twine/common.h>
#include <twine/failure.h>

TW_BEGIN_DECLS

struct tw_reactor;

typedef struct tw_deferred tw_deferred;

/**
 * The current result of a chain, as a callback sees it. Only valid during
 * the callback it was passed to; use the tw_result_* functions on it.
 */
typedef struct tw_result tw_result;

/** Destroys a value. Called exactly once for every value a chain owns. */
typedef void (*tw_free_fn)(void *value);

/**
 * A callback or errback. @p res holds the current result, owned by the
 * chain. Leave it alone to pass it on unchanged, or change it:
 *   - tw_result_set_value(): a new value; continues on the callback path
 *     (this is how an errback handles a failure);
 *   - tw_result_set_failure(): a failure; continues on the errback path;
 *   - tw_result_set_deferred(): the chain waits for that deferred and
 *     continues with its result;
 *   - tw_result_take_value() / tw_result_take_failure(): take the result
 *     out; the chain continues with a NULL value.
 * @p d is the deferred whose chain is running; the chain holds a reference
 * to it for the duration of the call.
 */
typedef void (*tw_deferred_fn)(tw_deferred *d, tw_result *res, void *arg);

/**
 * A canceller: asked by tw_deferred_cancel() to stop the operation behind
 * @p d. It may fire @p d (with any result); if it does not, @p d fails with
 * TW_ECANCELLED once it returns.
 */
typedef void (*tw_canceller_fn)(tw_deferred *d, void *arg);

/* ---- Debug mode -------------------------------------------------------- */

/*
 * The creating and firing functions are macros that pass __FILE__ and
 * __LINE__ to their *_at function, so debug mode can say where a deferred
 * was created and fired. Call the *_at functions directly only from other
 * languages (file may be NULL).
 */

/**
 * Turn debug mode on (1) or off (0), or -1 to follow TWINE_DEFERRED_DEBUG
 * again (the default: on when it is set to a non-zero number). Affects
 * deferreds created and fired afterwards. Set it at start-up, before other
 * threads use deferreds.
 */
TW_API void tw_deferred_set_debug(int on);

/** @return 1 if debug mode is on, else 0. */
TW_API int tw_deferred_get_debug(void);

/* ---- Creation ---------------------------------------------------------- */

/**
 * Make a deferred that has not fired.
 * @param canceller called by tw_deferred_cancel() before it fires; may be
 *        NULL. @p arg is borrowed: it must stay valid until the deferred has
 *        fired or is released, whichever comes first.
 * @return a new reference (see the reference rule), or NULL when memory runs
 *         out.
 */
TW_API tw_deferred *tw_deferred_new_at(tw_canceller_fn canceller, void *arg, const char *file,
                                       int line);
#define tw_deferred_new(canceller, arg) tw_deferred_new_at((canceller), (arg), __FILE__, __LINE__)

/**
 * Make a deferred that has already fired with @p value, like Twisted's
 * succeed(). Callbacks added to it run at once.
 * @param value owned by the deferred from now on, destroyed with @p free_fn
 *        (which may be NULL) when the chain replaces it or is released.
 * @return a new reference, or NULL when memory runs out; @p value has then
 *         already been destroyed.
 */
TW_API tw_deferred *tw_deferred_succeed_at(void *value, tw_free_fn free_fn, const char *file,
                                           int line);
#define tw_deferred_succeed(value, free_fn)                                                        \
    tw_deferred_succeed_at((value), (free_fn), __FILE__, __LINE__)

/**
 * Make a deferred that has already failed with @p failure, like Twisted's
 * fail(). Errbacks added to it run at once.
 * @param failure taken over (the caller's reference); NULL means a generic
 *        TW_EFAIL failure.
 * @return a new reference, or NULL when memory runs out; the failure has
 *         then been released.
 */
TW_API tw_deferred *tw_deferred_fail_at(tw_failure *failure, const char *file, int line);
#define tw_deferred_fail(failure) tw_deferred_fail_at((failure), __FILE__, __LINE__)

/** Take another reference to @p d. @return @p d (NULL stays NULL). */
TW_API tw_deferred *tw_deferred_ref(tw_deferred *d);

/**
 * Drop a reference; NULL is ignored. At the last one the deferred is
 * released as the reference rule describes: a failure still held is logged
 * as unhandled, a value still held is destroyed, callbacks that never ran
 * are dropped (their arg_free runs). Never runs callbacks.
 */
TW_API void tw_deferred_unref(tw_deferred *d);

/* ---- Firing ------------------------------------------------------------ */

/**
 * Fire @p d with a value; its callbacks run now, synchronously (unless it
 * is paused).
 * @param value always taken over, even on error: on success the chain owns
 *        it; on error it is destroyed with @p free_fn before this returns.
 * @return 0; TW_EALREADY_FIRED if @p d has already fired (a programming
 *         error, also logged at TW_LOG_ERROR, naming both sites in debug
 *         mode); -EINVAL if @p d is NULL. After tw_deferred_cancel() of a
 *         deferred without a canceller, the first late callback or errback
 *         is swallowed and returns 0 (Twisted's _suppressAlreadyCalled):
 *         the operation could not be stopped, so its eventual result is
 *         expected and ignored.
 */
TW_API int tw_deferred_callback_at(tw_deferred *d, void *value, tw_free_fn free_fn,
                                   const char *file, int line);
#define tw_deferred_callback(d, value, free_fn)                                                    \
    tw_deferred_callback_at((d), (value), (free_fn), __FILE__, __LINE__)

/**
 * Fire @p d with a failure; its errbacks run now, synchronously (unless it
 * is paused).
 * @param failure always taken over (the caller's reference), even on error;
 *        NULL means a generic TW_EFAIL failure.
 * @return as tw_deferred_callback().
 */
TW_API int tw_deferred_errback_at(tw_deferred *d, tw_failure *failure, const char *file, int line);
#define tw_deferred_errback(d, failure) tw_deferred_errback_at((d), (failure), __FILE__, __LINE__)

/* ---- Chains ------------------------------------------------------------ */

/**
 * Append a callback/errback pair: @p cb runs if the result reaching this
 * point is a value, @p eb if it is a failure; either may be NULL, which
 * passes that kind of result on. If @p d already has a result (and is not
 * paused or waiting), the pair runs synchronously before this returns. A
 * pair added from inside a callback of the same chain runs in turn.
 * @param arg passed to @p cb / @p eb; borrowed: it must stay valid until the
 *        pair ran or @p d is released.
 * @return 0, -EINVAL if @p d is NULL, or -ENOMEM (then nothing is called).
 */
TW_API int tw_deferred_add_callbacks(tw_deferred *d, tw_deferred_fn cb, tw_deferred_fn eb,
                                     void *arg);

/**
 * tw_deferred_add_callbacks() that also owns @p arg: @p arg_free (if not
 * NULL) runs exactly once, right after the pair ran, or when @p d is
 * released without reaching it. On error (-EINVAL, -ENOMEM) nothing is
 * called and the caller keeps @p arg.
 */
TW_API int tw_deferred_add_callbacks_full(tw_deferred *d, tw_deferred_fn cb, tw_deferred_fn eb,
                                          void *arg, tw_free_fn arg_free);

/** Append a callback only (the failure path passes by). @return as add_callbacks. */
TW_API int tw_deferred_add_callback(tw_deferred *d, tw_deferred_fn cb, void *arg);

/** Append an errback only (the success path passes by). @return as add_callbacks. */
TW_API int tw_deferred_add_errback(tw_deferred *d, tw_deferred_fn eb, void *arg);

/** Append @p fn as both callback and errback. @return as add_callbacks. */
TW_API int tw_deferred_add_both(tw_deferred *d, tw_deferred_fn fn, void *arg);

/**
 * Pause the chain: no callback runs until as many tw_deferred_unpause()
 * calls were made as pauses. Firing a paused deferred stores the result.
 * From inside a callback it stops the chain once that callback returns.
 * @return 0, or -EINVAL if @p d is NULL.
 */
TW_API int tw_deferred_pause(tw_deferred *d);

/**
 * Undo one tw_deferred_pause(). At the last one, if @p d has a result, the
 * remaining callbacks run synchronously before this returns.
 * @return 0, TW_ESTATE if @p d is not paused, or -EINVAL if it is NULL.
 */
TW_API int tw_deferred_unpause(tw_deferred *d);

/* ---- Cancellation and timeouts ----------------------------------------- */

/**
 * Cancel @p d, as Twisted's Deferred.cancel():
 *   - not fired yet: the canceller runs (synchronously); if it did not fire
 *     @p d, or there is none, @p d errbacks with a TW_ECANCELLED failure.
 *     Without a canceller, the next late callback/errback is swallowed.
 *   - fired, and its chain waits on another deferred (a callback returned
 *     it): that deferred is cancelled instead, to any depth. If that one was
 *     already released, the chain continues with a TW_ECANCELLED failure.
 *   - otherwise: nothing happens.
 * Callbacks may run synchronously. The caller must hold a reference.
 * @return 0, or -EINVAL if @p d is NULL.
 */
TW_API int tw_deferred_cancel_at(tw_deferred *d, const char *file, int line);
#define tw_deferred_cancel(d) tw_deferred_cancel_at((d), __FILE__, __LINE__)

/**
 * Cancel @p d if the chain has not reached this point within @p seconds on
 * @p reactor's clock, and turn that cancellation into a TW_ETIMEDOUT failure
 * (Twisted's addTimeout). It appends a callback pair, so it covers what is
 * already in the chain; callbacks added later see the timeout failure. When
 * the result reaches that pair first, the timer is cancelled and released.
 * A TW_ECANCELLED failure that arrives after the timer went off becomes
 * TW_ETIMEDOUT; any other result passes unchanged.
 *
 * The pending timer holds a reference to @p d, so a deferred you let go of
 * still times out. When the reactor drops the timer unrun (at the end of
 * tw_reactor_stop() or in tw_reactor_free()) the hold is let go at once, so
 * nothing leaks; @p d then simply never times out.
 * @return 0, -EINVAL (NULL argument, negative or non-finite @p seconds), or
 *         -ENOMEM; on error nothing was scheduled or appended.
 */
TW_API int tw_deferred_add_timeout(tw_deferred *d, struct tw_reactor *reactor, double seconds);

/**
 * A deferred that fires after @p seconds with what @p fn makes of it, like
 * Twisted's deferLater(). @p fn is the deferred's first callback: it runs
 * from the reactor after the delay with a NULL value and sets the result
 * like any callback (value, failure or another deferred); NULL @p fn fires
 * with a NULL value. Cancelling the deferred before then cancels the timer
 * and fails it with TW_ECANCELLED; @p fn does not run.
 * @param arg borrowed: must stay valid until @p fn ran or the deferred is
 *        released.
 * @return a new reference (the timer holds another until it fires, is
 *         cancelled, or is dropped unrun by tw_reactor_stop() or
 *         tw_reactor_free(), after which the deferred never fires), or
 *         NULL for a NULL reactor, a negative or
 *         non-finite delay, or when memory runs out (then @p fn is never
 *         called).
 */
TW_API tw_deferred *tw_defer_later_at(struct tw_reactor *reactor, double seconds, tw_deferred_fn fn,
                                      void *arg, const char *file, int line);
#define tw_defer_later(reactor, seconds, fn, arg)                                                  \
    tw_defer_later_at((reactor), (seconds), (fn), (arg), __FILE__, __LINE__)

/* ---- Combinators ------------------------------------------------------- */

/** One input's outcome in gather/list results. */
typedef struct tw_deferred_outcome {
    int ok;              /**< 1: the input succeeded with @c value; 0: it failed */
    void *value;         /**< the input's value when ok (may be NULL) */
    tw_free_fn free_fn;  /**< destructor of @c value, or NULL */
    tw_failure *failure; /**< the input's failure when !ok, else NULL */
} tw_deferred_outcome;

/**
 * The value gather and list fire with: one outcome per input, in input
 * order. The outcomes are the chain's value like any other: they own every
 * item's value and failure and are destroyed with them. To keep an item,
 * copy it out and set its @c free_fn (for a value) or @c failure to NULL.
 */
typedef struct tw_deferred_outcomes {
    size_t count;               /**< number of inputs */
    tw_deferred_outcome *items; /**< count items, in input order */
    size_t fired_by;            /**< the input whose value fired a list made with
                                     TW_DEFERRED_LIST_FIRE_ON_ONE_CALLBACK;
                                     @c count when every input delivered */
} tw_deferred_outcomes;

/**
 * Wait for all of @p inputs (Twisted's gatherResults, i.e. DeferredList
 * with fireOnOneErrback and consumeErrors). The result fires with a
 * tw_deferred_outcomes of every value, in input order, once all succeeded;
 * or, at the first failure, errbacks with a failure wrapping it: same code,
 * message "gather: input N failed", the input's failure as cause
 * (tw_deferred_gather_index() recovers N). Each input's result is taken
 * over by the gather, so callbacks added to an input afterwards see a NULL
 * value; failures that arrive after the first are consumed (handled).
 * Cancelling the result cancels every input that has not fired; if that
 * does not fire it, it fails with TW_ECANCELLED.
 * Inputs that already fired are collected synchronously, so with no inputs
 * (@p n == 0), or only fired ones, the result has fired on return.
 * @param inputs borrowed, array and deferreds (see the reference rule);
 *        each deferred should appear once.
 * @return a new reference, or NULL if @p inputs is NULL while @p n > 0, an
 *         input is NULL, or memory runs out before any input was touched.
 *         An input that cannot be watched later (out of memory) counts as
 *         failed with -ENOMEM.
 */
TW_API tw_deferred *tw_deferred_gather_at(tw_deferred *const *inputs, size_t n, const char *file,
                                          int line);
#define tw_deferred_gather(inputs, n) tw_deferred_gather_at((inputs), (n), __FILE__, __LINE__)

/**
 * Wait for every one of @p inputs to fire, successfully or not (Twisted's
 * DeferredList with consumeErrors). The result fires with a
 * tw_deferred_outcomes holding each input's value or failure; it never
 * fails, except with TW_ECANCELLED when cancelled while an input cannot
 * fire. Inputs' results are taken over, their failures thereby handled.
 * Cancelling the result cancels every input that has not fired.
 * @return and ownership as tw_deferred_gather().
 */
TW_API tw_deferred *tw_deferred_list_at(tw_deferred *const *inputs, size_t n, const char *file,
                                        int line);
#define tw_deferred_list(inputs, n) tw_deferred_list_at((inputs), (n), __FILE__, __LINE__)

/** Flags of tw_deferred_list_full(), Twisted's DeferredList arguments. */
enum {
    /** Fire with the first value an input delivers (fireOnOneCallback). */
    TW_DEFERRED_LIST_FIRE_ON_ONE_CALLBACK = 1,
    /** Fail with the first failure an input delivers (fireOnOneErrback). */
    TW_DEFERRED_LIST_FIRE_ON_ONE_ERRBACK = 2,
    /** Handle the inputs' failures (consumeErrors); without it a failure
     *  stays in its input's chain too, where an errback must handle it. */
    TW_DEFERRED_LIST_CONSUME_ERRORS = 4
};

/**
 * Twisted's DeferredList(inputs, fireOnOneCallback, fireOnOneErrback,
 * consumeErrors), the general form of tw_deferred_list() (which is
 * CONSUME_ERRORS alone) and tw_deferred_gather() (FIRE_ON_ONE_ERRBACK |
 * CONSUME_ERRORS). The result fires with a tw_deferred_outcomes:
 *   - FIRE_ON_ONE_CALLBACK: at the first input that succeeds; @c fired_by
 *     names it and its item holds the value; items of inputs that failed
 *     before it hold their failures, the others are empty (ok 0, NULL
 *     failure). Later inputs keep their results. If every input fails, it
 *     fires with all of them and @c fired_by is @c count.
 *   - FIRE_ON_ONE_ERRBACK: at the first input that fails, it errbacks with
 *     a failure wrapping it (same code, message "list: input N failed",
 *     the input's failure as cause; tw_deferred_gather_index() recovers N).
 *   - otherwise once every input delivered.
 * A value is always taken over from its input (C values have one owner);
 * a failure is taken (handled) with CONSUME_ERRORS, else the outcome holds
 * another reference and the input's chain keeps it. Cancelling the result
 * cancels every input that has not fired.
 * @return and ownership as tw_deferred_gather(); NULL also for unknown
 *         @p flags.
 */
TW_API tw_deferred *tw_deferred_list_full_at(tw_deferred *const *inputs, size_t n, int flags,
                                             const char *file, int line);
#define tw_deferred_list_full(inputs, n, flags)                                                    \
    tw_deferred_list_full_at((inputs), (n), (flags), __FILE__, __LINE__)

/**
 * Which input made a gather fail (Twisted's FirstError.index).
 * @param failure a failure a gather result errbacked with (borrowed).
 * @param index receives the input's position.
 * @return 0, or -EINVAL if @p failure is not such a failure. The input's own
 *         failure is tw_failure_cause(@p failure).
 */
TW_API int tw_deferred_gather_index(const tw_failure *failure, size_t *index);

/**
 * Call @p fn now and return a deferred of what it made, as Twisted's
 * maybeDeferred: @p fn runs synchronously as the first callback of a new
 * deferred whose value is NULL, and sets the result like any callback --
 * a value (a synchronous result), a failure (a synchronous error), or
 * another deferred to wait for (an asynchronous result). Leaving the result
 * alone gives a NULL value.
 * @param arg borrowed for the call.
 * @return a new reference, or NULL when memory runs out (then @p fn was
 *         not called).
 */
TW_API tw_deferred *tw_maybe_deferred_at(tw_deferred_fn fn, void *arg, const char *file, int line);
#define tw_maybe_deferred(fn, arg) tw_maybe_deferred_at((fn), (arg), __FILE__, __LINE__)

/* ---- Results (inside a callback) --------------------------------------- */

/** @return nonzero if @p res is a failure (the errback path). */
TW_API int tw_result_is_failure(const tw_result *res);

/** @return the value (borrowed; NULL on the failure path or for NULL values). */
TW_API void *tw_result_value(const tw_result *res);

/** @return the failure (borrowed), or NULL on the callback path. */
TW_API const tw_failure *tw_result_failure(const tw_result *res);

/**
 * Take the value out: the caller now owns it and must destroy it with the
 * destructor stored in @p free_fn (which may be NULL when it needs none).
 * The chain continues with a NULL value.
 * @return the value, or NULL (and *free_fn = NULL) on the failure path.
 */
TW_API void *tw_result_take_value(tw_result *res, tw_free_fn *free_fn);

/**
 * Take the failure out, which handles it: the caller owns the returned
 * reference, and the chain continues on the callback path with a NULL value.
 * @return the failure, or NULL on the callback path (nothing changes).
 */
TW_API tw_failure *tw_result_take_failure(tw_result *res);

/**
 * Replace the result with @p value (callback path). The previous value is
 * destroyed, or the previous failure released -- except that setting the
 * value already held only changes its destructor.
 * @param value taken over, destroyed later with @p free_fn (may be NULL).
 */
TW_API void tw_result_set_value(tw_result *res, void *value, tw_free_fn free_fn);

/**
 * Replace the result with @p failure (errback path). The previous result is
 * destroyed.
 * @param failure taken over (the caller's reference); NULL means a generic
 *        TW_EFAIL failure.
 */
TW_API void tw_result_set_failure(tw_result *res, tw_failure *failure);

/**
 * Make the chain wait for @p inner: the previous result is destroyed and,
 * once the callback returns, the chain continues with @p inner's result,
 * which it takes over (callbacks added to @p inner later see a NULL value).
 * If @p inner has already fired, is not paused and is not in the middle of
 * running its own callbacks, that happens at once; otherwise this chain
 * pauses until @p inner's chain has a result. Cancelling this chain's
 * deferred meanwhile cancels @p inner.
 * @param inner borrowed: the caller keeps its reference (see the reference
 *        rule -- whoever will fire @p inner must keep holding it).
 * @return 0, or -EINVAL if @p inner is NULL or is the deferred whose chain
 *         is running (which could never fire); the result is then unchanged.
 */
TW_API int tw_result_set_deferred(tw_result *res, tw_deferred *inner);

/* ---- Introspection ----------------------------------------------------- */

/** @return nonzero once @p d has fired (Twisted's d.called). */
TW_API int tw_deferred_called(const tw_deferred *d);

/** @return nonzero while @p d's chain waits on another deferred. */
TW_API int tw_deferred_waiting(const tw_deferred *d);

/** @return how many pauses are outstanding. */
TW_API int tw_deferred_paused(const tw_deferred *d);

TW_END_DECLS

#endif
