/* SPDX-License-Identifier: MIT */
/*
 * Serving connections that a load balancer relays with a PROXY header
 * (<twine/proxy.h>): a factory that wraps the user's, as Twisted's
 * HAProxyWrappingFactory does, so neither the listener nor the stream
 * transport knows the header exists.
 *
 * The listener runs a proxied connection for each accepted socket. Until the
 * header is complete, the proxied connection collects the bytes (parsed in
 * place when the first read holds the whole header, the common case; copied
 * into a buffer of TW_PROXY_HEADER_MAX bytes otherwise) under a timer. Then
 * it builds the user's protocol with the reported peer and stands between
 * it and the stream in both directions: the user's protocol writes to a
 * facing transport that forwards every call to the stream and answers
 * get_peer and get_host from the header, and the stream's callbacks are
 * forwarded to the user's protocol. The bytes that followed the header in
 * the same read are its first data_received.
 *
 * Stages: AWAITING (the header is being read, under the timer), SERVING
 * (the user's protocol runs), REFUSED (the header was bad or late, or the
 * factory refused: the stream is closing and input is dropped). Whether a
 * peer's EOF half-closes depends on the user's protocol having
 * read_connection_lost, which the stream reads from the ops table; so the
 * table is switched to the matching one when the protocol is built.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <twine/log.h>
#include <twine/proxy.h>
#include <twine/transport.h>

#include "net/proxy_internal.h"
#include "net/stream_internal.h"

typedef struct proxy_factory {
    tw_factory base;
    tw_factory *inner; /* borrowed: the listener's owner keeps it */
    double timeout;
} proxy_factory;

typedef enum { AWAITING, SERVING, REFUSED } stage;

typedef struct proxied {
    tw_protocol base;   /* run by the stream */
    tw_transport face;  /* what the user's protocol writes to */
    proxy_factory *pf;
    stage stage;
    tw_call *timer; /* the header's deadline, while AWAITING */
    uint8_t *buf;   /* a header split across reads */
    size_t have;
    tw_address peer, host; /* what get_peer and get_host answer */
} proxied;

static const tw_protocol_ops proxied_ops, proxied_half_close_ops;

/* The user's protocol, from SERVING on: kept only as the face's protocol,
 * which tw_transport_start_tls() may replace with its TLS layer. */
static tw_protocol *user(proxied *w)
{
    return w->face.protocol;
}

static proxied *from_face(tw_transport *t)
{
    return tw_container_of(t, proxied, face);
}

static tw_transport *stream_of(tw_transport *t)
{
    return from_face(t)->base.transport;
}

/* ---------------------------------------------------------------- the facing transport */

static int face_writev(tw_transport *t, const struct iovec *iov, int iovcnt)
{
    return tw_transport_writev(stream_of(t), iov, iovcnt);
}

static void face_lose(tw_transport *t)
{
    tw_transport_lose_connection(stream_of(t));
}

static void face_abort(tw_transport *t)
{
    tw_transport_abort_connection(stream_of(t));
}

static int face_lose_write(tw_transport *t)
{
    return tw_transport_lose_write_connection(stream_of(t));
}

static void face_pause(tw_transport *t)
{
    tw_transport_pause_producing(stream_of(t));
}

static void face_resume(tw_transport *t)
{
    tw_transport_resume_producing(stream_of(t));
}

static int face_get_peer(tw_transport *t, tw_address *out)
{
    *out = from_face(t)->peer;
    return 0;
}

static int face_get_host(tw_transport *t, tw_address *out)
{
    *out = from_face(t)->host;
    return 0;
}

static size_t face_write_buffer_size(tw_transport *t)
{
    return tw_transport_write_buffer_size(stream_of(t));
}

static void face_set_write_watermarks(tw_transport *t, size_t high, size_t low)
{
    tw_transport_set_write_watermarks(stream_of(t), high, low);
}

static int face_fileno(tw_transport *t)
{
    return tw_transport_fileno(stream_of(t));
}

static int face_register_producer(tw_transport *t, tw_producer *p, int streaming)
{
    return tw_transport_register_producer(stream_of(t), p, streaming);
}

static void face_unregister_producer(tw_transport *t)
{
    tw_transport_unregister_producer(stream_of(t));
}

static int face_disconnecting(tw_transport *t)
{
    return tw_transport_disconnecting(stream_of(t));
}

static void face_set_close_reason(tw_transport *t, tw_close_reason reason)
{
    tw_transport_set_close_reason(stream_of(t), reason);
}

static int face_send_fds(tw_transport *t, const void *data, size_t len, const int *fds, int nfds)
{
    return tw_transport_send_fds(stream_of(t), data, len, fds, nfds);
}

static const tw_transport_ops face_ops = {
    face_writev,          face_lose,        face_abort,
    face_lose_write,      face_pause,       face_resume,
    face_get_peer,        face_get_host,    face_write_buffer_size,
    face_set_write_watermarks, face_fileno, face_register_producer,
    face_unregister_producer, face_disconnecting, face_set_close_reason, face_send_fds,
};

/* ---------------------------------------------------------------- the header */

static const char *real_peer(proxied *w, char *buf, size_t len)
{
    tw_address a;
    if (tw_transport_get_peer(w->base.transport, &a) < 0)
        return "?";
    return tw_address_format(&a, buf, len);
}

static void stop_timer(proxied *w)
{
    if (w->timer == NULL)
        return;
    tw_call_cancel(w->timer);
    tw_call_release(w->timer);
    w->timer = NULL;
}

static void refuse(proxied *w, tw_close_reason code, const char *reason)
{
    char peer[TW_ADDRSTRLEN];
    tw_log(TW_LOG_WARN, "proxy", "closing the connection from %s: %s",
           real_peer(w, peer, sizeof peer), reason);
    stop_timer(w);
    free(w->buf);
    w->buf = NULL;
    w->have = 0;
    w->stage = REFUSED;
    tw_transport_set_close_reason(w->base.transport, code);
    tw_transport_lose_connection(w->base.transport);
}

static void header_timeout(void *arg)
{
    proxied *w = arg;
    tw_call_release(w->timer);
    w->timer = NULL;
    char why[96];
    snprintf(why, sizeof why, "no complete PROXY header within %g s", w->pf->timeout);
    refuse(w, TW_CLOSE_TIMEOUT, why);
}

/* The header is in: build the user's protocol as the peer it names. */
static void start_serving(proxied *w, const tw_proxy_header *h)
{
    tw_transport *stream = w->base.transport;
    stop_timer(w);
    if (h->local) {
        if (tw_transport_get_peer(stream, &w->peer) < 0)
            w->peer.len = 0;
        if (tw_transport_get_host(stream, &w->host) < 0)
            w->host.len = 0;
    } else {
        w->peer = h->source;
        w->host = h->destination;
        tw__stream_note_peer(stream, &w->peer); /* for the listener's close records */
    }
    tw_factory *f = w->pf->inner;
    tw_protocol *p = f->ops->build_protocol(f, &w->peer);
    if (p == NULL) {
        w->stage = REFUSED;
        tw_transport_set_close_reason(stream, TW_CLOSE_REFUSED);
        tw_transport_lose_connection(stream);
        return;
    }
    w->face.ops = &face_ops;
    w->face.protocol = p;
    w->face.reactor = stream->reactor;
    p->transport = &w->face;
    p->factory = f;
    w->stage = SERVING;
    w->base.ops = p->ops->read_connection_lost != NULL ? &proxied_half_close_ops : &proxied_ops;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p);
}

/* Hand the user's protocol bytes that came with the header. */
static void deliver(proxied *w, const uint8_t *data, size_t len)
{
    if (len > 0 && w->stage == SERVING && !tw_transport_disconnecting(w->base.transport))
        user(w)->ops->data_received(user(w), data, len);
}

/* Bytes while AWAITING: the header, and perhaps what follows it. */
static void header_bytes(proxied *w, const uint8_t *data, size_t len)
{
    tw_proxy_header h;
    const char *why = "malformed PROXY header";
    if (w->buf == NULL) {
        int rc = tw_proxy_parse(data, len, &h, &why);
        if (rc > 0) {
            start_serving(w, &h);
            deliver(w, data + rc, len - (size_t)rc);
        } else if (rc < 0) {
            refuse(w, TW_CLOSE_PROTOCOL_ERROR, why);
        } else {
            /* A valid beginning: shorter than the longest header, or the
             * parser would have decided. */
            w->buf = malloc(TW_PROXY_HEADER_MAX);
            if (w->buf == NULL) {
                refuse(w, TW_CLOSE_OVERLOAD, "out of memory for its PROXY header");
                return;
            }
            memcpy(w->buf, data, len);
            w->have = len;
        }
        return;
    }
    size_t take = len < TW_PROXY_HEADER_MAX - w->have ? len : TW_PROXY_HEADER_MAX - w->have;
    memcpy(w->buf + w->have, data, take);
    w->have += take;
    int rc = tw_proxy_parse(w->buf, w->have, &h, &why);
    if (rc < 0) {
        refuse(w, TW_CLOSE_PROTOCOL_ERROR, why);
        return;
    }
    if (rc == 0)
        return; /* and take == len, since a full buffer is always decided */
    uint8_t *buf = w->buf;
    size_t have = w->have;
    w->buf = NULL;
    w->have = 0;
    start_serving(w, &h);
    deliver(w, buf + rc, have - (size_t)rc);
    free(buf);
    deliver(w, data + take, len - take);
}

/* ---------------------------------------------------------------- the stream's protocol */

static proxied *from_base(tw_protocol *p)
{
    return tw_container_of(p, proxied, base);
}

static void proxied_connection_made(tw_protocol *p)
{
    proxied *w = from_base(p);
    if (tw_reactor_call_later(p->transport->reactor, w->pf->timeout, header_timeout, w,
                              &w->timer) < 0)
        refuse(w, TW_CLOSE_OVERLOAD, "no timer for its PROXY header");
}

static void proxied_data_received(tw_protocol *p, const void *data, size_t len)
{
    proxied *w = from_base(p);
    if (w->stage == SERVING)
        user(w)->ops->data_received(user(w), data, len);
    else if (w->stage == AWAITING)
        header_bytes(w, data, len);
}

static void proxied_connection_lost(tw_protocol *p, const tw_failure *reason)
{
    proxied *w = from_base(p);
    stop_timer(w);
    if (w->stage == SERVING) {
        user(w)->ops->connection_lost(user(w), reason);
        return;
    }
    if (w->stage == AWAITING && w->have > 0) {
        char peer[TW_ADDRSTRLEN];
        tw_log(TW_LOG_WARN, "proxy", "the connection from %s ended within its PROXY header (%s)",
               real_peer(w, peer, sizeof peer), tw_failure_message(reason));
    }
}

static void proxied_read_connection_lost(tw_protocol *p)
{
    proxied *w = from_base(p);
    user(w)->ops->read_connection_lost(user(w)); /* this table only when it has one */
}

static void proxied_write_connection_lost(tw_protocol *p)
{
    proxied *w = from_base(p);
    if (w->stage == SERVING && user(w)->ops->write_connection_lost != NULL)
        user(w)->ops->write_connection_lost(user(w));
}

static void proxied_pause_producing(tw_protocol *p)
{
    proxied *w = from_base(p);
    if (w->stage == SERVING && user(w)->ops->pause_producing != NULL)
        user(w)->ops->pause_producing(user(w));
}

static void proxied_resume_producing(tw_protocol *p)
{
    proxied *w = from_base(p);
    if (w->stage == SERVING && user(w)->ops->resume_producing != NULL)
        user(w)->ops->resume_producing(user(w));
}

static size_t proxied_buffered_input(tw_protocol *p)
{
    proxied *w = from_base(p);
    if (w->stage == SERVING)
        return user(w)->ops->buffered_input != NULL ? user(w)->ops->buffered_input(user(w)) : 0;
    return w->have;
}

/* Descriptors belong to the protocol being served; none is expected
 * before the header, and what is not taken is closed. */
static void proxied_file_descriptor_received(tw_protocol *p, int fd)
{
    proxied *w = from_base(p);
    if (w->stage == SERVING && user(w)->ops->file_descriptor_received != NULL)
        user(w)->ops->file_descriptor_received(user(w), fd);
    else
        close(fd);
}

/* The stream closes for a reason of its own: the protocol being served
 * ends its part first when it is a layer (TLS over a PROXY header). */
static void proxied_close_requested(tw_protocol *p)
{
    proxied *w = from_base(p);
    if (w->stage == SERVING && user(w)->ops->close_requested != NULL)
        user(w)->ops->close_requested(user(w));
    else
        tw_transport_lose_connection(w->base.transport);
}

static void proxied_destroy(tw_protocol *p)
{
    proxied *w = from_base(p);
    stop_timer(w);
    if (w->face.protocol != NULL && user(w)->ops->destroy != NULL)
        user(w)->ops->destroy(user(w));
    free(w->buf);
    free(w);
}

static const tw_protocol_ops proxied_ops = {
    .connection_made = proxied_connection_made,
    .data_received = proxied_data_received,
    .connection_lost = proxied_connection_lost,
    .write_connection_lost = proxied_write_connection_lost,
    .pause_producing = proxied_pause_producing,
    .resume_producing = proxied_resume_producing,
    .destroy = proxied_destroy,
    .buffered_input = proxied_buffered_input,
    .file_descriptor_received = proxied_file_descriptor_received,
    .close_requested = proxied_close_requested,
};

static const tw_protocol_ops proxied_half_close_ops = {
    .connection_made = proxied_connection_made,
    .data_received = proxied_data_received,
    .connection_lost = proxied_connection_lost,
    .read_connection_lost = proxied_read_connection_lost,
    .write_connection_lost = proxied_write_connection_lost,
    .pause_producing = proxied_pause_producing,
    .resume_producing = proxied_resume_producing,
    .destroy = proxied_destroy,
    .buffered_input = proxied_buffered_input,
    .file_descriptor_received = proxied_file_descriptor_received,
    .close_requested = proxied_close_requested,
};

/* ---------------------------------------------------------------- the factory */

static tw_protocol *proxy_build(tw_factory *f, const tw_address *peer)
{
    (void)peer; /* the balancer: the header names the client */
    proxied *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->base.ops = &proxied_ops;
    w->pf = tw_container_of(f, proxy_factory, base);
    w->stage = AWAITING;
    return &w->base;
}

static void proxy_start(tw_factory *f)
{
    tw_factory_start(tw_container_of(f, proxy_factory, base)->inner);
}

static void proxy_stop(tw_factory *f)
{
    tw_factory_stop(tw_container_of(f, proxy_factory, base)->inner);
}

static const tw_factory_ops proxy_factory_ops = {
    .build_protocol = proxy_build,
    .start_factory = proxy_start,
    .stop_factory = proxy_stop,
};

tw_factory *tw__proxy_factory_new(tw_factory *inner, double header_timeout)
{
    proxy_factory *pf = calloc(1, sizeof *pf);
    if (pf == NULL)
        return NULL;
    tw_factory_init(&pf->base, &proxy_factory_ops);
    pf->inner = inner;
    pf->timeout = header_timeout > 0 ? header_timeout : TW_PROXY_HEADER_TIMEOUT;
    return &pf->base;
}

void tw__proxy_factory_free(tw_factory *f)
{
    if (f != NULL)
        free(tw_container_of(f, proxy_factory, base));
}
