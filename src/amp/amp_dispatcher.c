/* SPDX-License-Identifier: MIT */
/*
 * The responder table of an AMP factory, Twisted's CommandLocator: command
 * names to the responders registered for them. Every connection the factory
 * builds dispatches through it. It is filled before the factory listens and
 * read afterwards, and holds a few entries, so a linear search does.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>

#include "amp/amp_conn_internal.h"

const tw__amp_responder *tw__amp_dispatcher_lookup(const tw_amp_dispatcher *d, const char *name,
                                                   size_t len)
{
    for (size_t i = 0; i < d->count; i++) {
        const char *n = d->items[i].command->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return &d->items[i];
    }
    return NULL;
}

void tw__amp_dispatcher_release(tw_amp_dispatcher *d)
{
    free(d->items);
    d->items = NULL;
    d->count = d->cap = 0;
    tw_tls_context_unref(d->tls);
    d->tls = NULL;
}

TW_API int tw_amp_register(tw_amp_dispatcher *d, const tw_amp_command *command,
                           tw_amp_responder_fn fn, void *arg)
{
    if (d == NULL || command == NULL || command->name == NULL || command->name[0] == '\0' ||
        strlen(command->name) > TW_AMP_MAX_VALUE_LENGTH || fn == NULL)
        return -EINVAL;
    if (tw__amp_dispatcher_lookup(d, command->name, strlen(command->name)) != NULL)
        return -EEXIST;
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        tw__amp_responder *items = realloc(d->items, cap * sizeof *items);
        if (items == NULL)
            return -ENOMEM;
        d->items = items;
        d->cap = cap;
    }
    d->items[d->count++] = (tw__amp_responder){command, fn, arg, {0}};
    return 0;
}

TW_API const tw_amp_command *tw_amp_dispatcher_find(const tw_amp_dispatcher *d,
                                                    const char *name)
{
    if (d == NULL || name == NULL)
        return NULL;
    const tw__amp_responder *r = tw__amp_dispatcher_lookup(d, name, strlen(name));
    return r != NULL ? r->command : NULL;
}

TW_API size_t tw_amp_dispatcher_count(const tw_amp_dispatcher *d)
{
    return d != NULL ? d->count : 0;
}

TW_API int tw_amp_dispatcher_stats(const tw_amp_dispatcher *d, size_t i,
                                   const tw_amp_command **command,
                                   unsigned long long counts[TW_AMP_OUTCOMES])
{
    if (d == NULL || counts == NULL || i >= d->count)
        return -EINVAL;
    if (command != NULL)
        *command = d->items[i].command;
    memcpy(counts, d->items[i].outcomes, sizeof d->items[i].outcomes);
    return 0;
}

TW_API unsigned long long tw_amp_dispatcher_unhandled(const tw_amp_dispatcher *d)
{
    return d != NULL ? d->unhandled : 0;
}

TW_API const char *tw_amp_outcome_name(tw_amp_outcome o)
{
    static const char *const names[TW_AMP_OUTCOMES] = {"ok", "error", "unknown",
                                                       "bad_arguments", "cancelled"};
    return (unsigned)o < TW_AMP_OUTCOMES ? names[o] : "unknown";
}
