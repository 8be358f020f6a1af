/* SPDX-License-Identifier: MIT */
/*
 * Looping calls. The schedule is a grid: run k is due at start + k*interval.
 * After each run the next due index is the first grid point strictly after
 * now, so a late run skips (and counts) the points it missed instead of
 * running them back to back. The looping call is reference-counted: its
 * owner holds one reference and a run holds another while the function
 * runs and while its deferred is pending, so freeing it from inside the
 * function, or while a run is pending, is safe.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <twine/looping.h>

struct tw_looping_call {
    tw_reactor *r;
    tw_looping_fn fn;
    void *arg;
    unsigned refs;
    int running;
    double interval;
    double start;
    unsigned long long next_index; /* grid index of the scheduled run */
    unsigned long long runs, skipped;
    tw_call *call;
    tw_deferred *done; /* fired on stop or failure */
};

static void unref(tw_looping_call *lc)
{
    if (--lc->refs == 0)
        free(lc);
}

TW_API tw_looping_call *tw_looping_call_new(tw_reactor *r, tw_looping_fn fn, void *arg)
{
    if (fn == NULL)
        return NULL;
    tw_looping_call *lc = calloc(1, sizeof *lc);
    if (lc == NULL)
        return NULL;
    lc->r = r;
    lc->fn = fn;
    lc->arg = arg;
    lc->refs = 1;
    return lc;
}

static void finish(tw_looping_call *lc, tw_failure *failure)
{
    lc->running = 0;
    if (lc->call != NULL) {
        tw_call_cancel(lc->call);
        tw_call_release(lc->call);
        lc->call = NULL;
    }
    tw_deferred *d = lc->done;
    lc->done = NULL;
    if (d == NULL) {
        tw_failure_unref(failure);
        return;
    }
    if (failure != NULL)
        tw_deferred_errback(d, failure);
    else
        tw_deferred_callback(d, NULL, NULL);
    tw_deferred_unref(d);
}

static void run(void *arg);

static void schedule_next(tw_looping_call *lc)
{
    if (!lc->running)
        return;
    double delay = 0;
    if (lc->interval > 0) {
        double now = tw_reactor_seconds(lc->r);
        unsigned long long due = (unsigned long long)floor((now - lc->start) / lc->interval) + 1;
        if (due > lc->next_index + 1)
            lc->skipped += due - lc->next_index - 1;
        if (due < lc->next_index + 1)
            due = lc->next_index + 1;
        lc->next_index = due;
        delay = lc->start + (double)due * lc->interval - now;
        if (delay < 0)
            delay = 0;
    }
    if (tw_reactor_call_later(lc->r, delay, run, lc, &lc->call) < 0)
        finish(lc, tw_failure_new(-ENOMEM, "looping call could not schedule its next run"));
}

static void run_done(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tw_looping_call *lc = arg;
    if (tw_result_is_failure(res)) {
        tw_failure *f = tw_result_take_failure(res);
        if (lc->running)
            finish(lc, f);
        else
            tw_failure_unref(f); /* stopped meanwhile: nobody to tell */
    } else {
        schedule_next(lc);
    }
    unref(lc);
}

static void run(void *arg)
{
    tw_looping_call *lc = arg;
    if (lc->call != NULL) {
        tw_call_release(lc->call);
        lc->call = NULL;
    }
    lc->runs++;
    lc->refs++; /* the function may free the looping call: not under us */
    tw_deferred *d = lc->fn(lc->arg);
    if (d == NULL) {
        schedule_next(lc);
        unref(lc);
        return;
    }
    /* The reference passes to the pending run, which run_done drops; if the
     * looping call was freed meanwhile, run_done only lets it go. */
    tw_deferred_add_both(d, run_done, lc);
    tw_deferred_unref(d);
}

TW_API int tw_looping_call_start(tw_looping_call *lc, double interval, int now,
                                 tw_deferred **out)
{
    if (!isfinite(interval) || interval < 0)
        return -EINVAL;
    if (lc->running)
        return TW_ESTATE;
    tw_deferred *done = tw_deferred_new(NULL, NULL);
    if (done == NULL)
        return -ENOMEM;
    lc->done = done;
    lc->running = 1;
    lc->interval = interval;
    lc->start = tw_reactor_seconds(lc->r);
    lc->runs = lc->skipped = 0;
    lc->next_index = 0;
    if (out != NULL)
        *out = tw_deferred_ref(done);
    if (now) {
        run(lc);
    } else {
        double delay = interval;
        lc->next_index = 1;
        if (tw_reactor_call_later(lc->r, delay, run, lc, &lc->call) < 0) {
            finish(lc, tw_failure_new(-ENOMEM, NULL));
            return 0; /* the failure is on the deferred */
        }
    }
    return 0;
}

TW_API int tw_looping_call_stop(tw_looping_call *lc)
{
    if (!lc->running)
        return TW_ESTATE;
    finish(lc, NULL);
    return 0;
}

TW_API int tw_looping_call_running(const tw_looping_call *lc)
{
    return lc->running;
}

TW_API unsigned long long tw_looping_call_runs(const tw_looping_call *lc)
{
    return lc->runs;
}

TW_API unsigned long long tw_looping_call_skipped(const tw_looping_call *lc)
{
    return lc->skipped;
}

TW_API void tw_looping_call_free(tw_looping_call *lc)
{
    if (lc == NULL)
        return;
    if (lc->running)
        finish(lc, NULL);
    unref(lc);
}
