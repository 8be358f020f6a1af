/* SPDX-License-Identifier: MIT */
/*
 * gather and list: one deferred for the outcome of many, as Twisted's
 * gatherResults and DeferredList. A gather is a small shared record: each
 * input carries a callback pair pointing at its slot, and the result
 * deferred's canceller points at the record.
 *
 * Lifetimes are arranged so that nothing cycles for good. The record holds
 * the result deferred until it fires it, or until no input can deliver any
 * more; it only watches its inputs (a slot's pointer is cleared when the
 * input's entry runs or is dropped), so releasing an input that will never
 * fire frees it rather than leaking it through the gather.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <twine/deferred.h>

#include "defer/deferred_internal.h"


typedef struct gather gather;

typedef struct slot {
    gather *g;
    size_t index;
    tw_deferred *input; /* weak; NULL once its entry ran or was dropped */
} slot;

struct gather {
    size_t refs;      /* result's canceller + one per attached entry */
    int flags;        /* TW_DEFERRED_LIST_* */
    const char *name; /* "gather" or "list", for the first failure's message */
    size_t remaining; /* inputs that have not delivered */
    size_t attached;  /* inputs whose entry may still run */
    tw_deferred *result;
    tw_deferred_outcomes *outcomes;
    size_t n;
    slot slots[];
};

static void outcomes_free(void *p)
{
    tw_deferred_outcomes *o = p;
    for (size_t i = 0; i < o->count; i++) {
        if (o->items[i].free_fn != NULL)
            o->items[i].free_fn(o->items[i].value);
        tw_failure_unref(o->items[i].failure);
    }
    free(o);
}

/* One block: the header, then the items it points at. */
_Static_assert(sizeof(tw_deferred_outcomes) % _Alignof(tw_deferred_outcome) == 0,
               "outcome items must be aligned right after the header");

static tw_deferred_outcomes *outcomes_new(size_t n)
{
    if (n > (SIZE_MAX - sizeof(tw_deferred_outcomes)) / sizeof(tw_deferred_outcome))
        return NULL;
    tw_deferred_outcomes *o = calloc(1, sizeof *o + n * sizeof(tw_deferred_outcome));
    if (o != NULL) {
        o->count = n;
        o->items = (tw_deferred_outcome *)(void *)(o + 1);
        o->fired_by = n;
    }
    return o;
}

static void gather_unref(void *p)
{
    gather *g = p;
    if (--g->refs > 0)
        return;
    if (g->outcomes != NULL)
        outcomes_free(g->outcomes);
    tw_deferred_unref(g->result);
    free(g);
}

static tw_deferred *take_result(gather *g)
{
    tw_deferred *r = g->result;
    g->result = NULL;
    return r;
}

/* The result fired already: by us at a first failure, or by a cancel that
 * could not reach every input. */
static int finished(const gather *g)
{
    return g->result == NULL || tw_deferred_called(g->result);
}

/* Store input @p index's outcome (taking over @p value or @p failure) and
 * fire the result when that decides it. */
static void record(gather *g, size_t index, void *value, tw_free_fn free_fn, tw_failure *failure)
{
    tw_deferred_outcome *o = &g->outcomes->items[index];
    o->ok = failure == NULL;
    o->value = value;
    o->free_fn = free_fn;
    o->failure = failure;
    g->remaining--;

    if ((g->flags & TW_DEFERRED_LIST_FIRE_ON_ONE_ERRBACK) && failure != NULL) {
        tw_failure *first = tw_failure_wrap_index(tw_failure_ref(failure), tw_failure_code(failure),
                                                  index, "%s: input %zu failed", g->name, index);
        outcomes_free(g->outcomes);
        g->outcomes = NULL;
        tw_deferred *r = take_result(g);
        tw_deferred_errback(r, first);
        tw_deferred_unref(r);
    } else if (g->remaining == 0 ||
               ((g->flags & TW_DEFERRED_LIST_FIRE_ON_ONE_CALLBACK) && failure == NULL)) {
        if (g->remaining > 0)
            g->outcomes->fired_by = index;
        tw_deferred_outcomes *all = g->outcomes;
        g->outcomes = NULL;
        tw_deferred *r = take_result(g);
        tw_deferred_callback(r, all, outcomes_free);
        tw_deferred_unref(r);
    }
}

static void on_input(tw_deferred *d, tw_result *res, void *arg)
{
    slot *s = arg;
    (void)d;
    s->input = NULL;
    int consume = s->g->flags & TW_DEFERRED_LIST_CONSUME_ERRORS;
    if (finished(s->g)) {
        /* Late values are left to the input's own chain, late failures too
         * unless consumed, as Twisted's DeferredList does. */
        if (consume)
            tw_failure_unref(tw_result_take_failure(res));
        return;
    }
    tw_failure *failure = consume ? tw_result_take_failure(res)
                                  : tw_failure_ref((tw_failure *)tw_result_failure(res));
    tw_free_fn free_fn = NULL;
    void *value = failure == NULL ? tw_result_take_value(res, &free_fn) : NULL;
    record(s->g, s->index, value, free_fn, failure);
}

/* One fewer input can still deliver; with none left, stop holding the
 * result: nothing but a cancel can fire it now. */
static void detach(gather *g)
{
    if (--g->attached == 0 && g->result != NULL)
        tw_deferred_unref(take_result(g));
}

/* The input's entry ran or was dropped with the input. */
static void slot_release(void *arg)
{
    slot *s = arg;
    gather *g = s->g;
    s->input = NULL;
    detach(g);
    gather_unref(g);
}

static void gather_cancel(tw_deferred *d, void *arg)
{
    gather *g = arg;
    (void)d;
    g->refs++;
    for (size_t i = 0; i < g->n; i++) {
        tw_deferred *in = g->slots[i].input;
        if (in != NULL && tw__deferred_alive(in)) {
            tw_deferred_ref(in);
            tw_deferred_cancel(in);
            tw_deferred_unref(in);
        }
    }
    gather_unref(g);
}

static tw_deferred *start(tw_deferred *const *inputs, size_t n, int flags, const char *name,
                          const char *file, int line)
{
    if (n > 0 && inputs == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (inputs[i] == NULL)
            return NULL;

    tw_deferred_outcomes *outcomes = outcomes_new(n);
    if (outcomes == NULL)
        return NULL;
    if (n == 0)
        return tw_deferred_succeed_at(outcomes, outcomes_free, file, line);

    if (n > (SIZE_MAX - sizeof(gather)) / sizeof(slot)) {
        free(outcomes);
        return NULL;
    }
    gather *g = calloc(1, sizeof *g + n * sizeof g->slots[0]);
    if (g == NULL) {
        free(outcomes);
        return NULL;
    }
    g->refs = 1; /* the result's canceller */
    g->flags = flags;
    g->name = name;
    g->remaining = n;
    g->n = n;
    g->outcomes = outcomes;
    tw_deferred *r = tw__deferred_new_full(gather_cancel, g, gather_unref, file, line);
    if (r == NULL) {
        free(outcomes);
        free(g);
        return NULL;
    }
    g->result = tw_deferred_ref(r);

    /* Inputs that already fired deliver while we attach; this loop counts
     * as one more attached input so the result is not let go meanwhile. */
    g->refs++;
    g->attached = 1;
    for (size_t i = 0; i < n; i++) {
        slot *s = &g->slots[i];
        s->g = g;
        s->index = i;
        s->input = inputs[i];
        g->refs++;
        g->attached++;
        int rc = tw_deferred_add_callbacks_full(inputs[i], on_input, on_input, s, slot_release);
        if (rc < 0) {
            /* Cannot watch it: count it as failed rather than wait forever. */
            s->input = NULL;
            g->attached--;
            g->refs--;
            if (!finished(g))
                record(g, i, NULL, NULL, tw_failure_new(rc, "gather: cannot watch input %zu", i));
        }
    }
    detach(g);
    gather_unref(g);
    return r;
}

TW_API tw_deferred *tw_deferred_gather_at(tw_deferred *const *inputs, size_t n, const char *file,
                                          int line)
{
    return start(inputs, n, TW_DEFERRED_LIST_FIRE_ON_ONE_ERRBACK | TW_DEFERRED_LIST_CONSUME_ERRORS,
                 "gather", file, line);
}

TW_API tw_deferred *tw_deferred_list_at(tw_deferred *const *inputs, size_t n, const char *file,
                                        int line)
{
    return start(inputs, n, TW_DEFERRED_LIST_CONSUME_ERRORS, "list", file, line);
}

TW_API tw_deferred *tw_deferred_list_full_at(tw_deferred *const *inputs, size_t n, int flags,
                                             const char *file, int line)
{
    const int known = TW_DEFERRED_LIST_FIRE_ON_ONE_CALLBACK | TW_DEFERRED_LIST_FIRE_ON_ONE_ERRBACK |
                      TW_DEFERRED_LIST_CONSUME_ERRORS;
    if ((flags & ~known) != 0)
        return NULL;
    return start(inputs, n, flags, "list", file, line);
}

TW_API int tw_deferred_gather_index(const tw_failure *failure, size_t *index)
{
    if (failure == NULL || index == NULL || tw_failure_cause(failure) == NULL)
        return -EINVAL;
    return tw_failure_index(failure, index) == 0 ? 0 : -EINVAL;
}
