/* SPDX-License-Identifier: MIT */
/*
 * The calls an AMP factory's connections made, counted by command name and
 * outcome, as the dispatcher counts the requests they received. The
 * connection counts each call once, when its outcome is known
 * (amp_calls.c); the entries live in the factory, which outlives its
 * connections, so the figures stay readable after they are gone.
 *
 * A linear search by name: the names are the caller's own commands, a
 * handful, never chosen by the peer.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>

#include "amp/amp_conn_internal.h"

static tw__amp_factory *amp_factory_of(tw_factory *f)
{
    /* Only an AMP factory has a dispatcher. */
    if (tw_amp_factory_dispatcher(f) == NULL)
        return NULL;
    return tw_container_of(f, tw__amp_factory, base);
}

void tw__amp_count_call(tw__amp_call_stats *s, const char *name, tw_amp_call_outcome o)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->items[i].name, name) == 0) {
            s->items[i].outcomes[o]++;
            return;
        }
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        tw__amp_called *items = realloc(s->items, cap * sizeof *items);
        if (items == NULL)
            return;
        s->items = items;
        s->cap = cap;
    }
    tw__amp_called *c = &s->items[s->count];
    memset(c, 0, sizeof *c);
    if ((c->name = strdup(name)) == NULL)
        return;
    c->outcomes[o] = 1;
    s->count++;
}

void tw__amp_call_stats_release(tw__amp_call_stats *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->items[i].name);
    free(s->items);
    memset(s, 0, sizeof *s);
}

TW_API size_t tw_amp_factory_call_count(tw_factory *f)
{
    tw__amp_factory *af = amp_factory_of(f);
    return af != NULL ? af->calls.count : 0;
}

TW_API int tw_amp_factory_call_stats(tw_factory *f, size_t i, const char **command,
                                     unsigned long long counts[TW_AMP_CALL_OUTCOMES])
{
    tw__amp_factory *af = amp_factory_of(f);
    if (af == NULL || counts == NULL || i >= af->calls.count)
        return -EINVAL;
    if (command != NULL)
        *command = af->calls.items[i].name;
    memcpy(counts, af->calls.items[i].outcomes, sizeof af->calls.items[i].outcomes);
    return 0;
}

TW_API const char *tw_amp_call_outcome_name(tw_amp_call_outcome o)
{
    static const char *const names[TW_AMP_CALL_OUTCOMES] = {
        "answered", "error", "bad_answer", "connection_lost", "cancelled", "not_sent"};
    return (unsigned)o < TW_AMP_CALL_OUTCOMES ? names[o] : "unknown";
}
