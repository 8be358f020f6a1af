/* SPDX-License-Identifier: MIT */
/*
 * Timed calls. twine keeps its own binary heap ordered by (due time,
 * sequence number) and arms a single libevent timer for the earliest entry.
 * The sequence number is what makes calls due at the same instant run in
 * the order they were made (libevent's own heap does not promise that), and
 * what keeps a delay-0 call made from inside a timer callback out of the
 * batch that is running. Insert, cancel and reschedule are O(log n), so a
 * million pending calls cost a million log-steps, not a million squared.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <event2/event.h>

#include "core/reactor_internal.h"

enum { CALL_PENDING, CALL_RAN, CALL_CANCELLED };

struct tw_call {
    tw_reactor *r; /* NULL once the reactor was freed */
    tw_call_fn fn;
    tw_call_fn release; /* runs instead of fn when dropped; may be NULL */
    void *arg;
    double when;
    uint64_t seq;
    size_t heap_index;
    unsigned char state;
    unsigned char user_ref; /* the caller holds a handle */
    unsigned char running;  /* inside its own callback: not freed there */
};

double tw__monotonic(void *unused)
{
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int earlier(const tw_call *a, const tw_call *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(tw__timer_heap *h, size_t i, tw_call *c)
{
    h->items[i] = c;
    c->heap_index = i;
}

static void sift_up(tw__timer_heap *h, size_t i)
{
    tw_call *c = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(c, h->items[parent]))
            break;
        heap_set(h, i, h->items[parent]);
        i = parent;
    }
    heap_set(h, i, c);
}

static void sift_down(tw__timer_heap *h, size_t i)
{
    tw_call *c = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && earlier(h->items[child + 1], h->items[child]))
            child++;
        if (!earlier(h->items[child], c))
            break;
        heap_set(h, i, h->items[child]);
        i = child;
    }
    heap_set(h, i, c);
}

static int heap_push(tw__timer_heap *h, tw_call *c)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tw_call **items = realloc(h->items, cap * sizeof *items);
        if (items == NULL)
            return -ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    heap_set(h, h->count++, c);
    sift_up(h, h->count - 1);
    return 0;
}

static void heap_remove(tw__timer_heap *h, tw_call *c)
{
    size_t i = c->heap_index;
    tw_call *last = h->items[--h->count];
    c->heap_index = SIZE_MAX;
    if (last == c)
        return;
    heap_set(h, i, last);
    if (i > 0 && earlier(last, h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

/*
 * How far libevent's clock may run behind ours. libevent measures timeouts
 * on CLOCK_MONOTONIC_COARSE unless the base was made with
 * EVENT_BASE_FLAG_PRECISE_TIMER (which costs a timerfd_settime() per loop
 * pass), and that clock lags CLOCK_MONOTONIC by up to one tick. A deadline
 * handed over without this lag can expire by libevent's reckoning while the
 * call is still a few milliseconds from due by ours: a wake-up that runs
 * nothing, and one that ends a host's EVLOOP_ONCE pass or a
 * tw_reactor_iterate() for nothing.
 */
static double coarse_now(void) /* 0 where there is no coarse clock */
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec coarse;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse) == 0)
        return (double)coarse.tv_sec + (double)coarse.tv_nsec / 1e9;
#endif
    return 0;
}

/* Point the libevent timer at the earliest pending call, never before it
 * is due: a timer that fires early costs a loop pass that runs nothing. */
static void rearm(tw_reactor *r)
{
    if (r->timers.count == 0) {
        evtimer_del(r->timer_ev);
        return;
    }
    double delay, lag = 0;
    if (r->clock == tw__monotonic) {
        /* The coarse reading first, so the lag is never understated. */
        double theirs = coarse_now();
        double now = tw__monotonic(NULL);
        delay = r->timers.items[0]->when - now;
        if (now > theirs && theirs > 0)
            lag = now - theirs;
    } else {
        delay = r->timers.items[0]->when - r->clock(r->clock_arg);
    }
    if (delay < 0)
        delay = 0;
    else
        delay += lag;
    /* Inside a loop pass libevent adds the delay to the time it cached at
     * the top of the pass; callbacks may have run for a while since. Refresh
     * the cache only after reading our clocks so it is not older than them. */
    event_base_update_cache_time(r->base);
    struct timeval tv;
    tv.tv_sec = (time_t)delay;
    /* Round up: truncating to whole microseconds could land just early. */
    tv.tv_usec = (suseconds_t)ceil((delay - (double)tv.tv_sec) * 1e6);
    if (tv.tv_usec >= 1000000) {
        tv.tv_sec++;
        tv.tv_usec -= 1000000;
    }
    evtimer_add(r->timer_ev, &tv);
}

static void release_if_unowned(tw_call *c)
{
    if (!c->user_ref && !c->running && c->state != CALL_PENDING)
        free(c);
}

static size_t run_due(tw_reactor *r)
{
    double now = r->clock(r->clock_arg);
    uint64_t cutoff = r->next_seq; /* calls made from here on wait a turn */
    size_t ran = 0;
    tw__enter(r);

    while (r->timers.count > 0) {
        tw_call *c = r->timers.items[0];
        if (c->when > now || c->seq >= cutoff)
            break;
        heap_remove(&r->timers, c);
        c->state = CALL_RAN;
        c->running = 1;
        c->fn(c->arg);
        c->running = 0;
        release_if_unowned(c);
        ran++;
    }
    rearm(r);
    tw__leave(r);
    return ran;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_due(arg);
}

TW_API size_t tw_reactor_run_due_calls(tw_reactor *r)
{
    return run_due(r);
}

TW_API void tw_reactor_set_clock(tw_reactor *r, double (*now)(void *arg), void *arg)
{
    r->clock = now != NULL ? now : tw__monotonic;
    r->clock_arg = now != NULL ? arg : NULL;
    rearm(r);
}

void tw__timers_cancel_all(tw_reactor *r)
{
    while (r->timers.count > 0)
        tw_call_cancel(r->timers.items[0]);
}

int tw__timers_init(tw_reactor *r)
{
    r->timer_ev = evtimer_new(r->base, on_timer, r);
    return r->timer_ev != NULL ? 0 : -ENOMEM;
}

void tw__timers_free(tw_reactor *r)
{
    /* Take every pending call off the heap before running any release
     * function: a release may cancel, release or schedule calls (a dropped
     * deferred timeout lets go of its own handle), and each must then see
     * the call already dropped. */
    tw__timer_heap dropped = r->timers;
    r->timers.items = NULL;
    r->timers.count = r->timers.cap = 0;
    for (size_t i = 0; i < dropped.count; i++) {
        tw_call *c = dropped.items[i];
        c->state = CALL_CANCELLED;
        c->r = NULL;
        c->heap_index = SIZE_MAX;
        c->running = 1; /* not freed by its release dropping the handle */
    }
    for (size_t i = 0; i < dropped.count; i++) {
        tw_call *c = dropped.items[i];
        if (c->release != NULL)
            c->release(c->arg);
        c->running = 0;
        release_if_unowned(c);
    }
    free(dropped.items);
    /* What a release scheduled while the reactor goes is dropped too. */
    if (r->timers.count > 0)
        tw__timers_free(r);
    if (r->timer_ev != NULL)
        event_free(r->timer_ev);
    r->timer_ev = NULL;
}

static int valid_delay(double seconds)
{
    return isfinite(seconds) && seconds >= 0;
}

TW_API int tw_reactor_call_later(tw_reactor *r, double seconds, tw_call_fn fn, void *arg,
                                 tw_call **out)
{
    return tw_reactor_call_later_full(r, seconds, fn, arg, NULL, out);
}

TW_API int tw_reactor_call_later_full(tw_reactor *r, double seconds, tw_call_fn fn, void *arg,
                                      tw_call_fn release, tw_call **out)
{
    if (!valid_delay(seconds) || fn == NULL)
        return -EINVAL;
    tw_call *c = malloc(sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->r = r;
    c->fn = fn;
    c->release = release;
    c->arg = arg;
    c->when = r->clock(r->clock_arg) + seconds;
    c->seq = r->next_seq++;
    c->state = CALL_PENDING;
    c->user_ref = out != NULL;
    c->running = 0;
    if (heap_push(&r->timers, c) < 0) {
        free(c);
        return -ENOMEM;
    }
    if (c->heap_index == 0)
        rearm(r);
    if (out != NULL)
        *out = c;
    return 0;
}

TW_API int tw_call_cancel(tw_call *c)
{
    if (c == NULL || c->state != CALL_PENDING)
        return TW_ESTATE;
    tw_reactor *r = c->r;
    int was_first = c->heap_index == 0;
    heap_remove(&r->timers, c);
    c->state = CALL_CANCELLED;
    if (was_first)
        rearm(r);
    if (c->release != NULL) {
        c->running = 1; /* keep the handle alive if release drops it */
        c->release(c->arg);
        c->running = 0;
    }
    release_if_unowned(c);
    return 0;
}

static int reschedule(tw_call *c, double when)
{
    tw_reactor *r = c->r;
    heap_remove(&r->timers, c);
    c->when = when;
    c->seq = r->next_seq++;
    heap_push(&r->timers, c); /* cannot fail: the slot it left is free */
    rearm(r);
    return 0;
}

TW_API int tw_call_reset(tw_call *c, double seconds)
{
    if (c == NULL || c->state != CALL_PENDING)
        return TW_ESTATE;
    if (!valid_delay(seconds))
        return -EINVAL;
    return reschedule(c, c->r->clock(c->r->clock_arg) + seconds);
}

TW_API int tw_call_delay(tw_call *c, double seconds)
{
    if (c == NULL || c->state != CALL_PENDING)
        return TW_ESTATE;
    if (!isfinite(seconds))
        return -EINVAL;
    return reschedule(c, c->when + seconds);
}

TW_API int tw_call_active(const tw_call *c)
{
    return c != NULL && c->state == CALL_PENDING;
}

TW_API double tw_call_time(const tw_call *c)
{
    return c->when;
}

TW_API void tw_call_release(tw_call *c)
{
    if (c == NULL)
        return;
    c->user_ref = 0;
    release_if_unowned(c);
}

TW_API size_t tw_reactor_pending_calls(const tw_reactor *r)
{
    return r->timers.count;
}
