/* SPDX-License-Identifier: MIT */
/*
 * The reactor: an event_base plus what twine hangs off it. It owns the loop's
 * life: run, graceful stop (listeners first, then connections drain up to a
 * timeout), signals when an embedder asks for them, and free, which leaves a
 * host-owned event_base as it found it.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <event2/event.h>
#include <twine/log.h>
#include <twine/threadpool.h>

#include "core/poller_internal.h"
#include "core/reactor_internal.h"

#define DEFAULT_SHUTDOWN_TIMEOUT 30.0
/* nginx's lingering_timeout: a peer that read our FIN closes within a round
 * trip; one that goes on sending for this long is cut off. */
#define DEFAULT_LINGER_TIMEOUT 5.0

/* Shutdown phases beyond tw_trigger_phase's three. */
enum { PHASE_NONE = -1, PHASE_DONE = 3 };

/* libevent's own messages (evdns's "Nameserver ... has failed", an epoll
 * error) go to twine's sink rather than straight to stderr, so they reach
 * reactord's log file, its JSON format, or an embedder's handler. */
static void libevent_log(int severity, const char *msg)
{
    tw_log_level level = severity == EVENT_LOG_DEBUG ? TW_LOG_DEBUG
                         : severity == EVENT_LOG_MSG ? TW_LOG_INFO
                         : severity == EVENT_LOG_WARN ? TW_LOG_WARN
                                                      : TW_LOG_ERROR;
    tw_log(level, "libevent", "%s", msg);
}

static tw_reactor *reactor_init(struct event_base *base, int owns_base)
{
    event_set_log_callback(libevent_log);
    tw_reactor *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->base = base;
    r->owns_base = owns_base;
    r->shutdown_timeout = DEFAULT_SHUTDOWN_TIMEOUT;
    r->linger_timeout = DEFAULT_LINGER_TIMEOUT;
    r->input_budget = TW_REACTOR_DEFAULT_INPUT_BUDGET;
    r->clock = tw__monotonic;
    r->phase = PHASE_NONE;
    r->pool_size = TW_THREAD_POOL_DEFAULT_SIZE;
    r->read_buf = malloc(TW__READ_SIZE);
    if (r->read_buf == NULL || tw__poller_init(r) < 0 || tw__timers_init(r) < 0 ||
        tw__threads_init(r) < 0 || tw__startup_init(r) < 0) {
        r->owns_base = 0; /* the caller still owns it on failure */
        tw_reactor_free(r);
        return NULL;
    }
    return r;
}

TW_API tw_reactor *tw_reactor_new(void)
{
    struct event_base *base = event_base_new();
    if (base == NULL)
        return NULL;
    tw_reactor *r = reactor_init(base, 1);
    if (r == NULL)
        event_base_free(base);
    return r;
}

TW_API tw_reactor *tw_reactor_new_with_base(struct event_base *base)
{
    if (base == NULL)
        return NULL;
    return reactor_init(base, 0);
}

static void cancel_drain_timer(tw_reactor *r)
{
    if (r->drain_call != NULL) {
        tw_call_cancel(r->drain_call);
        tw_call_release(r->drain_call);
        r->drain_call = NULL;
    }
}

/* Abort everything on @p list; each entry unregisters itself. */
static void abort_all(tw__list *list)
{
    while (list->head != NULL) {
        tw__closeable *c = (tw__closeable *)list->head;
        c->ops->abort(c);
    }
}

/*
 * libevent finishes a cancelled evdns request (and frees it, and calls back
 * the resolver, which then frees its evdns_base) from a deferred callback
 * in the loop, never inside the cancel. On a base of our own, run what is
 * active before freeing it, or those requests leak; nothing of twine is
 * left on the base by then. A host's base runs them in the host's loop.
 */
static void flush_deferred(struct event_base *base)
{
    for (int pass = 0;
         pass < 16 && event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0; pass++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

TW_API int tw_reactor_free(tw_reactor *r)
{
    if (r == NULL)
        return 0;
    /* Code of ours below the caller still uses the reactor. */
    if (r->running || r->depth > 0 || tw__poller_busy(r))
        return TW_ESTATE;
    /* What the teardown calls back (connection_lost, stop_factory, release
     * functions) runs inside it: a free from there is refused, and a stop
     * under way goes no further (the phases left never run). */
    tw__enter(r);
    r->freeing = 1;
    r->draining = 0;
    abort_all(&r->listeners);
    abort_all(&r->conns);
    cancel_drain_timer(r);
    tw__startup_free(r);
    tw__triggers_free(r);
    /* The pool joins its threads before what they post to goes. */
    while (r->services != NULL) {
        tw__service *s = r->services;
        r->services = s->next;
        s->ops->free(s);
    }
    tw__threads_free(r);
    tw__timers_free(r);
    if (r->iterate_ev != NULL)
        event_free(r->iterate_ev);
    if (r->sig_int != NULL)
        event_free(r->sig_int);
    if (r->sig_term != NULL)
        event_free(r->sig_term);
    tw__poller_free(r); /* last: the parts above watched descriptors with it */
    free(r->read_buf);
    if (r->owns_base && r->base != NULL) {
        flush_deferred(r->base);
        event_base_free(r->base);
    }
    free(r);
    return 0;
}

static void drain_timeout(void *arg)
{
    tw_reactor *r = arg;
    tw_call_release(r->drain_call);
    r->drain_call = NULL;
    tw_log(TW_LOG_WARN, "reactor", "shutdown timeout passed; aborting %zu connection(s)",
           r->conns.count);
    abort_all(&r->conns); /* the last one to go ends the drain */
}

/* A deferred a shutdown trigger returned fired. */
static void trigger_waited(tw_reactor *r, unsigned gen)
{
    (void)gen;
    tw__shutdown_step_done(r);
}

static void begin_phase(tw_reactor *r)
{
    tw__enter(r);
    r->phase_waiting = 1; /* held until this function is done */
    if (r->phase == TW_TRIGGER_DURING)
        tw__startup_stop(r);
    tw__triggers_run(r, TW__EVENT_SHUTDOWN, (tw_trigger_phase)r->phase, trigger_waited);
    if (r->phase == TW_TRIGGER_DURING) {
        for (tw__service *s = r->services; s != NULL; s = s->next)
            if (s->ops->stop != NULL)
                s->ops->stop(s);
        abort_all(&r->listeners); /* closing a listener is immediate and clean */
        for (tw__link *l = r->conns.head, *next; l != NULL; l = next) {
            next = l->next;
            tw__closeable *c = (tw__closeable *)l;
            c->ops->lose(c);
        }
        if (r->conns.count > 0) {
            r->phase_waiting++; /* until the last connection is gone */
            r->draining = 1;
            if (tw_reactor_call_later(r, r->shutdown_timeout, drain_timeout, r,
                                      &r->drain_call) < 0)
                drain_timeout(r);
        }
    }
    tw__shutdown_step_done(r);
    tw__leave(r);
}

void tw__hold_writes(tw_reactor *r, tw__held_write *w)
{
    if (w->queued)
        return;
    w->queued = 1;
    tw__list_append(&r->held_writes, &w->link);
}

void tw__unhold_writes(tw_reactor *r, tw__held_write *w)
{
    if (!w->queued)
        return;
    w->queued = 0;
    tw__list_remove(&r->held_writes, &w->link);
}

/* The held writes go down first, into the streams' batches, which then go
 * out; whatever the sends call back (a pause, a resume that writes) may
 * hold or batch more, so both run until neither has anything left. */
void tw__flush_writes(tw_reactor *r)
{
    r->depth++;
    do {
        tw__link *l;
        while ((l = tw__list_shift(&r->held_writes)) != NULL) {
            tw__held_write *w = tw_container_of(l, tw__held_write, link);
            w->queued = 0;
            w->release(w);
        }
        if (r->batch != NULL)
            r->flush_batch(r);
    } while (r->held_writes.head != NULL);
    r->depth--;
}

void tw__shutdown_step_done(tw_reactor *r)
{
    if (r->freeing || r->phase_waiting == 0 || --r->phase_waiting > 0)
        return;
    if (r->phase < TW_TRIGGER_AFTER) {
        r->phase++;
        begin_phase(r);
        return;
    }
    /* Every phase is over: nothing left may run, nothing may leak. */
    r->phase = PHASE_DONE;
    tw__startup_reset(r);
    cancel_drain_timer(r);
    tw__timers_cancel_all(r);
    if (r->running) {
        event_base_loopbreak(r->base); /* tw_reactor_run() returns, then resets */
        return;
    }
    /* A host drives the loop: the reactor is usable again at once, as after
     * tw_reactor_run() returns. A stop made before any run still keeps the
     * next tw_reactor_run() from starting (phase stays PHASE_DONE). */
    r->stopping = 0;
}

TW_API int tw_reactor_run(tw_reactor *r)
{
    if (r->running)
        return TW_ESTATE;
    int rc = 0;
    if (r->phase != PHASE_DONE) { /* unless it was stopped before it ran */
        r->running = 1;
        /* Startup before the first dispatch, as Twisted's run() fires
         * "startup" before its main loop; it may stop the reactor. */
        tw__startup_begin(r);
        /* Like Twisted's reactor.run(), an idle loop waits for work instead
         * of returning: only tw_reactor_stop() ends it. */
        if (r->phase != PHASE_DONE)
            rc = event_base_loop(r->base, EVLOOP_NO_EXIT_ON_EMPTY);
        r->running = 0;
    }
    if (r->phase == PHASE_DONE) {
        r->stopping = 0;
        r->phase = PHASE_NONE;
    }
    return rc < 0 ? -EIO : 0;
}

static void wake_only(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

TW_API int tw_reactor_iterate(tw_reactor *r, double timeout)
{
    if (!isfinite(timeout) || timeout < 0)
        return -EINVAL;
    tw__startup_begin(r); /* a no-op once it began */
    if (timeout == 0)
        return event_base_loop(r->base, EVLOOP_NONBLOCK) < 0 ? -EIO : 0;
    /* EVLOOP_ONCE blocks until something is active. A timer event of our
     * own bounds the wait; unlike event_base_loopexit() it leaves nothing
     * behind to end a later loop early when other work woke us first. */
    if (r->iterate_ev == NULL && (r->iterate_ev = evtimer_new(r->base, wake_only, NULL)) == NULL)
        return -ENOMEM;
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    evtimer_add(r->iterate_ev, &tv);
    int rc = event_base_loop(r->base, EVLOOP_ONCE);
    evtimer_del(r->iterate_ev);
    return rc < 0 ? -EIO : 0;
}

TW_API void tw_reactor_stop(tw_reactor *r)
{
    if (r->stopping || r->freeing)
        return;
    r->stopping = 1;
    if (r->startup == TW__STARTUP_IN_PROGRESS)
        tw__startup_stop(r); /* abandon it; the next run starts up again */
    r->phase = TW_TRIGGER_BEFORE;
    begin_phase(r);
}

TW_API int tw_reactor_stopping(const tw_reactor *r)
{
    return r->stopping;
}

TW_API void tw_reactor_set_shutdown_timeout(tw_reactor *r, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        return;
    r->shutdown_timeout = seconds;
    /* An operator who asks again during a drain means it now: the drain
     * ends after the new timeout, from the timer, never from inside this
     * call. */
    if (r->drain_call != NULL)
        tw_call_reset(r->drain_call, seconds);
}

TW_API void tw_reactor_set_input_budget(tw_reactor *r, size_t bytes)
{
    r->input_budget = bytes;
}

TW_API void tw_reactor_set_linger_timeout(tw_reactor *r, double seconds)
{
    if (isfinite(seconds) && seconds >= 0)
        r->linger_timeout = seconds;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    tw_log(TW_LOG_INFO, "reactor", "received %s; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    tw_reactor_stop(arg);
}

TW_API int tw_reactor_handle_signals(tw_reactor *r)
{
    if (r->sig_int != NULL)
        return 0;
    r->sig_int = evsignal_new(r->base, SIGINT, on_signal, r);
    r->sig_term = evsignal_new(r->base, SIGTERM, on_signal, r);
    if (r->sig_int == NULL || r->sig_term == NULL || evsignal_add(r->sig_int, NULL) < 0 ||
        evsignal_add(r->sig_term, NULL) < 0) {
        if (r->sig_int != NULL)
            event_free(r->sig_int);
        if (r->sig_term != NULL)
            event_free(r->sig_term);
        r->sig_int = r->sig_term = NULL;
        return -ENOMEM;
    }
    return 0;
}

TW_API struct event_base *tw_reactor_event_base(tw_reactor *r)
{
    return r->base;
}

TW_API double tw_reactor_seconds(const tw_reactor *r)
{
    return r->clock(r->clock_arg);
}

void tw__reactor_register_conn(tw_reactor *r, tw__closeable *c)
{
    tw__list_push(&r->conns, &c->link);
}

void tw__reactor_unregister_conn(tw_reactor *r, tw__closeable *c)
{
    tw__list_remove(&r->conns, &c->link);
    if (r->draining && r->conns.count == 0) {
        r->draining = 0;
        cancel_drain_timer(r);
        tw__shutdown_step_done(r);
    }
}

void tw__reactor_register_listener(tw_reactor *r, tw__closeable *c)
{
    tw__list_push(&r->listeners, &c->link);
}

void tw__reactor_unregister_listener(tw_reactor *r, tw__closeable *c)
{
    tw__list_remove(&r->listeners, &c->link);
}

void tw__reactor_add_service(tw_reactor *r, tw__service *s)
{
    s->next = r->services;
    r->services = s;
}

void tw__reactor_enforce_budget(tw_reactor *r)
{
    while (r->input_budget > 0 && r->input_held > r->input_budget) {
        tw__closeable *big = NULL;
        size_t most = 0;
        for (tw__link *n = r->conns.head; n != NULL; n = n->next) {
            tw__closeable *c = (tw__closeable *)n;
            size_t held = c->ops->held != NULL ? c->ops->held(c) : 0;
            if (held > most) {
                big = c;
                most = held;
            }
        }
        if (big == NULL)
            return;
        big->ops->shed(big);
    }
}
