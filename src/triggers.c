/* SPDX-License-Identifier: MIT */
/*
 * Shutdown triggers, Twisted's addSystemEventTrigger for "shutdown": three
 * phases, each waiting for the deferreds its triggers returned before the
 * next begins. A failed trigger is logged and shutdown goes on: a stuck or
 * broken cleanup must not keep the process from stopping.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <twine/deferred.h>
#include <twine/log.h>

#include "reactor_internal.h"

TW_API int tw_reactor_add_trigger(tw_reactor *r, tw_trigger_phase phase, tw_trigger_fn fn,
                                  void *arg, tw_trigger_id *id)
{
    if (fn == NULL || phase < TW_TRIGGER_BEFORE || phase > TW_TRIGGER_AFTER)
        return -EINVAL;
    tw__trigger *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->phase = phase;
    t->fn = fn;
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

static void trigger_fired(tw_deferred *d, tw_result *res, void *arg)
{
    tw_reactor *r = arg;
    if (tw_result_is_failure(res)) {
        tw_failure *f = tw_result_take_failure(res);
        char text[512];
        tw_failure_format(f, text, sizeof text);
        tw_log(TW_LOG_ERROR, "reactor", "shutdown trigger failed: %s", text);
        tw_failure_unref(f);
    }
    tw_deferred_unref(d); /* the reference the trigger handed over */
    tw__shutdown_step_done(r);
}

void tw__triggers_run(tw_reactor *r, tw_trigger_phase phase)
{
    /* Each trigger runs once: it is unlinked before it is called, so a
     * trigger may add or remove others safely. */
    tw__trigger **p = &r->triggers;
    while (*p != NULL) {
        tw__trigger *t = *p;
        if (t->phase != phase) {
            p = &t->next;
            continue;
        }
        *p = t->next;
        tw_deferred *d = t->fn(t->arg);
        free(t);
        if (d != NULL) {
            r->phase_waiting++;
            tw_deferred_add_both(d, trigger_fired, r);
        }
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
