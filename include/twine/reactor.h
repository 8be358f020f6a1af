/* SPDX-License-Identifier: MIT */
/*
 * The reactor: one single-threaded event loop on a libevent event_base,
 * dispatching socket readiness to transports and running timed calls.
 * Every descriptor twine watches (connections, listeners, UDP ports, the
 * wake-up of tw_reactor_call_from_thread()) is watched by the poller chosen
 * when twine was built (`./configure --with-poller`): an epoll set of the
 * reactor's own, the default where epoll exists, or one libevent event each
 * (kqueue on the BSDs and macOS). Either way the event_base runs the loop,
 * and timers, signals and DNS are on libevent.
 *
 * There are no hidden globals: everything hangs off a tw_reactor, so two
 * reactors in two threads never interfere. Apart from
 * tw_reactor_call_from_thread(), a reactor and everything attached to it
 * must only be used from the thread that runs it.
 */
#ifndef TWINE_REACTOR_H
#define TWINE_REACTOR_H

#include <twine/common.h>

struct event_base;
struct tw_deferred;

TW_BEGIN_DECLS

typedef struct tw_reactor tw_reactor;

/** A pending timed call made by tw_reactor_call_later(). */
typedef struct tw_call tw_call;

typedef void (*tw_call_fn)(void *arg);

/**
 * Make a reactor with its own event_base (epoll on Linux, kqueue on BSD).
 * @return the reactor, owned by the caller and released with
 *         tw_reactor_free(), or NULL when memory or descriptors run out.
 */
TW_API tw_reactor *tw_reactor_new(void);

/**
 * Make a reactor that runs on an event_base the host program owns. The host
 * may keep driving the base with event_base_dispatch(); twine's listeners,
 * connections and timers work there. tw_reactor_free() leaves the base usable.
 * While a reactor is attached, event_base_dispatch() does not return on its
 * own (the reactor keeps a persistent wake-up event for
 * tw_reactor_call_from_thread()); the host ends its loop with
 * event_base_loopbreak() or event_base_loopexit(). See examples/embed/.
 * @return the reactor, or NULL when memory or descriptors run out.
 */
TW_API tw_reactor *tw_reactor_new_with_base(struct event_base *base);

/**
 * Free the reactor, in any state: idle, stopped, or in the middle of a
 * graceful stop on a loop the host drives. Connections still open are
 * aborted (each protocol gets connection_lost, synchronously), listeners and
 * UDP ports are stopped, pending timed calls are released without running
 * (their release functions run), pending DNS lookups fail with
 * TW_ESHUTDOWN, calls queued by tw_reactor_call_from_thread() are dropped
 * (their release functions run), the thread pool drops the work that has
 * not started (release functions run), waits for the work that is running
 * and joins its threads (twine/threadpool.h), and a stop under way goes no
 * further: the
 * shutdown triggers that have not run never run, and the deferreds the stop
 * waited for are let go of unfired. A host-owned event_base is left usable;
 * libevent finishes the DNS questions the free cancelled from a deferred
 * callback in that base's next loop pass, so a host that frees its base
 * right away runs one pass first (event_base_loop(base, EVLOOP_NONBLOCK)),
 * or libevent leaks them.
 *
 * It is forbidden, and refused, while the reactor runs code of its own
 * that will still use it afterwards: inside tw_reactor_run(), or inside any
 * callback the reactor runs (a timer, an I/O callback, a shutdown trigger,
 * a call from a thread), also on a loop the host drives. Stop instead, and
 * free once tw_reactor_run() returned or, on a host-driven loop, once the
 * callback returned (for example from a timer of the host's own).
 * @return 0 (also for NULL), or TW_ESTATE, doing nothing, when called from
 *         inside the reactor's own run or callbacks.
 */
TW_API int tw_reactor_free(tw_reactor *r);

/**
 * Run the loop until tw_reactor_stop() completes. Startup comes first, before
 * anything is dispatched: the startup triggers' phases (which may wait for
 * deferreds while the loop runs) and then the tw_reactor_call_when_running()
 * calls. Running again after a stop completed starts up again.
 * @return 0, or a negated errno if the event loop failed.
 */
TW_API int tw_reactor_run(tw_reactor *r);

/**
 * Run one non-blocking pass of the loop (or wait up to @p timeout seconds
 * for an event when @p timeout > 0), for hosts that own their loop.
 * @return 0, or a negated errno.
 */
TW_API int tw_reactor_iterate(tw_reactor *r, double timeout);

/**
 * Stop gracefully, in Twisted's phases: the "before" shutdown triggers run
 * (and shutdown waits for the deferreds they return); then, during the
 * "during" triggers, the reactor stops "running" (tw_reactor_running()),
 * the thread pool lets its queued work finish and joins its threads,
 * listeners stop accepting and open connections are asked
 * to close after flushing their output; once they all closed (or the
 * shutdown timeout passed, after which they are aborted) the "after"
 * triggers run, pending timed calls are released, and tw_reactor_run()
 * returns. Every protocol gets connection_lost(). Safe to call from any
 * callback, and more than once.
 */
TW_API void tw_reactor_stop(tw_reactor *r);

/**
 * @return nonzero once tw_reactor_stop() was called and until the stop
 *         completed: until tw_reactor_run() returns or, on a loop the host
 *         drives, until the "after" phase is over (its triggers ran and the
 *         deferreds they returned fired). That is how an embedder learns
 *         the stop completed: tw_reactor_stopping() is 0 again, and a
 *         TW_TRIGGER_AFTER trigger is the last thing the stop runs. From
 *         then on the reactor is usable again: listeners, connects and
 *         tw_reconnect_start() work as before the stop.
 */
TW_API int tw_reactor_stopping(const tw_reactor *r);

/**
 * How long tw_reactor_stop() lets connections drain before aborting them.
 * Set during a drain, the new timeout counts from now, so 0 aborts the
 * connections still open on the next turn of the loop (a second SIGTERM, as
 * operators expect). Never calls back synchronously.
 * @param seconds 0 aborts at once; the default is 30. A negative or
 *        non-finite value is ignored.
 */
TW_API void tw_reactor_set_shutdown_timeout(tw_reactor *r, double seconds);

/**
 * How long a connection that twine closes in order (lose_connection, the
 * peer's EOF, a graceful stop, an idle timeout, a protocol's limit) waits,
 * once its output is flushed and its FIN sent, for the peer to close too.
 * Meanwhile whatever the peer still sends is read and discarded, so the
 * kernel never answers unread input with a reset that would destroy output
 * the peer has not read yet. The protocol hears connection_lost when the
 * FIN is sent; only the socket lingers, and tw_reactor_stop() waits for it
 * (within the shutdown timeout). Applies to connections that start closing
 * from now on.
 * @param seconds 0 closes as soon as the FIN is sent; the default is 5.
 *        Negative or non-finite values are ignored.
 */
TW_API void tw_reactor_set_linger_timeout(tw_reactor *r, double seconds);

/** The default input budget: 256 MiB. */
#define TW_REACTOR_DEFAULT_INPUT_BUDGET ((size_t)256 << 20)

/**
 * A budget for the peers' input that protocols hold across all the
 * reactor's connections (what their buffered_input op reports: partial
 * lines, messages and boxes). Per-connection limits alone let many peers
 * that each stall just under their limit hold without bound. When the
 * total passes @p bytes, the connection holding the most is closed in order
 * (its queued output still goes out) with reason -ENOBUFS, and a warning
 * names it; this repeats until the total is back under the budget.
 * @param bytes 0 for no budget; the default is
 *        TW_REACTOR_DEFAULT_INPUT_BUDGET.
 */
TW_API void tw_reactor_set_input_budget(tw_reactor *r, size_t bytes);

/**
 * Make SIGINT and SIGTERM call tw_reactor_stop() on this reactor. Signals
 * are process-wide, so only an embedder that owns them should ask for this;
 * twine never touches signal dispositions otherwise.
 * @return 0, or a negated errno.
 */
TW_API int tw_reactor_handle_signals(tw_reactor *r);

/** @return the event_base under the reactor, owned by the reactor or host. */
TW_API struct event_base *tw_reactor_event_base(tw_reactor *r);

/** @return the reactor's clock: monotonic seconds, never the wall clock. */
TW_API double tw_reactor_seconds(const tw_reactor *r);

/**
 * Run @p fn(@p arg) after @p seconds on the monotonic clock. Calls due at the
 * same time run in the order they were made; a call made with delay 0 from
 * inside a callback runs on the next iteration, never the current one.
 *
 * @param out if non-NULL, receives a handle the caller owns and must release
 *        with tw_call_release(); it stays valid after the call ran or was
 *        cancelled. With NULL the call is fire-and-forget.
 * @return 0, -EINVAL for a negative or non-finite delay, or -ENOMEM.
 *         On error @p fn is never called.
 */
TW_API int tw_reactor_call_later(tw_reactor *r, double seconds, tw_call_fn fn, void *arg,
                                 tw_call **out);

/**
 * tw_reactor_call_later(), plus @p release(@p arg) when the call is dropped
 * without running: cancelled with tw_call_cancel(), or released pending by
 * the end of tw_reactor_stop() or by tw_reactor_free(). This is how a call
 * that owns @p arg (say, a reference) gives it back in every outcome:
 * @p fn runs or @p release runs, exactly one of them, once.
 * @return as tw_reactor_call_later(); on error neither runs.
 */
TW_API int tw_reactor_call_later_full(tw_reactor *r, double seconds, tw_call_fn fn, void *arg,
                                      tw_call_fn release, tw_call **out);

/**
 * Cancel a pending call. Inside the call's own function the call is no
 * longer pending: cancelling it there does nothing, and the handle stays
 * valid until released (tw_call_release() is safe there too).
 * @return 0, or TW_ESTATE if it already ran (or is running) or was cancelled.
 */
TW_API int tw_call_cancel(tw_call *c);

/** Reschedule a pending call to run @p seconds from now. @return 0, -EINVAL or TW_ESTATE. */
TW_API int tw_call_reset(tw_call *c, double seconds);

/** Push a pending call @p seconds later than it was due. @return 0, -EINVAL or TW_ESTATE. */
TW_API int tw_call_delay(tw_call *c, double seconds);

/** @return nonzero while the call is pending. */
TW_API int tw_call_active(const tw_call *c);

/** @return the reactor time at which a pending call is due. */
TW_API double tw_call_time(const tw_call *c);

/** Release the caller's handle. A pending call still runs. NULL is ignored. */
TW_API void tw_call_release(tw_call *c);

/** @return how many timed calls are pending. */
TW_API size_t tw_reactor_pending_calls(const tw_reactor *r);

/**
 * Replace the reactor's clock, for tests that drive time themselves (as
 * Twisted's task.Clock): @p now returns the current time in seconds. Timed
 * calls then run only when tw_reactor_run_due_calls() is called (or the loop
 * happens to run while the clock says they are due). NULL restores the
 * monotonic clock. Set it before scheduling calls.
 */
TW_API void tw_reactor_set_clock(tw_reactor *r, double (*now)(void *arg), void *arg);

/**
 * Run, in order, every timed call that the clock says is due, except calls
 * made by the calls being run (they wait for the next pass, as in the loop).
 * @return how many calls ran.
 */
TW_API size_t tw_reactor_run_due_calls(tw_reactor *r);

/**
 * Run @p fn(@p arg) on the reactor's thread, soon. This is the one function
 * that is safe to call from any thread, at any time while the reactor
 * exists. It wakes the loop; calls run in the order they were submitted.
 * A call still queued when the reactor is freed is dropped without
 * running; give it a release function with
 * tw_reactor_call_from_thread_full() when @p arg owns something.
 * @return 0, -EINVAL for a NULL @p fn, or -ENOMEM (then @p fn will not run).
 */
TW_API int tw_reactor_call_from_thread(tw_reactor *r, tw_call_fn fn, void *arg);

/**
 * tw_reactor_call_from_thread(), plus @p release(@p arg), on the reactor's
 * thread inside tw_reactor_free(), when the reactor is freed before the
 * call ran: @p fn runs or @p release runs, exactly one of them, once. Safe
 * from any thread while the reactor exists, as tw_reactor_call_from_thread();
 * the caller must make sure no thread submits once tw_reactor_free() began.
 * @return 0, -EINVAL for a NULL @p fn, or -ENOMEM (then neither runs).
 */
TW_API int tw_reactor_call_from_thread_full(tw_reactor *r, tw_call_fn fn, void *arg,
                                            tw_call_fn release);

/* ---- Shutdown triggers -------------------------------------------------- */

typedef enum {
    TW_TRIGGER_BEFORE = 0, /**< before anything stops; may delay shutdown */
    TW_TRIGGER_DURING = 1, /**< while listeners close and connections drain */
    TW_TRIGGER_AFTER = 2   /**< after every connection is gone, before run returns */
} tw_trigger_phase;

/**
 * A shutdown or startup trigger. It may return a deferred (the caller's
 * reference passes to the reactor) to make the event wait until it fires; a
 * failure is logged and the event goes on. Return NULL when there is nothing
 * to wait for.
 */
typedef struct tw_deferred *(*tw_trigger_fn)(void *arg);

/** Identifies a trigger for tw_reactor_remove_trigger(). */
typedef unsigned long tw_trigger_id;

/**
 * Add a system event trigger for shutdown, as Twisted's
 * addSystemEventTrigger(phase, "shutdown", ...). Triggers of one phase run
 * in the order they were added; the next phase starts once every deferred a
 * phase returned has fired.
 * @return 0 and sets @p id (if non-NULL), -EINVAL, or -ENOMEM.
 */
TW_API int tw_reactor_add_trigger(tw_reactor *r, tw_trigger_phase phase, tw_trigger_fn fn,
                                  void *arg, tw_trigger_id *id);

/** Remove a trigger (startup or shutdown) that has not run. @return 0, or TW_ESTATE if unknown. */
TW_API int tw_reactor_remove_trigger(tw_reactor *r, tw_trigger_id id);

/* ---- Startup triggers and call_when_running ------------------------------ */

/**
 * Add a system event trigger for startup, as Twisted's
 * addSystemEventTrigger(phase, "startup", ...): the same phases, order and
 * waiting as shutdown triggers (a returned deferred, whose reference passes
 * to the reactor, holds the next phase back until it fires; a failure is
 * logged and startup goes on). Startup begins when tw_reactor_run() is
 * called, before it dispatches anything; on an event_base the host drives
 * (tw_reactor_new_with_base()), on the loop's first pass after the reactor
 * was made (event_base_dispatch(), event_base_loop() or
 * tw_reactor_iterate()). A trigger added once startup passed its phase runs
 * at the next startup, after a stop and a new tw_reactor_run(). A stop
 * during startup abandons it: triggers that did not run wait for the next
 * tw_reactor_run(). Remove one with tw_reactor_remove_trigger().
 * @return 0 and sets @p id (if non-NULL), -EINVAL, or -ENOMEM.
 */
TW_API int tw_reactor_add_startup_trigger(tw_reactor *r, tw_trigger_phase phase,
                                          tw_trigger_fn fn, void *arg, tw_trigger_id *id);

/**
 * Call @p fn(@p arg) once the reactor is running, as Twisted's
 * callWhenRunning: at once (synchronously) if it is running, otherwise as
 * an "after" startup trigger.
 * @return 0, -EINVAL for a NULL @p fn, or -ENOMEM (then @p fn will not run).
 */
TW_API int tw_reactor_call_when_running(tw_reactor *r, tw_call_fn fn, void *arg);

/**
 * Whether the reactor is running in Twisted's sense: from the start of the
 * "during" startup phase until tw_reactor_stop() reaches its "during" phase.
 * For a host-driven event_base that is once the loop's first pass ran the
 * startup phases (and their deferreds fired), until a stop.
 * @return nonzero while running.
 */
TW_API int tw_reactor_running(const tw_reactor *r);

TW_END_DECLS

#endif
