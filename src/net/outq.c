/* SPDX-License-Identifier: MIT */
/*
 * The stream's output queue (outq_internal.h): one contiguous buffer with a
 * read offset, so a batch goes out in a single send().
 *
 * Every write made inside a dispatch passes through a queue, so queues
 * must not cost an allocation per message: an emptied queue goes back to
 * its reactor's spares, buffer and all, and the next batch of any stream
 * takes it from there. An idle connection still holds no queue. A queue
 * that grew large (a peer that does not read) gives its memory back rather
 * than keep it among the spares.
 *
 * Descriptors ride on a byte of the queue (pos, in the queue's own count
 * of bytes sent), so the stream can send the bytes before them plainly and
 * attach them to the first of theirs. A queue given back with descriptors
 * still attached (its stream closed) closes them: they were duplicates
 * made for the queue, and nobody else will.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/outq_internal.h"

/* Spares kept per reactor, the largest buffer a spare keeps, and the most
 * buffer memory all spares hold together. A dispatch that serves many
 * connections (one epoll wakeup brings up to 32) opens a batch for each,
 * and every batch goes back at once: fewer spares than that would free and
 * allocate queues on every wakeup (measured: malloc and free were the
 * largest user-space cost of 50-connection line echo with 8 spares). */
#define SPARES_MAX 64
#define SPARE_CAP_MAX (64 * 1024)
#define SPARE_BYTES_MAX (256 * 1024)
/* The first buffer: room for a few small messages. */
#define CAP_MIN 4096

tw__outq *tw__outq_get(tw_reactor *r, void *owner)
{
    tw__outq *q = r->spare_outq;
    if (q != NULL) {
        r->spare_outq = q->next;
        r->spare_outq_count--;
        r->spare_outq_bytes -= q->cap;
    } else if ((q = calloc(1, sizeof *q)) == NULL) {
        return NULL;
    }
    q->next = NULL;
    q->owner = owner;
    q->off = q->len = q->consumed = 0;
    q->fds = q->fds_tail = NULL;
    q->in_batch = 0;
    return q;
}

void tw__outq_put(tw_reactor *r, tw__outq *q)
{
    while (q->fds != NULL)
        tw__outq_pop_fds(q);
    if (r->spare_outq_count >= SPARES_MAX) {
        free(q->data);
        free(q);
        return;
    }
    if (q->cap > SPARE_CAP_MAX || q->cap > SPARE_BYTES_MAX - r->spare_outq_bytes) {
        free(q->data);
        q->data = NULL;
        q->cap = 0;
    }
    r->spare_outq_bytes += q->cap;
    q->owner = NULL;
    q->next = r->spare_outq;
    r->spare_outq = q;
    r->spare_outq_count++;
}

/* Room for @p need more bytes after the unsent ones. Moving the unsent
 * bytes to the front only once at least half the buffer is spent keeps an
 * append amortised O(1) while a backlog drains from the front. */
static int reserve(tw__outq *q, size_t need)
{
    if (need > SIZE_MAX - q->len)
        return -ENOMEM;
    size_t want = q->len + need;
    if (q->off + want <= q->cap)
        return 0;
    if (q->off > 0 && (want <= q->cap || q->off >= q->cap / 2)) {
        memmove(q->data, q->data + q->off, q->len);
        q->off = 0;
        if (want <= q->cap)
            return 0;
    }
    size_t cap = q->cap > 0 ? q->cap : CAP_MIN;
    while (cap < q->off + want) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *grown = realloc(q->data, cap);
    if (grown == NULL)
        return -ENOMEM;
    q->data = grown;
    q->cap = cap;
    return 0;
}

int tw__outq_append(tw__outq *q, const struct iovec *iov, int iovcnt, size_t skip)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len; /* the caller summed them already without overflow */
    total -= skip;
    if (reserve(q, total) < 0)
        return -ENOMEM;
    char *end = q->data + q->off + q->len;
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) { /* also every empty buffer, whose base may be NULL */
            skip -= len;
            continue;
        }
        memcpy(end, (const char *)iov[i].iov_base + skip, len - skip);
        end += len - skip;
        skip = 0;
    }
    q->len += total;
    return 0;
}

void tw__outq_consume(tw__outq *q, size_t n)
{
    q->len -= n;
    q->off = q->len == 0 ? 0 : q->off + n;
    q->consumed += n;
}

void tw__outq_push_fds(tw__outq *q, tw__outq_fds *m)
{
    m->pos = q->consumed + q->len;
    m->next = NULL;
    if (q->fds_tail != NULL)
        q->fds_tail->next = m;
    else
        q->fds = m;
    q->fds_tail = m;
}

static void free_fds(tw__outq_fds *m)
{
    for (int i = 0; i < m->n; i++)
        close(m->fd[i]);
    free(m);
}

void tw__outq_unpush_fds(tw__outq *q)
{
    tw__outq_fds *m = q->fds_tail, **at = &q->fds;
    q->fds_tail = NULL;
    while (*at != m) {
        q->fds_tail = *at;
        at = &(*at)->next;
    }
    *at = NULL;
    free_fds(m);
}

void tw__outq_pop_fds(tw__outq *q)
{
    tw__outq_fds *m = q->fds;
    q->fds = m->next;
    if (q->fds == NULL)
        q->fds_tail = NULL;
    free_fds(m);
}

void tw__outq_free_spares(tw_reactor *r)
{
    while (r->spare_outq != NULL) {
        tw__outq *q = r->spare_outq;
        r->spare_outq = q->next;
        free(q->data);
        free(q);
    }
    r->spare_outq_count = 0;
    r->spare_outq_bytes = 0;
}
