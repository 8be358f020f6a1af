/* SPDX-License-Identifier: MIT */
/*
 * The stream's output queue: the bytes a stream holds because they were
 * written inside a dispatch (a batch, sent when the dispatch returns) or
 * because the kernel refused them (sent when the socket is writable), and
 * the descriptors that go with some of those bytes (UNIX streams).
 */
#ifndef TWINE_OUTQ_INTERNAL_H
#define TWINE_OUTQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <twine/transport.h>

#include "core/reactor_internal.h"

/* Descriptors to send with the queued byte at @p pos (counted as
 * tw__outq.consumed counts): the queue owns them, duplicates made for it,
 * and closes those it never sends. */
typedef struct tw__outq_fds {
    struct tw__outq_fds *next;
    size_t pos;
    int n;
    int fd[TW_TRANSPORT_FDS_MAX];
} tw__outq_fds;

/* Owned by its stream while the stream holds it; then by the reactor's
 * batch list (when dropped while on it) or its spares. */
typedef struct tw__outq {
    struct tw__outq *next; /* the reactor's batch list, or its spares */
    void *owner;           /* the stream that writes into it; NULL once dropped */
    char *data;
    size_t off, len, cap;  /* the unsent bytes are data[off, off + len) */
    size_t consumed;       /* bytes sent since the queue was taken */
    tw__outq_fds *fds, *fds_tail; /* in order of pos; NULL for plain bytes */
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

/* Attach @p m to the next byte appended (the caller appends at once). */
void tw__outq_push_fds(tw__outq *q, tw__outq_fds *m);

/* Take back the descriptors pushed last, whose bytes could not be
 * appended: close and free them. */
void tw__outq_unpush_fds(tw__outq *q);

/* The descriptors at the front went out (or are given up): close and
 * free them. */
void tw__outq_pop_fds(tw__outq *q);

/* Free @p r's spares, with the reactor. */
void tw__outq_free_spares(tw_reactor *r);

#endif
