/* SPDX-License-Identifier: MIT */
/*
 * System event triggers, Twisted's addSystemEventTrigger for "startup" and
 * "shutdown": three phases per event, each waiting for the deferreds its
 * triggers returned before the next begins (reactor.c sequences shutdown,
 * startup.c startup). A failed trigger is logged and the event goes on: a
 * stuck or broken step must not keep the process from starting or stopping.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <twine/deferred.h>
#include <twine/log.h>

#include "reactor_internal.h"

int tw__triggers_add(tw_reactor *r, int event, tw_trigger_phase phase, tw_trigger_fn fn,
                     tw_call_fn call, void *arg, tw_trigger_id *id)
{
    if ((fn == NULL && call == NULL) || phase < TW_TRIGGER_BEFORE || phase > TW_TRIGGER_AFTER)
        return -EINVAL;
    tw__trigger *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->event = event;
    t->phase = phase;
    t->fn = fn;
    t->call = call;
    t->arg = arg;
    t->id = ++r->next_trigger_id;
    tw__trigger **tail = &r->triggers;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = t;
    if (id != NULL)
        *id = t->id;
    return 0;
}

TW_API int tw_reactor_add_trigger(tw_reactor *r, tw_trigger_phase phase, tw_trigger_fn fn,
                                  void *arg, tw_trigger_id *id)
{
    return tw__triggers_add(r, TW__EVENT_SHUTDOWN, phase, fn, NULL, arg, id);
}

TW_API int tw_reactor_remove_trigger(tw_reactor *r, tw_trigger_id id)
{
    for (tw__trigger **p = &r->triggers; *p != NULL; p = &(*p)->next) {
        if ((*p)->id == id) {
            tw__trigger *t = *p;
            *p = t->next;
            free(t);
            return 0;
        }
    }
    return TW_ESTATE;
}

/* What a returned deferred counts against: one event's current phase. */
typedef struct waited {
    tw_reactor *r;
    int event;
    unsigned gen; /* startup's generation, to ignore an abandoned startup */
} waited;

static void step_done(const waited *w)
{
    if (w->event == TW__EVENT_SHUTDOWN)
        tw__shutdown_step_done(w->r);
    else
        tw__startup_step_done(w->r, w->gen);
}

static void trigger_fired(tw_deferred *d, tw_result *res, void *arg)
{
    waited *w = arg;
    if (tw_result_is_failure(res)) {
        tw_failure *f = tw_result_take_failure(res);
        char text[512];
        tw_failure_format(f, text, sizeof text);
        tw_log(TW_LOG_ERROR, "reactor", "%s trigger failed: %s",
               w->event == TW__EVENT_SHUTDOWN ? "shutdown" : "startup", text);
        tw_failure_unref(f);
    }
    tw_deferred_unref(d); /* the reference the trigger handed over */
    step_done(w);
}

/* Count @p d against the phase until it fires. */
static void wait_for(tw_reactor *r, int event, tw_deferred *d)
{
    waited *w = malloc(sizeof *w);
    if (w != NULL) {
        *w = (waited){.r = r, .event = event, .gen = r->startup_gen};
        if (tw_deferred_add_callbacks_full(d, trigger_fired, trigger_fired, w, free) == 0) {
            if (event == TW__EVENT_SHUTDOWN)
                r->phase_waiting++;
            else
                r->startup_waiting++;
            return;
        }
        free(w);
    }
    /* Cannot watch it: do not wait for it rather than wait forever. */
    tw_log(TW_LOG_ERROR, "reactor", "out of memory: not waiting for a trigger's deferred");
    tw_deferred_unref(d);
}

void tw__triggers_run(tw_reactor *r, int event, tw_trigger_phase phase)
{
    /* Each trigger runs once: it is unlinked before it is called, so a
     * trigger may add or remove others safely. */
    tw__trigger **p = &r->triggers;
    while (*p != NULL) {
        tw__trigger *t = *p;
        if (t->event != event || t->phase != phase) {
            p = &t->next;
            continue;
        }
        *p = t->next;
        tw_deferred *d = NULL;
        if (t->call != NULL)
            t->call(t->arg);
        else
            d = t->fn(t->arg);
        free(t);
        if (d != NULL)
            wait_for(r, event, d);
        p = &r->triggers; /* the list may have changed under us */
    }
}

void tw__triggers_free(tw_reactor *r)
{
    while (r->triggers != NULL) {
        tw__trigger *t = r->triggers;
        r->triggers = t->next;
        free(t);
    }
}
