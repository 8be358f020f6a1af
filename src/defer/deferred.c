/* SPDX-License-Identifier: MIT */
/*
 * The deferred core: firing, the callback chain, waiting on other deferreds,
 * pause, cancel, release and unhandled-failure reports.
 *
 * Nothing here recurses on the shape of the data. A chain is a queue of
 * entries run in a loop; a deferred waiting on another sits in that one's
 * queue as a "continuation" entry, and when the continuation is reached the
 * waiting deferred is pushed on an intrusive stack and run by the same loop,
 * as Twisted's _runCallbacks does. Releases go through a per-thread queue,
 * so dropping the head of a long chain frees it in a loop. Only user code
 * calling back into deferreds from a callback nests, by its own choice.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <twine/deferred.h>
#include <twine/log.h>

#include "defer/deferred_internal.h"

struct tw_result {
    void *value;         /* owned; meaningful only when failure == NULL */
    tw_free_fn free_fn;  /* destroys value */
    tw_failure *failure; /* owned; non-NULL on the errback path */
    tw_deferred *inner;  /* set by tw_result_set_deferred, owned until linked */
};

/* One callback pair, or the continuation of a deferred waiting on this one. */
typedef struct entry {
    struct entry *next;
    tw_deferred_fn cb, eb;
    void *arg;
    tw_free_fn arg_free;
    tw_deferred *waiter; /* continuation: owns a reference to the waiter */
} entry;

typedef struct site {
    const char *file;
    int line;
} site;

#define F_CALLED 0x01u     /* fired: the result slot is in use */
#define F_WAITING 0x02u    /* the chain waits on another deferred */
#define F_ON_STACK 0x04u   /* some run loop will come back to it */
#define F_SUPPRESS 0x08u   /* swallow one late callback (cancelled) */
#define F_CANCELLING 0x10u /* inside its canceller */

struct tw_deferred {
    size_t refs;
    unsigned flags;
    int paused;
    struct tw_result result;
    tw_deferred *waiting_on; /* weak; cleared when the continuation goes */
    tw_deferred *link;       /* run-loop stack, or the release queue */
    entry *head, *tail;
    tw_canceller_fn canceller;
    void *canceller_arg;
    tw_free_fn canceller_free;
    site created, fired; /* recorded in debug mode only */
};

/* -1: not decided yet, follow TWINE_DEFERRED_DEBUG on first use. */
static atomic_int debug_mode = -1;

/* Deferreds whose last reference went, released in order by one loop. */
static _Thread_local tw_deferred *reap_head, *reap_tail;
static _Thread_local int reaping;

static int debug_on(void)
{
    int on = atomic_load_explicit(&debug_mode, memory_order_relaxed);
    if (on < 0) {
        const char *env = getenv("TWINE_DEFERRED_DEBUG");
        on = env != NULL && strtol(env, NULL, 10) != 0;
        atomic_store_explicit(&debug_mode, on, memory_order_relaxed);
    }
    return on;
}

TW_API void tw_deferred_set_debug(int on)
{
    atomic_store_explicit(&debug_mode, on < 0 ? -1 : on != 0, memory_order_relaxed);
}

TW_API int tw_deferred_get_debug(void)
{
    return debug_on();
}

static void record(site *s, const char *file, int line)
{
    if (debug_on()) {
        s->file = file;
        s->line = line;
    }
}

static void clear_result(struct tw_result *r)
{
    void *value = r->value;
    tw_free_fn free_fn = r->free_fn;
    tw_failure *failure = r->failure;
    tw_deferred *inner = r->inner;
    memset(r, 0, sizeof *r);
    /* Destroyed after the slot is clean: a destructor may look at it. */
    if (free_fn != NULL)
        free_fn(value);
    tw_failure_unref(failure);
    tw_deferred_unref(inner);
}

/* ---- Release ----------------------------------------------------------- */

static void report_unhandled(const tw_deferred *d)
{
    char text[768];
    size_t need = tw_failure_format(d->result.failure, text, sizeof text);
    if (need >= sizeof text)
        memcpy(text + sizeof text - 4, "...", 4);
    if (d->created.file != NULL || d->fired.file != NULL)
        tw_log(TW_LOG_ERROR, "deferred",
               "unhandled failure in deferred created at %s:%d, fired at %s:%d: %s",
               d->created.file ? d->created.file : "?", d->created.line,
               d->fired.file ? d->fired.file : "?", d->fired.line, text);
    else
        tw_log(TW_LOG_ERROR, "deferred",
               "unhandled failure in deferred: %s (TWINE_DEFERRED_DEBUG=1 shows where it was "
               "created and fired)",
               text);
}

/* Drop an entry of @p owner that will never run. */
static void drop_entry(const tw_deferred *owner, entry *e)
{
    if (e->waiter != NULL) {
        if (e->waiter->waiting_on == owner)
            e->waiter->waiting_on = NULL;
        tw_deferred_unref(e->waiter);
    } else if (e->arg_free != NULL) {
        e->arg_free(e->arg);
    }
    free(e);
}

static void drop_canceller(tw_deferred *d)
{
    tw_free_fn arg_free = d->canceller_free;
    void *arg = d->canceller_arg;
    d->canceller = NULL;
    d->canceller_arg = NULL;
    d->canceller_free = NULL;
    if (arg_free != NULL)
        arg_free(arg);
}

static void destroy(tw_deferred *d)
{
    if (d->result.failure != NULL)
        report_unhandled(d);
    clear_result(&d->result);
    while (d->head != NULL) {
        entry *e = d->head;
        d->head = e->next;
        drop_entry(d, e);
    }
    d->tail = NULL;
    drop_canceller(d);
    free(d);
}

TW_API tw_deferred *tw_deferred_ref(tw_deferred *d)
{
    if (d != NULL)
        d->refs++;
    return d;
}

TW_API void tw_deferred_unref(tw_deferred *d)
{
    if (d == NULL)
        return;
    if (d->refs == 0) {
        /* Only reachable while it waits in the queue below. */
        tw_log(TW_LOG_ERROR, "deferred", "deferred released more often than referenced");
        return;
    }
    if (--d->refs > 0)
        return;
    d->link = NULL;
    if (reap_tail != NULL)
        reap_tail->link = d;
    else
        reap_head = d;
    reap_tail = d;
    if (reaping)
        return;
    reaping = 1;
    while ((d = reap_head) != NULL) {
        reap_head = d->link;
        if (reap_head == NULL)
            reap_tail = NULL;
        destroy(d);
    }
    reaping = 0;
}

int tw__deferred_alive(const tw_deferred *d)
{
    return d->refs > 0;
}

/* ---- Creation ---------------------------------------------------------- */

tw_deferred *tw__deferred_new_full(tw_canceller_fn canceller, void *arg, tw_free_fn arg_free,
                                   const char *file, int line)
{
    tw_deferred *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->refs = 1;
    d->canceller = canceller;
    d->canceller_arg = arg;
    d->canceller_free = arg_free;
    record(&d->created, file, line);
    return d;
}

TW_API tw_deferred *tw_deferred_new_at(tw_canceller_fn canceller, void *arg, const char *file,
                                       int line)
{
    return tw__deferred_new_full(canceller, arg, NULL, file, line);
}

/* ---- The run loop ------------------------------------------------------ */

static int runnable(const tw_deferred *d)
{
    return (d->flags & (F_CALLED | F_WAITING)) == F_CALLED && d->paused == 0;
}

static void append(tw_deferred *d, entry *e)
{
    e->next = NULL;
    if (d->tail != NULL)
        d->tail->next = e;
    else
        d->head = e;
    d->tail = e;
}

/*
 * A callback of @p cur asked the chain to wait for another deferred. Take its
 * result now if it has a settled one, otherwise park a continuation in its
 * queue and mark @p cur waiting. Unlike Twisted, a deferred whose own chain
 * is running (we were called from inside it) counts as unsettled: its
 * running callback may still be using the value it was lent, so cur gets
 * the result that chain ends with instead.
 */
static void wait_for_inner(tw_deferred *cur)
{
    tw_deferred *inner = cur->result.inner;
    cur->result.inner = NULL; /* its reference is ours now */

    if (runnable(inner) && !(inner->flags & F_ON_STACK)) {
        cur->result = inner->result;
        memset(&inner->result, 0, sizeof inner->result);
        tw_deferred_unref(inner);
        return;
    }
    entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        cur->result.failure = tw_failure_new(-ENOMEM, "cannot wait for a deferred: out of memory");
        tw_deferred_unref(inner);
        return;
    }
    e->waiter = tw_deferred_ref(cur);
    append(inner, e);
    cur->flags |= F_WAITING;
    cur->waiting_on = inner;
    /* The chain does not keep alive what it waits on (see the header); if
     * this was the last reference, the continuation goes and cur stays
     * waiting on nothing, which only a cancel can end. */
    tw_deferred_unref(inner);
}

static void push(tw_deferred **stack, tw_deferred *d)
{
    d->flags |= F_ON_STACK;
    d->link = *stack;
    *stack = d;
}

/*
 * Run @p cur's entries until it runs out, pauses or waits (return 0), or
 * hands its result to a waiting deferred, which is pushed so that it runs
 * before cur's remaining entries (return 1).
 */
static int step(tw_deferred *cur, tw_deferred **stack)
{
    while (cur->head != NULL && runnable(cur)) {
        entry *e = cur->head;
        cur->head = e->next;
        if (cur->head == NULL)
            cur->tail = NULL;

        if (e->waiter != NULL) {
            tw_deferred *w = e->waiter;
            free(e);
            if (!(w->flags & F_WAITING) || w->waiting_on != cur) {
                tw_deferred_unref(w); /* a cancel already resumed it */
                continue;
            }
            w->waiting_on = NULL;
            w->flags &= ~F_WAITING;
            w->result = cur->result; /* the waiter takes the result over */
            memset(&cur->result, 0, sizeof cur->result);
            if (w->flags & F_ON_STACK) {
                tw_deferred_unref(w); /* its own run loop resumes it */
                continue;
            }
            push(stack, w); /* with the continuation's reference */
            return 1;
        }

        tw_deferred_fn fn = cur->result.failure != NULL ? e->eb : e->cb;
        if (fn != NULL)
            fn(cur, &cur->result, e->arg);
        if (e->arg_free != NULL)
            e->arg_free(e->arg);
        free(e);
        if (cur->result.inner != NULL)
            wait_for_inner(cur);
    }
    return 0;
}

static void run_callbacks(tw_deferred *d)
{
    if (d->flags & F_ON_STACK)
        return; /* a run loop below us is on it and will see the change */
    tw_deferred *stack = NULL;
    push(&stack, tw_deferred_ref(d));
    while (stack != NULL) {
        tw_deferred *cur = stack;
        if (step(cur, &stack))
            continue;
        stack = cur->link;
        cur->link = NULL;
        cur->flags &= ~F_ON_STACK;
        tw_deferred_unref(cur);
    }
}

/* ---- Firing ------------------------------------------------------------ */

static void discard(void *value, tw_free_fn free_fn, tw_failure *failure)
{
    if (free_fn != NULL)
        free_fn(value);
    tw_failure_unref(failure);
}

static int fire(tw_deferred *d, void *value, tw_free_fn free_fn, tw_failure *failure,
                const char *file, int line)
{
    if (d == NULL) {
        discard(value, free_fn, failure);
        return -EINVAL;
    }
    if (d->flags & F_CALLED) {
        discard(value, free_fn, failure);
        if (d->flags & F_SUPPRESS) {
            d->flags &= ~F_SUPPRESS;
            return 0;
        }
        if (d->fired.file != NULL)
            tw_log(TW_LOG_ERROR, "deferred", "deferred fired twice: first at %s:%d, again at %s:%d",
                   d->fired.file, d->fired.line, file ? file : "?", line);
        else
            tw_log(TW_LOG_ERROR, "deferred", "deferred fired twice, again at %s:%d",
                   file ? file : "?", line);
        return TW_EALREADY_FIRED;
    }
    d->flags |= F_CALLED;
    record(&d->fired, file, line);
    d->result.value = failure != NULL ? NULL : value;
    d->result.free_fn = failure != NULL ? NULL : free_fn;
    d->result.failure = failure;
    if (!(d->flags & F_CANCELLING))
        drop_canceller(d); /* never needed again; cancel() drops it otherwise */
    run_callbacks(d);
    return 0;
}

TW_API int tw_deferred_callback_at(tw_deferred *d, void *value, tw_free_fn free_fn,
                                   const char *file, int line)
{
    return fire(d, value, free_fn, NULL, file, line);
}

TW_API int tw_deferred_errback_at(tw_deferred *d, tw_failure *failure, const char *file, int line)
{
    if (failure == NULL)
        failure = tw_failure_new(TW_EFAIL, NULL);
    return fire(d, NULL, NULL, failure, file, line);
}

TW_API tw_deferred *tw_deferred_succeed_at(void *value, tw_free_fn free_fn, const char *file,
                                           int line)
{
    tw_deferred *d = tw__deferred_new_full(NULL, NULL, NULL, file, line);
    if (d == NULL) {
        discard(value, free_fn, NULL);
        return NULL;
    }
    fire(d, value, free_fn, NULL, file, line);
    return d;
}

TW_API tw_deferred *tw_deferred_fail_at(tw_failure *failure, const char *file, int line)
{
    if (failure == NULL)
        failure = tw_failure_new(TW_EFAIL, NULL);
    tw_deferred *d = tw__deferred_new_full(NULL, NULL, NULL, file, line);
    if (d == NULL) {
        tw_failure_unref(failure);
        return NULL;
    }
    fire(d, NULL, NULL, failure, file, line);
    return d;
}

TW_API tw_deferred *tw_maybe_deferred_at(tw_deferred_fn fn, void *arg, const char *file, int line)
{
    if (fn == NULL)
        return NULL;
    tw_deferred *d = tw_deferred_succeed_at(NULL, NULL, file, line);
    if (d == NULL)
        return NULL;
    /* A deferred that just fired has nothing queued: fn runs without an
     * entry, so past the deferred itself nothing can run out of memory. */
    if (!tw__deferred_run_settled(d, fn, NULL, arg) && tw_deferred_add_callback(d, fn, arg) < 0) {
        tw_deferred_unref(d);
        return NULL;
    }
    return d;
}

/* ---- Adding callbacks, pause ------------------------------------------- */

TW_API int tw_deferred_add_callbacks_full(tw_deferred *d, tw_deferred_fn cb, tw_deferred_fn eb,
                                          void *arg, tw_free_fn arg_free)
{
    if (d == NULL)
        return -EINVAL;
    entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    e->cb = cb;
    e->eb = eb;
    e->arg = arg;
    e->arg_free = arg_free;
    append(d, e);
    if (runnable(d))
        run_callbacks(d);
    return 0;
}

int tw__deferred_settled(const tw_deferred *d)
{
    return d != NULL && runnable(d) && !(d->flags & F_ON_STACK) && d->head == NULL;
}

int tw__deferred_run_settled(tw_deferred *d, tw_deferred_fn cb, tw_deferred_fn eb, void *arg)
{
    if (!tw__deferred_settled(d))
        return 0;
    /* What step() does for a queued pair, with the reference run_callbacks() holds. */
    tw_deferred_ref(d);
    d->flags |= F_ON_STACK;
    tw_deferred_fn fn = d->result.failure != NULL ? eb : cb;
    if (fn != NULL)
        fn(d, &d->result, arg);
    if (d->result.inner != NULL)
        wait_for_inner(d);
    d->flags &= ~F_ON_STACK;
    /* Pairs added while fn ran were left for this loop to run, as in step(). */
    if (d->head != NULL && runnable(d))
        run_callbacks(d);
    tw_deferred_unref(d);
    return 1;
}

TW_API int tw_deferred_add_callbacks(tw_deferred *d, tw_deferred_fn cb, tw_deferred_fn eb,
                                     void *arg)
{
    return tw_deferred_add_callbacks_full(d, cb, eb, arg, NULL);
}

TW_API int tw_deferred_add_callback(tw_deferred *d, tw_deferred_fn cb, void *arg)
{
    return tw_deferred_add_callbacks_full(d, cb, NULL, arg, NULL);
}

TW_API int tw_deferred_add_errback(tw_deferred *d, tw_deferred_fn eb, void *arg)
{
    return tw_deferred_add_callbacks_full(d, NULL, eb, arg, NULL);
}

TW_API int tw_deferred_add_both(tw_deferred *d, tw_deferred_fn fn, void *arg)
{
    return tw_deferred_add_callbacks_full(d, fn, fn, arg, NULL);
}

TW_API int tw_deferred_pause(tw_deferred *d)
{
    if (d == NULL)
        return -EINVAL;
    if (d->paused == INT_MAX)
        return TW_ESTATE;
    d->paused++;
    return 0;
}

TW_API int tw_deferred_unpause(tw_deferred *d)
{
    if (d == NULL)
        return -EINVAL;
    if (d->paused == 0)
        return TW_ESTATE;
    if (--d->paused == 0 && runnable(d))
        run_callbacks(d);
    return 0;
}

/* ---- Cancel ------------------------------------------------------------ */

TW_API int tw_deferred_cancel_at(tw_deferred *d, const char *file, int line)
{
    if (d == NULL)
        return -EINVAL;
    /* A fired chain waiting on another is cancelled by cancelling the
     * deferred at the bottom of the wait; walking there keeps a deep chain
     * off the C stack. */
    while ((d->flags & F_WAITING) && d->waiting_on != NULL && tw__deferred_alive(d->waiting_on))
        d = d->waiting_on;
    tw_deferred_ref(d);

    if (!(d->flags & F_CALLED)) {
        if (!(d->flags & F_CANCELLING)) {
            d->flags |= F_CANCELLING;
            if (d->canceller != NULL)
                d->canceller(d, d->canceller_arg);
            else
                d->flags |= F_SUPPRESS; /* the operation goes on; eat its result */
            d->flags &= ~F_CANCELLING;
            if (d->flags & F_CALLED)
                drop_canceller(d);
            else
                fire(d, NULL, NULL, tw_failure_new(TW_ECANCELLED, NULL), file, line);
        }
    } else if (d->flags & F_WAITING) {
        /* What it waited on was released unfired: nothing but this can
         * resume it, so resume it as if that one had been cancelled. */
        d->flags &= ~F_WAITING;
        d->waiting_on = NULL;
        d->result.failure = tw_failure_new(TW_ECANCELLED, NULL);
        run_callbacks(d);
    }
    tw_deferred_unref(d);
    return 0;
}

/* ---- Results ----------------------------------------------------------- */

TW_API int tw_result_is_failure(const tw_result *res)
{
    return res != NULL && res->failure != NULL;
}

TW_API void *tw_result_value(const tw_result *res)
{
    return res != NULL ? res->value : NULL;
}

TW_API const tw_failure *tw_result_failure(const tw_result *res)
{
    return res != NULL ? res->failure : NULL;
}

TW_API void *tw_result_take_value(tw_result *res, tw_free_fn *free_fn)
{
    if (res == NULL || free_fn == NULL || res->failure != NULL) {
        if (free_fn != NULL)
            *free_fn = NULL;
        return NULL;
    }
    void *value = res->value;
    *free_fn = res->free_fn;
    res->value = NULL;
    res->free_fn = NULL;
    return value;
}

TW_API tw_failure *tw_result_take_failure(tw_result *res)
{
    if (res == NULL)
        return NULL;
    tw_failure *f = res->failure;
    res->failure = NULL;
    return f;
}

TW_API void tw_result_set_value(tw_result *res, void *value, tw_free_fn free_fn)
{
    if (res == NULL) {
        discard(value, free_fn, NULL);
        return;
    }
    if (res->failure == NULL && res->inner == NULL && res->value == value && value != NULL) {
        res->free_fn = free_fn;
        return;
    }
    clear_result(res);
    res->value = value;
    res->free_fn = free_fn;
}

TW_API void tw_result_set_failure(tw_result *res, tw_failure *failure)
{
    if (failure == NULL)
        failure = tw_failure_new(TW_EFAIL, NULL);
    if (res == NULL) {
        tw_failure_unref(failure);
        return;
    }
    clear_result(res);
    res->failure = failure;
}

TW_API int tw_result_set_deferred(tw_result *res, tw_deferred *inner)
{
    if (res == NULL || inner == NULL || inner == tw_container_of(res, tw_deferred, result))
        return -EINVAL;
    tw_deferred_ref(inner); /* before clearing: it may be the inner already set */
    clear_result(res);
    res->inner = inner;
    return 0;
}

/* ---- Introspection ----------------------------------------------------- */

TW_API int tw_deferred_called(const tw_deferred *d)
{
    return d != NULL && (d->flags & F_CALLED) != 0;
}

TW_API int tw_deferred_waiting(const tw_deferred *d)
{
    return d != NULL && (d->flags & F_WAITING) != 0;
}

TW_API int tw_deferred_paused(const tw_deferred *d)
{
    return d != NULL ? d->paused : 0;
}
