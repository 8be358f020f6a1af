/* SPDX-License-Identifier: MIT */
/*
 * The line receiver (see twine/line.h): delimiter framing over a byte stream.
 *
 * Bytes are parsed where they lie whenever possible: when nothing is
 * buffered, lines are found and handed out straight from the caller's chunk,
 * and only the tail that does not end in a delimiter is copied. Once a
 * partial line is buffered, new chunks are appended behind it and the search
 * resumes where the previous one stopped (recorded in @c scanned), so a long
 * line fed a byte at a time costs linear time, not quadratic.
 *
 * Callbacks borrow the bytes they are given. To keep those bytes still while
 * a callback runs, data fed from inside a callback goes to a separate
 * @c pending queue, which is moved behind the buffer only once the callback
 * has returned; consumed bytes are marked consumed before the call, so the
 * callback sees the buffer exactly as Twisted's code would.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <twine/line.h>
#include <twine/log.h>
#include <twine/transport.h>

#include "core/buf_internal.h"

enum { LR_RAW = 1 << 0, LR_PAUSED = 1 << 1, LR_BUSY = 1 << 2 };

/* Smallest buffer allocated; partial lines are usually short. */
#define MIN_CAP 256

static tw_transport *transport_of(const tw_line_receiver *lr)
{
    return lr->protocol != NULL ? lr->protocol->transport : NULL;
}

/*
 * Twisted's transport.disconnecting: the protocol lost or aborted its
 * connection. A transport refuses every write, an empty one included, with
 * TW_ESTATE from that moment on.
 */
static int transport_closing(const tw_line_receiver *lr)
{
    tw_transport *t = transport_of(lr);
    return t != NULL && tw_transport_disconnecting(t);
}

/* Append behind the unprocessed bytes. Never called while a callback runs. */
static int buf_append(tw_line_receiver *lr, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (lr->start == lr->end) {
        lr->start = lr->end = 0;
    } else if (lr->start > 0 && lr->cap - lr->end < len) {
        /* Each byte moves at most once: after this it sits at the front. */
        memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
        lr->end -= lr->start;
        lr->start = 0;
    }
    if (tw__buf_reserve(&lr->buf, &lr->cap, lr->end, len, MIN_CAP, NULL) < 0)
        return -ENOMEM;
    memcpy(lr->buf + lr->end, data, len);
    lr->end += len;
    return 0;
}

static int pending_append(tw_line_receiver *lr, const void *data, size_t len)
{
    if (tw__buf_reserve(&lr->pending, &lr->pending_cap, lr->pending_len, len, MIN_CAP, NULL) < 0)
        return -ENOMEM;
    memcpy(lr->pending + lr->pending_len, data, len);
    lr->pending_len += len;
    return 0;
}

/* Give memory back once nothing is left to parse: idle connections hold none. */
static void buf_trim(tw_line_receiver *lr)
{
    if (lr->start == lr->end) {
        free(lr->buf);
        lr->buf = NULL;
        lr->start = lr->end = lr->cap = lr->scanned = 0;
    }
}

/*
 * Where the bytes being parsed live: the caller's chunk (@c ext, from @c pos
 * on) or the receiver's buffer. Exactly one of them holds data.
 */
typedef struct {
    const char *ext;
    size_t ext_len, pos;
    int in_buf;
} source;

/*
 * After a callback: queue what it fed behind the bytes not parsed yet. If
 * those were still in the caller's chunk they are copied first, so the order
 * is what Twisted's single buffer would give.
 */
static int absorb_pending(tw_line_receiver *lr, source *src)
{
    if (lr->pending_len == 0)
        return 0;
    if (!src->in_buf) {
        if (buf_append(lr, src->ext + src->pos, src->ext_len - src->pos) < 0)
            return -ENOMEM;
        lr->scanned = 0;
        src->in_buf = 1;
    }
    int rc = buf_append(lr, lr->pending, lr->pending_len);
    free(lr->pending);
    lr->pending = NULL;
    lr->pending_len = lr->pending_cap = 0;
    return rc;
}

/* Mark @p n bytes of the source consumed, before they are handed out. */
static void consume(tw_line_receiver *lr, source *src, size_t n)
{
    if (src->in_buf) {
        lr->start += n;
        lr->scanned = 0;
    } else {
        src->pos += n;
    }
}

static const char *find_delimiter(const tw_line_receiver *lr, const char *p, size_t len,
                                  size_t from)
{
    size_t dlen = lr->delimiter_len;
    if (from >= len || len - from < dlen)
        return NULL;
    /* memchr for the delimiter's last byte, then a look back: memchr is
     * vectorised and a short delimiter (CRLF) cost measurably more through
     * memmem's general search on a short line. */
    unsigned char last = (unsigned char)lr->delimiter[dlen - 1];
    const char *at = p + from + dlen - 1, *end = p + len;
    while ((at = memchr(at, last, (size_t)(end - at))) != NULL) {
        const char *start = at - (dlen - 1);
        if (memcmp(start, lr->delimiter, dlen - 1) == 0)
            return start;
        at++;
    }
    return NULL;
}

static void length_exceeded(tw_line_receiver *lr, const char *data, size_t len)
{
    if (lr->ops->line_length_exceeded != NULL) {
        lr->ops->line_length_exceeded(lr, data, len);
        return;
    }
    tw_transport *t = transport_of(lr);
    if (t != NULL) {
        tw_transport_set_close_reason(t, TW_CLOSE_TOO_LONG);
        tw_transport_lose_connection(t);
    }
}

/* The body of Twisted's LineReceiver.dataReceived. Runs with LR_BUSY set. */
static int process(tw_line_receiver *lr, const char *data, size_t len)
{
    source src = {data, len, 0, 1};
    size_t ext_scanned = 0; /* lr->scanned, for a partial line still in the chunk */

    if (lr->end > lr->start) {
        if (len > 0 && buf_append(lr, data, len) < 0)
            return -ENOMEM;
    } else if (len > 0) {
        src.in_buf = 0;
    }

    while (!(lr->flags & LR_PAUSED)) {
        size_t avail = src.in_buf ? lr->end - lr->start : src.ext_len - src.pos;
        if (avail == 0)
            break; /* before forming a pointer: an empty buffer may be NULL */
        const char *base = src.in_buf ? lr->buf + lr->start : src.ext + src.pos;

        if (lr->flags & LR_RAW) {
            consume(lr, &src, avail);
            if (lr->ops->raw_data_received != NULL)
                lr->ops->raw_data_received(lr, base, avail);
            if (absorb_pending(lr, &src) < 0)
                return -ENOMEM;
            continue;
        }

        size_t dlen = lr->delimiter_len;
        size_t *scanned = src.in_buf ? &lr->scanned : &ext_scanned;
        const char *hit = find_delimiter(lr, base, avail, *scanned);
        if (hit == NULL) {
            if (avail >= dlen && avail - dlen >= lr->max_length) {
                consume(lr, &src, avail);
                length_exceeded(lr, base, avail);
                return absorb_pending(lr, &src);
            }
            /* A delimiter may still begin in the last dlen - 1 bytes. */
            *scanned = avail >= dlen ? avail - dlen + 1 : 0;
            break;
        }
        size_t line_len = (size_t)(hit - base);
        if (line_len > lr->max_length) {
            consume(lr, &src, avail);
            length_exceeded(lr, base, avail);
            return absorb_pending(lr, &src);
        }
        consume(lr, &src, line_len + dlen);
        ext_scanned = 0;
        lr->ops->line_received(lr, base, line_len);
        if (absorb_pending(lr, &src) < 0)
            return -ENOMEM;
        if (transport_closing(lr))
            break;
    }

    if (!src.in_buf && src.pos < src.ext_len) {
        /* buf is empty here: keep the partial line and how far it was searched. */
        if (buf_append(lr, src.ext + src.pos, src.ext_len - src.pos) < 0)
            return -ENOMEM;
        lr->scanned = ext_scanned;
    }
    return 0;
}

/* The stream can no longer be framed: drop everything and abort. */
static int fail_nomem(tw_line_receiver *lr)
{
    free(lr->pending);
    lr->pending = NULL;
    lr->pending_len = lr->pending_cap = 0;
    lr->start = lr->end;
    buf_trim(lr);
    tw_log(TW_LOG_ERROR, "line", "out of memory buffering a line; aborting the connection");
    tw_transport *t = transport_of(lr);
    if (t != NULL)
        tw_transport_abort_connection(t);
    return -ENOMEM;
}

TW_API void tw_line_receiver_init(tw_line_receiver *lr, tw_protocol *p,
                                  const tw_line_receiver_ops *ops)
{
    memset(lr, 0, sizeof *lr);
    lr->ops = ops;
    lr->protocol = p;
    lr->max_length = TW_LINE_DEFAULT_MAX_LENGTH;
    lr->delimiter[0] = '\r';
    lr->delimiter[1] = '\n';
    lr->delimiter_len = 2;
}

TW_API void tw_line_receiver_cleanup(tw_line_receiver *lr)
{
    free(lr->buf);
    free(lr->pending);
    lr->buf = lr->pending = NULL;
    lr->start = lr->end = lr->cap = lr->scanned = 0;
    lr->pending_len = lr->pending_cap = 0;
}

TW_API int tw_line_receiver_set_delimiter(tw_line_receiver *lr, const void *delim, size_t len)
{
    if (delim == NULL || len == 0 || len > TW_LINE_MAX_DELIMITER)
        return -EINVAL;
    memcpy(lr->delimiter, delim, len);
    lr->delimiter_len = (unsigned char)len;
    lr->scanned = 0; /* what was searched for the old delimiter proves nothing */
    return 0;
}

TW_API const void *tw_line_receiver_delimiter(const tw_line_receiver *lr, size_t *len)
{
    if (len != NULL)
        *len = lr->delimiter_len;
    return lr->delimiter;
}

TW_API void tw_line_receiver_set_max_length(tw_line_receiver *lr, size_t max_length)
{
    lr->max_length = max_length;
}

TW_API size_t tw_line_receiver_max_length(const tw_line_receiver *lr)
{
    return lr->max_length;
}

TW_API int tw_line_receiver_data_received(tw_line_receiver *lr, const void *data, size_t len)
{
    if (lr->flags & LR_BUSY) {
        if (len > 0 && pending_append(lr, data, len) < 0)
            return fail_nomem(lr);
        return 0;
    }
    lr->flags |= LR_BUSY;
    int rc = process(lr, data, len);
    lr->flags &= (unsigned char)~LR_BUSY;
    if (rc < 0)
        return fail_nomem(lr);
    buf_trim(lr);
    return 0;
}

TW_API int tw_line_receiver_send_line(tw_line_receiver *lr, const void *line, size_t len)
{
    tw_transport *t = transport_of(lr);
    if (t == NULL)
        return TW_ESTATE;
    struct iovec iov[2] = {{(void *)line, len}, {lr->delimiter, lr->delimiter_len}};
    return tw_transport_writev(t, iov, 2);
}

TW_API void tw_line_receiver_set_raw_mode(tw_line_receiver *lr)
{
    lr->flags |= LR_RAW;
}

TW_API int tw_line_receiver_set_line_mode(tw_line_receiver *lr, const void *extra, size_t len)
{
    lr->flags &= (unsigned char)~LR_RAW;
    lr->scanned = 0;
    if (len == 0)
        return 0;
    return tw_line_receiver_data_received(lr, extra, len);
}

TW_API int tw_line_receiver_line_mode(const tw_line_receiver *lr)
{
    return !(lr->flags & LR_RAW);
}

TW_API void tw_line_receiver_pause_producing(tw_line_receiver *lr)
{
    lr->flags |= LR_PAUSED;
    tw_transport *t = transport_of(lr);
    if (t != NULL)
        tw_transport_pause_producing(t);
}

TW_API void tw_line_receiver_resume_producing(tw_line_receiver *lr)
{
    lr->flags &= (unsigned char)~LR_PAUSED;
    tw_transport *t = transport_of(lr);
    if (t != NULL)
        tw_transport_resume_producing(t);
    tw_line_receiver_data_received(lr, NULL, 0);
}

TW_API int tw_line_receiver_paused(const tw_line_receiver *lr)
{
    return (lr->flags & LR_PAUSED) != 0;
}

TW_API size_t tw_line_receiver_buffered(const tw_line_receiver *lr)
{
    return lr->end - lr->start + lr->pending_len;
}
