/* SPDX-License-Identifier: MIT */
/*
 * DeferredQueue: items waiting for getters, or getters waiting for items --
 * never both at once, since a put goes straight to the first waiting getter
 * and a get takes the first waiting item. Both sides are FIFO lists with
 * Twisted's bounds: @c size items (a put beyond fails with TW_EOVERFLOW) and
 * @c backlog getters (a get beyond fails with TW_EUNDERFLOW).
 *
 * A put fires a getter as its last step and touches the queue no more, so
 * the getter's callbacks may put, get or free the queue.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <twine/concurrency.h>

#include "defer/deferred_internal.h"

typedef struct item {
    tw__link link; /* first: an item is its link */
    void *value;
    tw_free_fn free_fn;
} item;

struct tw_deferred_queue {
    size_t size, backlog;
    tw__list items; /* of item, oldest first */
    tw__waiters getters; /* first come first served */
    int freeing; /* tw_deferred_queue_free() is failing the getters */
};

TW_API tw_deferred_queue *tw_deferred_queue_new(size_t size, size_t backlog)
{
    tw_deferred_queue *q = calloc(1, sizeof *q);
    if (q != NULL) {
        q->size = size;
        q->backlog = backlog;
    }
    return q;
}

TW_API void tw_deferred_queue_free(tw_deferred_queue *q)
{
    if (q == NULL || q->freeing)
        return;
    q->freeing = 1;
    item *it;
    while ((it = (item *)tw__list_shift(&q->items)) != NULL) {
        if (it->free_fn != NULL)
            it->free_fn(it->value);
        free(it);
    }
    tw_deferred *d;
    while ((d = tw__waiters_shift(&q->getters)) != NULL) {
        tw_deferred_errback(d, tw_failure_new(TW_ECANCELLED, "queue freed while waiting"));
        tw_deferred_unref(d);
    }
    free(q);
}

TW_API int tw_deferred_queue_put(tw_deferred_queue *q, void *value, tw_free_fn free_fn)
{
    tw_deferred *d = tw__waiters_shift(&q->getters);
    if (d != NULL) {
        tw_deferred_callback(d, value, free_fn);
        tw_deferred_unref(d);
        return 0;
    }
    if (q->size != TW_DEFERRED_QUEUE_UNBOUNDED && q->items.count >= q->size)
        return TW_EOVERFLOW;
    item *it = malloc(sizeof *it);
    if (it == NULL)
        return -ENOMEM;
    *it = (item){.value = value, .free_fn = free_fn};
    tw__list_append(&q->items, &it->link);
    return 0;
}

TW_API tw_deferred *tw_deferred_queue_get(tw_deferred_queue *q)
{
    if (q->freeing)
        return tw_deferred_fail(tw_failure_new(TW_ECANCELLED, "queue freed"));
    if (q->items.head != NULL) {
        /* Made before the item leaves, so running out of memory loses nothing. */
        tw_deferred *d = tw_deferred_new(NULL, NULL);
        if (d == NULL)
            return NULL;
        item *it = (item *)tw__list_shift(&q->items);
        tw_deferred_callback(d, it->value, it->free_fn);
        free(it);
        return d;
    }
    if (q->backlog != TW_DEFERRED_QUEUE_UNBOUNDED && q->getters.list.count >= q->backlog)
        return tw_deferred_fail(tw_failure_new(TW_EUNDERFLOW, "%zu getters already wait on the queue",
                                               q->getters.list.count));
    return tw__waiters_add(&q->getters, __FILE__, __LINE__);
}

TW_API size_t tw_deferred_queue_pending(const tw_deferred_queue *q)
{
    return q->items.count;
}

TW_API size_t tw_deferred_queue_waiting(const tw_deferred_queue *q)
{
    return q->getters.list.count;
}
