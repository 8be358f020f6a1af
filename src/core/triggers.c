/* SPDX-License-Identifier: MIT */
/*
 * System event triggers, Twisted's addSystemEventTrigger for "startup" and
 * "shutdown": three phases per event, each waiting for the deferreds its
 * triggers returned before the next begins (reactor.c sequences shutdown,
 * startup.c startup). A failed trigger is logged and the event goes on: a
 * stuck or broken step must not keep the process from starting or stopping.
 * Whoever runs a phase says what to call once a deferred it waits for
 * fires, so this file calls neither sequencer back by name.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <twine/deferred.h>
#include <twine/log.h>

#include "core/reactor_internal.h"

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

/* A startup or shutdown waits for a deferred a trigger returned. The
 * record outlives the reactor when the reactor is freed first: then it only
 * lets go. */
typedef struct trigger_wait {
    tw__link link;  /* on r->trigger_waits while the reactor waits */
    tw_reactor *r;  /* NULL once the reactor was freed */
    tw_deferred *d; /* the reference the trigger handed over */
    int event;      /* TW__EVENT_* whose phase waits */
    unsigned gen;   /* startup's generation, to ignore an abandoned startup */
    tw__trigger_done_fn done; /* the phase's sequencer: one thing is done */
} trigger_wait;

static void trigger_fired(tw_deferred *d, tw_result *res, void *arg)
{
    trigger_wait *w = arg;
    (void)d;
    if (tw_result_is_failure(res)) {
        tw_failure *f = tw_result_take_failure(res);
        char text[512];
        tw_failure_format(f, text, sizeof text);
        tw_log(TW_LOG_ERROR, "reactor", "%s trigger failed: %s",
               w->event == TW__EVENT_SHUTDOWN ? "shutdown" : "startup", text);
        tw_failure_unref(f);
    }
    if (w->r == NULL)
        return; /* the reactor was freed first and already let go of d */
    tw_reactor *r = w->r;
    w->r = NULL;
    tw__link **p = &r->trigger_waits;
    while (*p != &w->link)
        p = &(*p)->next;
    *p = w->link.next;
    tw_deferred_unref(w->d); /* the chain holds it until we return */
    w->done(r, w->gen);
}

/* Count @p d against @p event's current phase until it fires. */
static void wait_for(tw_reactor *r, int event, tw_deferred *d, tw__trigger_done_fn done)
{
    trigger_wait *w = calloc(1, sizeof *w);
    if (w == NULL) {
        tw_log(TW_LOG_ERROR, "reactor", "out of memory: %s goes on without waiting for a trigger",
               event == TW__EVENT_SHUTDOWN ? "shutdown" : "startup");
        tw_deferred_unref(d);
        return;
    }
    w->r = r;
    w->d = d;
    w->event = event;
    w->gen = r->startup_gen;
    w->done = done;
    w->link.next = r->trigger_waits;
    r->trigger_waits = &w->link;
    size_t *waiting = event == TW__EVENT_SHUTDOWN ? &r->phase_waiting : &r->startup_waiting;
    ++*waiting;
    if (tw_deferred_add_callbacks_full(d, trigger_fired, trigger_fired, w, free) < 0) {
        r->trigger_waits = w->link.next;
        --*waiting;
        free(w);
        tw_deferred_unref(d);
    }
}

void tw__triggers_run(tw_reactor *r, int event, tw_trigger_phase phase,
                      tw__trigger_done_fn done)
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
            wait_for(r, event, d, done);
        p = &r->triggers; /* the list may have changed under us */
    }
}

void tw__triggers_free(tw_reactor *r)
{
    /* Deferreds the stop still waits for: let go of them, unfired. */
    while (r->trigger_waits != NULL) {
        trigger_wait *w = (trigger_wait *)r->trigger_waits;
        r->trigger_waits = w->link.next;
        w->r = NULL;
        tw_deferred_unref(w->d); /* may release w, when ours was the last */
    }
    while (r->triggers != NULL) {
        tw__trigger *t = r->triggers;
        r->triggers = t->next;
        free(t);
    }
}
