/* SPDX-License-Identifier: MIT */
/*
 * Length-prefixed receivers (see twine/framing.h): int8/16/32 big-endian
 * prefixes and netstrings, one state machine for all four.
 *
 * The parser never needs to look back: a prefix is gathered into four bytes
 * of state, netstring digits are folded into a number as they arrive (so a
 * length that exceeds the limit is refused at the digit that makes it too
 * big), and only a payload split across chunks is copied, into a buffer
 * that grows with what has arrived (payload_room()), never with what the
 * prefix announced: a peer that announces the maximum and sends five bytes
 * holds a few KiB, not the maximum.
 *
 * Bytes that cannot be parsed yet because the receiver is paused, or that a
 * callback fed while the receiver was busy, wait in @c pending, always in
 * stream order: whatever was left of the chunk being parsed goes in front.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/framing.h>
#include <twine/log.h>
#include <twine/transport.h>

#include "core/buf_internal.h"

enum { SR_PAUSED = 1 << 0, SR_BUSY = 1 << 1, SR_BROKEN = 1 << 2 };
enum { ST_LENGTH = 0, ST_PAYLOAD = 1 };

static tw_transport *transport_of(const tw_string_receiver *sr)
{
    return sr->protocol != NULL ? sr->protocol->transport : NULL;
}

/* The protocol lost or aborted its connection: writes are refused from then on. */
static int transport_closing(const tw_string_receiver *sr)
{
    tw_transport *t = transport_of(sr);
    return t != NULL && tw_transport_disconnecting(t);
}

static int is_netstring(const tw_string_receiver *sr)
{
    return sr->framing == TW_FRAMING_NETSTRING;
}

/* Bytes of the current message still to come after its length: the netstring comma too. */
static size_t message_size(const tw_string_receiver *sr)
{
    return sr->length + (is_netstring(sr) ? 1 : 0);
}

/* First room for a split payload. */
#define PAYLOAD_MIN_ROOM 4096

/* The room the payload buffer has when @p have of the @p need bytes have
 * arrived: doubling from PAYLOAD_MIN_ROOM, up to the message's size. A
 * function of @p have alone, so the receiver (whose struct is public and
 * embedded) keeps no capacity field. */
static size_t payload_room(size_t have, size_t need)
{
    size_t room = PAYLOAD_MIN_ROOM;
    while (room < have && room < need)
        room *= 2;
    return room < need ? room : need;
}

static void drop_buffers(tw_string_receiver *sr)
{
    free(sr->payload);
    free(sr->pending);
    sr->payload = sr->pending = NULL;
    sr->have = sr->pending_len = sr->pending_cap = 0;
}

static int pending_append(tw_string_receiver *sr, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (tw__buf_reserve(&sr->pending, &sr->pending_cap, sr->pending_len, len, 256, NULL) < 0)
        return -ENOMEM;
    memcpy(sr->pending + sr->pending_len, data, len);
    sr->pending_len += len;
    return 0;
}

/* Put @p data in front of what is queued. @p data never points into sr->pending. */
static int pending_prepend(tw_string_receiver *sr, const void *data, size_t len)
{
    if (sr->pending_len == 0)
        return pending_append(sr, data, len);
    if (len > SIZE_MAX - sr->pending_len)
        return -ENOMEM;
    size_t total = len + sr->pending_len;
    char *p = malloc(total);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, data, len);
    memcpy(p + len, sr->pending, sr->pending_len);
    free(sr->pending);
    sr->pending = p;
    sr->pending_len = sr->pending_cap = total;
    return 0;
}

static void describe_peer(const tw_string_receiver *sr, char *buf, size_t len)
{
    tw_transport *t = transport_of(sr);
    tw_address a;
    if (t != NULL && tw_transport_get_peer(t, &a) == 0)
        tw_address_format(&a, buf, len);
    else
        snprintf(buf, len, "the peer");
}

/* Netstring framing broken: log why, close, and stop listening to the peer. */
static int protocol_error(tw_string_receiver *sr, const char *why)
{
    char peer[TW_ADDRSTRLEN];
    describe_peer(sr, peer, sizeof peer);
    tw_log(TW_LOG_WARN, "framing", "bad netstring from %s: %s; closing the connection", peer,
           why);
    sr->flags |= SR_BROKEN;
    drop_buffers(sr);
    tw_transport *t = transport_of(sr);
    if (t != NULL) {
        tw_transport_set_close_reason(t, TW_CLOSE_PROTOCOL_ERROR);
        tw_transport_lose_connection(t);
    }
    return TW_EPROTO;
}

static int limit_exceeded(tw_string_receiver *sr, uint64_t length)
{
    char peer[TW_ADDRSTRLEN];
    describe_peer(sr, peer, sizeof peer);
    tw_log(TW_LOG_WARN, "framing",
           "%s announced a %" PRIu64 "-byte message, over the limit of %zu bytes; closing", peer,
           length, sr->max_length);
    sr->flags |= SR_BROKEN;
    drop_buffers(sr);
    if (sr->ops->length_limit_exceeded != NULL) {
        sr->ops->length_limit_exceeded(sr, length);
    } else {
        tw_transport *t = transport_of(sr);
        if (t != NULL) {
            tw_transport_set_close_reason(t, TW_CLOSE_TOO_LONG);
            tw_transport_lose_connection(t);
        }
    }
    return TW_EPROTO;
}

/* One netstring length byte. @return 0, or TW_EPROTO. */
static int netstring_length_byte(tw_string_receiver *sr, unsigned char c)
{
    if (c == ':') {
        if (sr->prefix_have == 0)
            return protocol_error(sr, "it does not start with a length");
        sr->state = ST_PAYLOAD;
        sr->have = 0;
        return 0;
    }
    if (c < '0' || c > '9')
        return protocol_error(sr, "its length is not a decimal number followed by ':'");
    if (sr->prefix_have > 0 && sr->length == 0)
        return protocol_error(sr, "its length has a leading zero");
    size_t d = (size_t)(c - '0');
    /* One below SIZE_MAX, so that the length plus its comma still fits. */
    size_t limit = sr->max_length < SIZE_MAX ? sr->max_length : SIZE_MAX - 1;
    if (d > limit || sr->length > (limit - d) / 10) {
        char why[96];
        snprintf(why, sizeof why, "its length is over the limit of %zu bytes", sr->max_length);
        return protocol_error(sr, why);
    }
    sr->length = sr->length * 10 + d;
    sr->prefix_have = 1; /* only "some digits seen" matters */
    return 0;
}

static uint64_t decode_prefix(const unsigned char *p, unsigned width)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < width; i++)
        v = (v << 8) | p[i];
    return v;
}

static void start_next_message(tw_string_receiver *sr)
{
    sr->state = ST_LENGTH;
    sr->length = 0;
    sr->prefix_have = 0;
    sr->have = 0;
}

/*
 * Parse from @p p until one message was delivered, the bytes ran out, or
 * the framing broke. @return the bytes consumed; *delivered tells whether a
 * callback ran; *rc receives TW_EPROTO or -ENOMEM.
 */
static size_t parse_one(tw_string_receiver *sr, const unsigned char *p, size_t n,
                        int *delivered, int *rc)
{
    size_t i = 0;
    *delivered = 0;
    while (i < n) {
        if (sr->state == ST_LENGTH) {
            if (is_netstring(sr)) {
                if ((*rc = netstring_length_byte(sr, p[i++])) < 0)
                    return i;
                continue;
            }
            unsigned width = sr->framing;
            uint64_t length;
            if (sr->prefix_have == 0 && n - i >= width) {
                length = decode_prefix(p + i, width);
                i += width;
            } else {
                size_t take = width - sr->prefix_have;
                if (take > n - i)
                    take = n - i;
                memcpy(sr->prefix + sr->prefix_have, p + i, take);
                sr->prefix_have = (unsigned char)(sr->prefix_have + take);
                i += take;
                if (sr->prefix_have < width)
                    return i;
                length = decode_prefix(sr->prefix, width);
            }
            if (length > sr->max_length) {
                *rc = limit_exceeded(sr, length);
                return i;
            }
            sr->length = (size_t)length;
            sr->state = ST_PAYLOAD;
            sr->have = 0;
        }

        size_t need = message_size(sr);
        size_t length = sr->length;
        if (sr->have == 0 && n - i >= need) {
            const unsigned char *msg = p + i;
            if (is_netstring(sr) && msg[length] != ',') {
                *rc = protocol_error(sr, "it is not terminated by a comma");
                return i;
            }
            i += need;
            start_next_message(sr);
            *delivered = 1;
            sr->ops->string_received(sr, msg, length);
            return i;
        }
        if (i == n)
            return i; /* the length ended the chunk: nothing to gather yet */
        size_t take = need - sr->have;
        if (take > n - i)
            take = n - i;
        size_t room = payload_room(sr->have + take, need);
        if (sr->payload == NULL || room > payload_room(sr->have, need)) {
            char *grown = realloc(sr->payload, room);
            if (grown == NULL) {
                *rc = -ENOMEM;
                return i;
            }
            sr->payload = grown;
        }
        memcpy(sr->payload + sr->have, p + i, take);
        sr->have += take;
        i += take;
        if (sr->have < need)
            return i;
        if (is_netstring(sr) && sr->payload[length] != ',') {
            *rc = protocol_error(sr, "it is not terminated by a comma");
            return i;
        }
        /* The handler may feed more data; the buffer it reads stays its own. */
        char *msg = sr->payload;
        sr->payload = NULL;
        start_next_message(sr);
        *delivered = 1;
        sr->ops->string_received(sr, msg, length);
        free(msg);
        return i;
    }
    return i;
}

static int stopped(const tw_string_receiver *sr)
{
    return (sr->flags & (SR_PAUSED | SR_BROKEN)) != 0;
}

/* Parse the chunk, then whatever is queued, in stream order. Runs with SR_BUSY set. */
static int drive(tw_string_receiver *sr, const unsigned char *data, size_t len)
{
    const unsigned char *src = data;
    size_t n = len, pos = 0;
    char *owned = NULL; /* the detached pending buffer being parsed */
    int rc = 0;

    if (sr->pending_len > 0) { /* queued bytes come first */
        if (pending_append(sr, data, len) < 0)
            return -ENOMEM;
        n = 0;
    }
    for (;;) {
        if (stopped(sr))
            break;
        if (pos == n) {
            free(owned);
            owned = NULL;
            if (sr->pending_len == 0)
                break;
            owned = sr->pending;
            src = (const unsigned char *)owned;
            n = sr->pending_len;
            pos = 0;
            sr->pending = NULL;
            sr->pending_len = sr->pending_cap = 0;
        }
        int delivered;
        pos += parse_one(sr, src + pos, n - pos, &delivered, &rc);
        if (rc < 0)
            break;
        if (delivered && transport_closing(sr))
            break;
    }
    /* Bytes a callback fed went to @c pending; what is left here is older. */
    if (rc == 0 && pos < n && !(sr->flags & SR_BROKEN))
        rc = pending_prepend(sr, src + pos, n - pos);
    free(owned);
    if (sr->flags & SR_BROKEN)
        drop_buffers(sr); /* a callback may have queued more meanwhile */
    return rc;
}

static int fail_nomem(tw_string_receiver *sr)
{
    sr->flags |= SR_BROKEN;
    drop_buffers(sr);
    tw_log(TW_LOG_ERROR, "framing", "out of memory buffering a message; aborting the connection");
    tw_transport *t = transport_of(sr);
    if (t != NULL)
        tw_transport_abort_connection(t);
    return -ENOMEM;
}

TW_API int tw_string_receiver_init(tw_string_receiver *sr, tw_protocol *p, tw_framing framing,
                                   const tw_string_receiver_ops *ops)
{
    if (framing != TW_FRAMING_INT8 && framing != TW_FRAMING_INT16 &&
        framing != TW_FRAMING_INT32 && framing != TW_FRAMING_NETSTRING)
        return -EINVAL;
    memset(sr, 0, sizeof *sr);
    sr->ops = ops;
    sr->protocol = p;
    sr->framing = (unsigned char)framing;
    sr->max_length = TW_STRING_DEFAULT_MAX_LENGTH;
    return 0;
}

TW_API void tw_string_receiver_cleanup(tw_string_receiver *sr)
{
    drop_buffers(sr);
    start_next_message(sr);
}

TW_API tw_framing tw_string_receiver_framing(const tw_string_receiver *sr)
{
    return (tw_framing)sr->framing;
}

TW_API void tw_string_receiver_set_max_length(tw_string_receiver *sr, size_t max_length)
{
    sr->max_length = max_length;
}

TW_API size_t tw_string_receiver_max_length(const tw_string_receiver *sr)
{
    return sr->max_length;
}

TW_API int tw_string_receiver_data_received(tw_string_receiver *sr, const void *data,
                                            size_t len)
{
    if (sr->flags & SR_BROKEN)
        return TW_EPROTO;
    if (sr->flags & SR_BUSY) {
        if (pending_append(sr, data, len) < 0)
            return fail_nomem(sr);
        return 0;
    }
    sr->flags |= SR_BUSY;
    int rc = drive(sr, data, len);
    sr->flags &= (unsigned char)~SR_BUSY;
    if (rc == -ENOMEM)
        return fail_nomem(sr);
    return rc;
}

TW_API int tw_string_receiver_send_string(tw_string_receiver *sr, const void *data, size_t len)
{
    unsigned char prefix[24];
    size_t plen;
    struct iovec iov[3];
    int iovcnt = 2;

    if (is_netstring(sr)) {
        int w = snprintf((char *)prefix, sizeof prefix, "%zu:", len);
        plen = (size_t)w;
        iov[2].iov_base = (void *)",";
        iov[2].iov_len = 1;
        iovcnt = 3;
    } else {
        unsigned width = sr->framing;
        if (width < sizeof(uint64_t) && (uint64_t)len >> (8 * width) != 0)
            return TW_ETOOBIG;
        for (unsigned i = 0; i < width; i++)
            prefix[i] = (unsigned char)((uint64_t)len >> (8 * (width - 1 - i)));
        plen = width;
    }
    tw_transport *t = transport_of(sr);
    if (t == NULL)
        return TW_ESTATE;
    iov[0].iov_base = prefix;
    iov[0].iov_len = plen;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    return tw_transport_writev(t, iov, iovcnt);
}

TW_API void tw_string_receiver_pause_producing(tw_string_receiver *sr)
{
    sr->flags |= SR_PAUSED;
    tw_transport *t = transport_of(sr);
    if (t != NULL)
        tw_transport_pause_producing(t);
}

TW_API void tw_string_receiver_resume_producing(tw_string_receiver *sr)
{
    sr->flags &= (unsigned char)~SR_PAUSED;
    tw_transport *t = transport_of(sr);
    if (t != NULL)
        tw_transport_resume_producing(t);
    tw_string_receiver_data_received(sr, NULL, 0);
}

TW_API int tw_string_receiver_paused(const tw_string_receiver *sr)
{
    return (sr->flags & SR_PAUSED) != 0;
}

TW_API int tw_string_receiver_broken(const tw_string_receiver *sr)
{
    return (sr->flags & SR_BROKEN) != 0;
}

TW_API size_t tw_string_receiver_buffered(const tw_string_receiver *sr)
{
    return (sr->payload != NULL ? payload_room(sr->have, message_size(sr)) : 0) + sr->pending_cap;
}
