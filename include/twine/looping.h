/* SPDX-License-Identifier: MIT */
/*
 * Looping calls: run a function every N seconds, as Twisted's
 * task.LoopingCall. Runs are aligned to the start time (start + k*interval);
 * when the loop falls behind, the missed ticks are skipped and counted, not
 * run in a burst. When the function returns a deferred, the next run waits
 * until it fires.
 */
#ifndef TWINE_LOOPING_H
#define TWINE_LOOPING_H

#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

typedef struct tw_looping_call tw_looping_call;

/**
 * The repeated function. Return NULL when it finished, or a deferred (the
 * caller's reference passes to the looping call) to make the next run wait
 * for it; a deferred that fails -- tw_deferred_fail() for a synchronous
 * failure -- stops the loop and fails the deferred returned by start.
 */
typedef tw_deferred *(*tw_looping_fn)(void *arg);

/**
 * Make a looping call. It does nothing until started.
 * @return a looping call owned by the caller (tw_looping_call_free()), or
 *         NULL when out of memory.
 */
TW_API tw_looping_call *tw_looping_call_new(tw_reactor *r, tw_looping_fn fn, void *arg);

/**
 * Start running every @p interval seconds (0 means as often as the loop
 * allows). With @p now nonzero the first run happens inside this call.
 * @param out if non-NULL, receives a deferred (the caller's reference) that
 *        fires with a NULL value when the loop is stopped, or fails with
 *        the function's failure.
 * @return 0, -EINVAL for a negative or non-finite interval, TW_ESTATE if
 *         already running, -ENOMEM.
 */
TW_API int tw_looping_call_start(tw_looping_call *lc, double interval, int now,
                                 tw_deferred **out);

/**
 * Stop: no further runs; the start deferred fires now (synchronously). It
 * may be called from anywhere, the looped function included, as Twisted's
 * LoopingCall.stop().
 * @return 0, or TW_ESTATE if it was not running.
 */
TW_API int tw_looping_call_stop(tw_looping_call *lc);

/** @return nonzero while started and not stopped or failed. */
TW_API int tw_looping_call_running(const tw_looping_call *lc);

/** @return how many times the function ran since the last start. */
TW_API unsigned long long tw_looping_call_runs(const tw_looping_call *lc);

/** @return how many ticks were skipped because a run came late. */
TW_API unsigned long long tw_looping_call_skipped(const tw_looping_call *lc);

/**
 * Stop if running (the start deferred fires, synchronously) and free the
 * looping call. It may be called from inside the looped function or from a
 * callback of the deferred that function returned: the memory goes once
 * that call returned. NULL is ignored.
 */
TW_API void tw_looping_call_free(tw_looping_call *lc);

TW_END_DECLS

#endif
