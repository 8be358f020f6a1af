/* SPDX-License-Identifier: MIT */
/*
 * Startup, Twisted's fireSystemEvent("startup"): the "before", "during" and
 * "after" startup triggers, each phase waiting for the deferreds its
 * triggers returned, and call_when_running, which is an "after" trigger
 * until the reactor runs and a direct call from then on.
 *
 * When it begins. tw_reactor_run() and tw_reactor_iterate() begin startup
 * themselves, before the loop dispatches anything, so no timed call or I/O
 * runs ahead of the startup triggers, as in Twisted. A host that drives the
 * event_base itself calls neither: for it, an event activated when the
 * reactor is made begins startup on the loop's first pass.
 *
 * "Running" (tw_reactor_running) starts when the "during" phase begins, as
 * Twisted's _reallyStartRunning is the first "during startup" trigger, and
 * ends when tw_reactor_stop() reaches its "during" phase, as Twisted's
 * crash() is the first "during shutdown" trigger. A stop made while startup
 * is still in progress abandons it: triggers that did not run stay for the
 * next tw_reactor_run(), and deferreds returned by the abandoned ones are
 * ignored when they fire (a generation number tells them apart).
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>

#include "core/reactor_internal.h"

static void begin_phase(tw_reactor *r)
{
    r->startup_waiting = 1; /* held until this function is done */
    if (r->startup_phase == TW_TRIGGER_DURING)
        r->is_running = 1;
    tw__triggers_run(r, TW__EVENT_STARTUP, (tw_trigger_phase)r->startup_phase,
                     tw__startup_step_done);
    tw__startup_step_done(r, r->startup_gen);
}

void tw__startup_step_done(tw_reactor *r, unsigned gen)
{
    if (gen != r->startup_gen || r->startup != TW__STARTUP_IN_PROGRESS)
        return; /* from a startup a stop abandoned */
    if (--r->startup_waiting > 0)
        return;
    if (r->startup_phase < TW_TRIGGER_AFTER) {
        r->startup_phase++;
        begin_phase(r);
        return;
    }
    r->startup = TW__STARTUP_DONE;
}

void tw__startup_begin(tw_reactor *r)
{
    /* Begun by run or iterate, or by this very event: it must not stay
     * active, or it would end a host's next EVLOOP_ONCE pass early. */
    if (r->startup_ev != NULL)
        event_del(r->startup_ev);
    if (r->startup != TW__STARTUP_NONE || r->stopping)
        return;
    r->startup = TW__STARTUP_IN_PROGRESS;
    r->startup_gen++;
    r->startup_phase = TW_TRIGGER_BEFORE;
    begin_phase(r);
}

void tw__startup_stop(tw_reactor *r)
{
    r->is_running = 0;
    if (r->startup == TW__STARTUP_IN_PROGRESS) {
        r->startup_gen++;
        r->startup = TW__STARTUP_ABANDONED;
    }
}

void tw__startup_reset(tw_reactor *r)
{
    r->is_running = 0;
    r->startup = TW__STARTUP_NONE;
}

static void on_first_pass(evutil_socket_t fd, short what, void *arg)
{
    tw_reactor *r = arg;
    (void)fd;
    (void)what;
    tw__enter(r); /* the triggers run inside the reactor's own callback */
    tw__startup_begin(r);
    tw__leave(r);
}

int tw__startup_init(tw_reactor *r)
{
    r->startup_ev = event_new(r->base, -1, 0, on_first_pass, r);
    if (r->startup_ev == NULL)
        return -ENOMEM;
    event_active(r->startup_ev, EV_TIMEOUT, 1);
    return 0;
}

void tw__startup_free(tw_reactor *r)
{
    if (r->startup_ev != NULL)
        event_free(r->startup_ev);
    r->startup_ev = NULL;
}

TW_API int tw_reactor_add_startup_trigger(tw_reactor *r, tw_trigger_phase phase,
                                          tw_trigger_fn fn, void *arg, tw_trigger_id *id)
{
    return tw__triggers_add(r, TW__EVENT_STARTUP, phase, fn, NULL, arg, id);
}

TW_API int tw_reactor_call_when_running(tw_reactor *r, tw_call_fn fn, void *arg)
{
    if (fn == NULL)
        return -EINVAL;
    if (r->is_running) {
        fn(arg);
        return 0;
    }
    return tw__triggers_add(r, TW__EVENT_STARTUP, TW_TRIGGER_AFTER, NULL, fn, arg, NULL);
}

TW_API int tw_reactor_running(const tw_reactor *r)
{
    return r->is_running;
}
