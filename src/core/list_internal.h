/* SPDX-License-Identifier: MIT */
/*
 * The one intrusive doubly linked list of libtwine (list.c): the reactor's
 * connections and listeners, and the FIFOs of waiters of the deferred
 * concurrency primitives. Nodes live inside the structures they track.
 */
#ifndef TWINE_LIST_INTERNAL_H
#define TWINE_LIST_INTERNAL_H

#include <stddef.h>

/* A node; lists are NULL-terminated both ways. */
typedef struct tw__link {
    struct tw__link *prev, *next;
} tw__link;

typedef struct tw__list {
    tw__link *head, *tail;
    size_t count;
} tw__list;

/* Insert @p n first. */
void tw__list_push(tw__list *l, tw__link *n);
/* Insert @p n last (FIFO order with tw__list_shift()). */
void tw__list_append(tw__list *l, tw__link *n);
/* Remove @p n, which must be on @p l. */
void tw__list_remove(tw__list *l, tw__link *n);
/* Put @p n where @p old, which must be on @p l, is (the node moved). */
void tw__list_replace(tw__list *l, tw__link *old, tw__link *n);
/* Remove and @return the first node, or NULL when @p l is empty. */
tw__link *tw__list_shift(tw__list *l);

#endif
