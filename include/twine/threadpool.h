/* SPDX-License-Identifier: MIT */
/*
 * The reactor's thread pool, as Twisted's reactor.getThreadPool(),
 * deferToThread and callInThread: blocking work (a file system call, a
 * library without an asynchronous interface, a long computation) runs on a
 * bounded set of threads the reactor owns, and its result comes back to the
 * reactor's thread as a deferred.
 *
 * Lifecycle. No thread exists until the first work is submitted; threads
 * start as work arrives, up to the pool size (default
 * TW_THREAD_POOL_DEFAULT_SIZE), and then wait for more. Work runs in the
 * order it was submitted. During the "during" phase of tw_reactor_stop(),
 * the pool stops as Twisted's does: work already queued still runs, its
 * deferreds fire on the reactor's thread, shutdown waits for that, and the
 * threads are joined; new work is refused with TW_ESHUTDOWN from the
 * "during" phase until tw_reactor_run() returns, after which the pool
 * starts again on demand. tw_reactor_free() in any state does not run
 * queued work: it drops what has not started (release runs, the deferred
 * never fires), waits for the work that is running, and joins the threads.
 * A work function that never returns therefore keeps stop and free from
 * finishing, as in Twisted.
 *
 * Threads. Everything here is called on the reactor's thread, like the rest
 * of twine; only the work functions run on pool threads. A work function
 * must not touch the reactor or anything attached to it, except through
 * tw_reactor_call_from_thread().
 */
#ifndef TWINE_THREADPOOL_H
#define TWINE_THREADPOOL_H

#include <stddef.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/failure.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

/** The pool size of a new reactor: small, since the reactor does the I/O. */
#define TW_THREAD_POOL_DEFAULT_SIZE 4

/**
 * Work for tw_defer_to_thread(), run on a pool thread. Return the result
 * value and store its destructor in @p *free_fn (NULL when it needs none);
 * or, to fail, store a failure in @p *failure (made with tw_failure_new(),
 * which is safe on any thread; the reference passes to the deferred) -- a
 * returned value is then destroyed.
 */
typedef void *(*tw_thread_fn)(void *arg, tw_free_fn *free_fn, tw_failure **failure);

/**
 * Run @p fn(@p arg) on a pool thread and get its result as a deferred that
 * fires on the reactor's thread (Twisted's deferToThread).
 * @param release if not NULL, runs on the reactor's thread exactly once:
 *        after @p fn ran, before the deferred fires; or when the work is
 *        dropped without running (cancelled while queued, or by
 *        tw_reactor_free()). It is how @p arg is given back.
 * Cancelling the deferred while the work waits in the queue removes it
 * (release runs, @p fn never does); once it runs it cannot be stopped, so
 * the deferred fails with TW_ECANCELLED at once and the result, when it
 * comes, is destroyed.
 * @return a new reference (see twine/deferred.h); the pool holds another
 *         until it fires the deferred. A deferred already failed with
 *         TW_ESHUTDOWN while the reactor is shutting down (see above), or
 *         NULL for a NULL @p fn or when memory or threads run out; in those
 *         cases neither @p fn nor @p release runs, and @p arg stays the
 *         caller's.
 */
TW_API tw_deferred *tw_defer_to_thread(tw_reactor *r, tw_thread_fn fn, void *arg,
                                       tw_call_fn release);

/**
 * Run @p fn(@p arg) on a pool thread, without a result (Twisted's
 * callInThread). @p fn runs on the pool thread, or, if the work is dropped
 * by tw_reactor_free() before it started, @p release(@p arg) runs instead
 * on the thread calling tw_reactor_free() (NULL @p release: nothing runs).
 * Exactly one of them runs, once.
 * @return 0; TW_ESHUTDOWN while the reactor is shutting down, -EINVAL for
 *         a NULL @p fn, -ENOMEM or -EAGAIN when memory or threads run out.
 *         On error neither runs.
 */
TW_API int tw_call_in_thread(tw_reactor *r, tw_call_fn fn, void *arg, tw_call_fn release);

/**
 * Bound the pool to @p threads threads (Twisted's suggestThreadPoolSize).
 * A larger bound lets queued work start more threads at once; a smaller one
 * makes surplus threads exit once they finish the work they are running.
 * @return 0, or -EINVAL for 0.
 */
TW_API int tw_reactor_set_thread_pool_size(tw_reactor *r, size_t threads);

/** @return the pool's bound on threads. */
TW_API size_t tw_reactor_thread_pool_size(const tw_reactor *r);

/** @return how many pool threads exist now (0 until work first arrives). */
TW_API size_t tw_reactor_thread_pool_threads(tw_reactor *r);

TW_END_DECLS

#endif
