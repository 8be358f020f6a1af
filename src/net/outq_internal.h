/* SPDX-License-Identifier: MIT */
/*
 * The stream's output queue: the bytes a stream holds because they were
 * written inside a dispatch (a batch, sent when the dispatch returns) or
 * because the kernel refused them (sent when the socket is writable).
 */
#ifndef TWINE_OUTQ_INTERNAL_H
#define TWINE_OUTQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/reactor_internal.h"

/* Owned by its stream while the stream holds it; then by the reactor's
 * batch list (when dropped while on it) or its spares. */
typedef struct tw__outq {
    struct tw__outq *next; /* the reactor's batch list, or its spares */
    void *owner;           /* the stream that writes into it; NULL once dropped */
    char *data;
    size_t off, len, cap;  /* the unsent bytes are data[off, off + len) */
    uint8_t in_batch;      /* on r->batch: sent when the dispatch returns */
} tw__outq;

/* An empty queue for @p owner, reused from @p r's spares when there is one.
 * @return NULL when out of memory. */
tw__outq *tw__outq_get(tw_reactor *r, void *owner);

/* Give back an emptied or dropped queue @p q (not on the batch list). */
void tw__outq_put(tw_reactor *r, tw__outq *q);

/* Append the @p iovcnt buffers of @p iov, skipping their first @p skip
 * bytes (those went out already). All or nothing. @return 0 or -ENOMEM. */
int tw__outq_append(tw__outq *q, const struct iovec *iov, int iovcnt, size_t skip);

/* @p n bytes from the front went out. */
void tw__outq_consume(tw__outq *q, size_t n);

/* Free @p r's spares, with the reactor. */
void tw__outq_free_spares(tw_reactor *r);

#endif
