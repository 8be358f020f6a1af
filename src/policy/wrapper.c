/* SPDX-License-Identifier: MIT */
/*
 * The policy factory and its wrapper (Twisted's WrappingFactory and
 * ProtocolWrapper): each connection gets a policy protocol, which the real
 * transport drives, and a transport of its own, which the wrapped protocol
 * writes to. Every call is forwarded; the policies only count, pause and
 * log on the way (see twine/policies.h).
 *
 * Pauses have several sources, so each is a flag and the real state follows
 * from all of them (tw__policy_update_read/write): reading stops while the
 * wrapped protocol or a throttle wants it stopped, and the wrapped side
 * stops producing while the real queue is over its high mark or a throttle
 * holds writes. The wrapped protocol's producer is never registered on the
 * real transport itself: a proxy is, so that the real transport's resume
 * cannot end a throttle's pause.
 *
 * The real transport decides half-close by whether its protocol has
 * read_connection_lost, so a policy protocol shows that callback only when
 * the wrapped protocol has it (two operation tables).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <twine/log.h>
#include <twine/transport.h>

#include "policy/policy_internal.h"

static const tw_transport_ops wrap_transport_ops;
static const tw_producer_ops proxy_ops;
static const tw_protocol_ops policy_ops, policy_half_close_ops;

static tw__policy_conn *conn_of(tw_protocol *p)
{
    return tw_container_of(p, tw__policy_conn, base);
}

static tw__policy_conn *conn_of_transport(tw_transport *t)
{
    return tw_container_of(t, tw__policy_conn, transport);
}

static tw_transport *real(tw__policy_conn *c)
{
    return c->base.transport;
}

void tw__policy_update_read(tw__policy_conn *c)
{
    if (c->flags & TW__PC_LOST)
        return;
    int stop = (c->flags & TW__PC_INNER_READ_PAUSED) || tw__throttle_reads_held(c);
    if (stop && !(c->flags & TW__PC_READ_STOPPED)) {
        c->flags |= TW__PC_READ_STOPPED;
        tw_transport_pause_producing(real(c));
    } else if (!stop && (c->flags & TW__PC_READ_STOPPED)) {
        c->flags &= ~(unsigned)TW__PC_READ_STOPPED;
        tw_transport_resume_producing(real(c));
    }
}

void tw__policy_update_write(tw__policy_conn *c)
{
    if ((c->flags & (TW__PC_LOST | TW__PC_MADE)) != TW__PC_MADE)
        return;
    tw_protocol *inner = c->transport.protocol;
    if ((c->flags & TW__PC_WM_PAUSED) || tw__throttle_writes_held(c)) {
        if (c->producer != NULL && c->streaming) {
            if (!(c->flags & TW__PC_PROD_PAUSED)) {
                c->flags |= TW__PC_PROD_PAUSED;
                if (c->producer->ops->pause_producing != NULL)
                    c->producer->ops->pause_producing(c->producer);
            }
        } else if (c->producer == NULL && !(c->flags & TW__PC_PROTO_PAUSED)) {
            c->flags |= TW__PC_PROTO_PAUSED;
            if (inner->ops->pause_producing != NULL)
                inner->ops->pause_producing(inner);
        }
        return;
    }
    /* Each resume may write, close or pause again: re-check the flags. */
    if ((c->flags & TW__PC_PROD_PAUSED) && c->producer != NULL) {
        c->flags &= ~(unsigned)TW__PC_PROD_PAUSED;
        if (c->producer->ops->resume_producing != NULL)
            c->producer->ops->resume_producing(c->producer);
    }
    if ((c->flags & TW__PC_PROTO_PAUSED) && !(c->flags & TW__PC_LOST) &&
        !((c->flags & TW__PC_WM_PAUSED) || tw__throttle_writes_held(c))) {
        c->flags &= ~(unsigned)TW__PC_PROTO_PAUSED;
        if (inner->ops->resume_producing != NULL)
            inner->ops->resume_producing(inner);
    }
    if ((c->flags & TW__PC_PULL_WANTED) && c->producer != NULL && !c->streaming &&
        !(c->flags & TW__PC_LOST) && !tw__throttle_writes_held(c)) {
        c->flags &= ~(unsigned)TW__PC_PULL_WANTED;
        if (c->producer->ops->resume_producing != NULL)
            c->producer->ops->resume_producing(c->producer);
    }
}

/* ------------------------------------------------------------ the policy protocol */

static void policy_made(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    c->transport.reactor = p->transport->reactor;
    c->flags |= TW__PC_MADE;
    tw__list_append(&c->f->conns, &c->link);
    tw__throttle_conn_init(c);
    tw__traffic_made(c);
    if (c->transport.protocol->ops->connection_made != NULL)
        c->transport.protocol->ops->connection_made(c->transport.protocol);
}

static void policy_data(tw_protocol *p, const void *data, size_t len)
{
    tw__policy_conn *c = conn_of(p);
    tw__traffic_bytes(c, '<', data, len);
    c->transport.protocol->ops->data_received(c->transport.protocol, data, len);
    tw__throttle_read(c, len);
}

static void policy_lost(tw_protocol *p, const tw_failure *reason)
{
    tw__policy_conn *c = conn_of(p);
    c->flags |= TW__PC_LOST;
    tw__list_remove(&c->f->conns, &c->link);
    tw__throttle_conn_done(c);
    tw__traffic_lost(c, reason);
    c->transport.protocol->ops->connection_lost(c->transport.protocol, reason);
}

static void policy_read_lost(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    c->transport.protocol->ops->read_connection_lost(c->transport.protocol);
}

static void policy_write_lost(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    if (c->transport.protocol->ops->write_connection_lost != NULL)
        c->transport.protocol->ops->write_connection_lost(c->transport.protocol);
}

/* The real queue crossed its watermarks (no producer registered). */
static void policy_pause(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    c->flags |= TW__PC_WM_PAUSED;
    tw__policy_update_write(c);
}

static void policy_resume(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    c->flags &= ~(unsigned)TW__PC_WM_PAUSED;
    tw__policy_update_write(c);
}

static void policy_destroy(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    if ((c->flags & TW__PC_MADE) && !(c->flags & TW__PC_LOST)) {
        /* Destroyed without connection_lost (a failed start): still tidy. */
        tw__list_remove(&c->f->conns, &c->link);
        tw__throttle_conn_done(c);
    }
    tw__peers_leave(c->f, &c->peer);
    if (c->transport.protocol->ops->destroy != NULL)
        c->transport.protocol->ops->destroy(c->transport.protocol);
    free(c);
}

static size_t policy_buffered(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    return c->transport.protocol->ops->buffered_input != NULL ? c->transport.protocol->ops->buffered_input(c->transport.protocol) : 0;
}

/* The real transport closes for a reason of its own: a wrapped protocol
 * that is a layer (TLS put in by tw_transport_start_tls) ends its part
 * first. */
static void policy_close_requested(tw_protocol *p)
{
    tw__policy_conn *c = conn_of(p);
    tw_protocol *inner = c->transport.protocol;
    if ((c->flags & TW__PC_MADE) && inner->ops->close_requested != NULL)
        inner->ops->close_requested(inner);
    else
        tw_transport_lose_connection(real(c));
}

/* Descriptors go to the wrapped protocol, or are closed when it takes none. */
static void policy_fd_received(tw_protocol *p, int fd)
{
    tw__policy_conn *c = conn_of(p);
    tw_protocol *inner = c->transport.protocol;
    if (!(c->flags & TW__PC_LOST) && inner->ops->file_descriptor_received != NULL)
        inner->ops->file_descriptor_received(inner, fd);
    else
        close(fd);
}

#define POLICY_OPS_COMMON                                                                         \
    .connection_made = policy_made, .data_received = policy_data,                                 \
    .connection_lost = policy_lost, .write_connection_lost = policy_write_lost,                   \
    .pause_producing = policy_pause, .resume_producing = policy_resume,                           \
    .destroy = policy_destroy, .buffered_input = policy_buffered,                                 \
    .file_descriptor_received = policy_fd_received, .close_requested = policy_close_requested

static const tw_protocol_ops policy_ops = {POLICY_OPS_COMMON};
static const tw_protocol_ops policy_half_close_ops = {POLICY_OPS_COMMON,
                                                      .read_connection_lost = policy_read_lost};

/* ------------------------------------------------------------ the wrapped protocol's transport */

static int wrap_writev(tw_transport *t, const struct iovec *iov, int iovcnt)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (c->flags & TW__PC_LOST)
        return TW_ESTATE;
    int rc = tw_transport_writev(real(c), iov, iovcnt);
    if (rc < 0 || iovcnt <= 0)
        return rc;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        tw__traffic_bytes(c, '>', iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    tw__throttle_wrote(c, total);
    return 0;
}

static int wrap_send_fds(tw_transport *t, const void *data, size_t len, const int *fds, int nfds)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (c->flags & TW__PC_LOST)
        return TW_ESTATE;
    int rc = tw_transport_send_fds(real(c), data, len, fds, nfds);
    if (rc < 0)
        return rc;
    tw__traffic_bytes(c, '>', data, len);
    tw__throttle_wrote(c, len);
    return 0;
}

static void wrap_lose(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (!(c->flags & TW__PC_LOST))
        tw_transport_lose_connection(real(c));
}

static void wrap_abort(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (!(c->flags & TW__PC_LOST))
        tw_transport_abort_connection(real(c));
}

static int wrap_lose_write(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    return c->flags & TW__PC_LOST ? TW_ESTATE : tw_transport_lose_write_connection(real(c));
}

static void wrap_pause(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    c->flags |= TW__PC_INNER_READ_PAUSED;
    tw__policy_update_read(c);
}

static void wrap_resume(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    c->flags &= ~(unsigned)TW__PC_INNER_READ_PAUSED;
    tw__policy_update_read(c);
}

static int wrap_get_peer(tw_transport *t, tw_address *out)
{
    tw__policy_conn *c = conn_of_transport(t);
    return c->flags & TW__PC_LOST ? -ENOTCONN : tw_transport_get_peer(real(c), out);
}

static int wrap_get_host(tw_transport *t, tw_address *out)
{
    tw__policy_conn *c = conn_of_transport(t);
    return c->flags & TW__PC_LOST ? -ENOTCONN : tw_transport_get_host(real(c), out);
}

static size_t wrap_buffer_size(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    return c->flags & TW__PC_LOST ? 0 : tw_transport_write_buffer_size(real(c));
}

static void wrap_set_watermarks(tw_transport *t, size_t high, size_t low)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (!(c->flags & TW__PC_LOST))
        tw_transport_set_write_watermarks(real(c), high, low);
}

static int wrap_fileno(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    return c->flags & TW__PC_LOST ? -1 : tw_transport_fileno(real(c));
}

static int wrap_register_producer(tw_transport *t, tw_producer *p, int streaming)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (c->producer != NULL)
        return TW_ESTATE;
    if (c->flags & TW__PC_LOST) {
        if (p->ops->stop_producing != NULL)
            p->ops->stop_producing(p);
        return TW_ESTATE;
    }
    c->producer = p;
    c->streaming = streaming;
    c->flags &= ~(unsigned)(TW__PC_PROD_PAUSED | TW__PC_PULL_WANTED);
    /* A closing real transport stops the proxy at once, which stops @p p. */
    int rc = tw_transport_register_producer(real(c), &c->proxy, streaming);
    if (rc < 0) {
        c->producer = NULL;
        return rc;
    }
    if (streaming)
        tw__policy_update_write(c);
    return 0;
}

static void wrap_unregister_producer(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (c->producer == NULL)
        return;
    c->producer = NULL;
    c->flags &= ~(unsigned)(TW__PC_PROD_PAUSED | TW__PC_PULL_WANTED);
    if (!(c->flags & TW__PC_LOST))
        tw_transport_unregister_producer(real(c));
}

static void wrap_set_close_reason(tw_transport *t, tw_close_reason reason)
{
    tw__policy_conn *c = conn_of_transport(t);
    if (!(c->flags & TW__PC_LOST))
        tw_transport_set_close_reason(real(c), reason);
}

static int wrap_disconnecting(tw_transport *t)
{
    tw__policy_conn *c = conn_of_transport(t);
    return c->flags & TW__PC_LOST ? 1 : tw_transport_disconnecting(real(c));
}

static const tw_transport_ops wrap_transport_ops = {
    .writev = wrap_writev,
    .lose_connection = wrap_lose,
    .abort_connection = wrap_abort,
    .lose_write_connection = wrap_lose_write,
    .pause_producing = wrap_pause,
    .resume_producing = wrap_resume,
    .get_peer = wrap_get_peer,
    .get_host = wrap_get_host,
    .write_buffer_size = wrap_buffer_size,
    .set_write_watermarks = wrap_set_watermarks,
    .fileno = wrap_fileno,
    .set_close_reason = wrap_set_close_reason,
    .register_producer = wrap_register_producer,
    .unregister_producer = wrap_unregister_producer,
    .disconnecting = wrap_disconnecting,
    .send_fds = wrap_send_fds,
};

/* ------------------------------------------------------------ the proxy producer */

static void proxy_pause(tw_producer *p)
{
    tw__policy_conn *c = tw_container_of(p, tw__policy_conn, proxy);
    c->flags |= TW__PC_WM_PAUSED;
    tw__policy_update_write(c);
}

/* Streaming: the real queue drained. Pull: it is empty, more is wanted. */
static void proxy_resume(tw_producer *p)
{
    tw__policy_conn *c = tw_container_of(p, tw__policy_conn, proxy);
    if (c->streaming) {
        c->flags &= ~(unsigned)TW__PC_WM_PAUSED;
        tw__policy_update_write(c);
        return;
    }
    if (tw__throttle_writes_held(c)) {
        c->flags |= TW__PC_PULL_WANTED; /* asked for when the throttle ends */
        return;
    }
    if (c->producer != NULL && c->producer->ops->resume_producing != NULL)
        c->producer->ops->resume_producing(c->producer);
}

static void proxy_stop(tw_producer *p)
{
    tw__policy_conn *c = tw_container_of(p, tw__policy_conn, proxy);
    tw_producer *prod = c->producer;
    c->producer = NULL;
    c->flags &= ~(unsigned)(TW__PC_PROD_PAUSED | TW__PC_PULL_WANTED);
    if (prod != NULL && prod->ops->stop_producing != NULL)
        prod->ops->stop_producing(prod);
}

static const tw_producer_ops proxy_ops = {proxy_pause, proxy_resume, proxy_stop};

/* ------------------------------------------------------------ the factory */

static tw__policy_factory *factory_of(tw_factory *f)
{
    return tw_container_of(f, tw__policy_factory, base);
}

static tw_protocol *policy_build(tw_factory *fb, const tw_address *peer)
{
    tw__policy_factory *f = factory_of(fb);
    tw__policy_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (tw__peers_admit(f, peer, &c->peer) < 0) {
        free(c);
        return NULL;
    }
    tw_protocol *inner = f->wrapped->ops->build_protocol(f->wrapped, peer);
    if (inner == NULL) {
        tw__peers_leave(f, &c->peer);
        free(c);
        return NULL;
    }
    c->f = f;
    c->id = ++f->next_id;
    c->base.ops = inner->ops->read_connection_lost != NULL ? &policy_half_close_ops : &policy_ops;
    c->transport.ops = &wrap_transport_ops;
    c->transport.protocol = inner; /* owned; tw_transport_start_tls() may put TLS first */
    c->transport.reactor = f->reactor;
    c->proxy.ops = &proxy_ops;
    inner->transport = &c->transport;
    inner->factory = f->wrapped;
    return &c->base;
}

static void policy_start_factory(tw_factory *fb)
{
    tw_factory_start(factory_of(fb)->wrapped);
}

static void policy_stop_factory(tw_factory *fb)
{
    tw_factory_stop(factory_of(fb)->wrapped);
}

static void policy_client_failed(tw_factory *fb, const tw_failure *reason)
{
    tw_factory *w = factory_of(fb)->wrapped;
    if (w->ops->client_connection_failed != NULL)
        w->ops->client_connection_failed(w, reason);
}

static void policy_client_lost(tw_factory *fb, const tw_failure *reason)
{
    tw_factory *w = factory_of(fb)->wrapped;
    if (w->ops->client_connection_lost != NULL)
        w->ops->client_connection_lost(w, reason);
}

static void policy_factory_destroy(tw_factory *fb)
{
    tw__policy_factory *f = factory_of(fb);
    tw__throttle_factory_done(f);
    tw__peers_free(f);
    free(f);
}

static const tw_factory_ops policy_factory_ops = {
    .build_protocol = policy_build,
    .start_factory = policy_start_factory,
    .stop_factory = policy_stop_factory,
    .client_connection_failed = policy_client_failed,
    .client_connection_lost = policy_client_lost,
    .destroy = policy_factory_destroy,
};

TW_API void tw_policy_options_init(tw_policy_options *o)
{
    memset(o, 0, sizeof *o);
}

static int bad_limit(double v)
{
    return !isfinite(v) || v < 0;
}

TW_API int tw_policy_factory_new(tw_reactor *r, tw_factory *wrapped, const tw_policy_options *o,
                                 tw_factory **out)
{
    if (r == NULL || wrapped == NULL || o == NULL || bad_limit(o->read_limit) ||
        bad_limit(o->write_limit) || bad_limit(o->connection_read_limit) ||
        bad_limit(o->connection_write_limit))
        return -EINVAL;
    tw__policy_factory *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    tw_factory_init(&f->base, &policy_factory_ops);
    f->reactor = r;
    f->wrapped = wrapped;
    f->opts = *o;
    tw__throttle_factory_init(f);
    *out = &f->base;
    return 0;
}

TW_API tw_protocol *tw_policy_unwrap(tw_protocol *p)
{
    if (p != NULL && (p->ops == &policy_ops || p->ops == &policy_half_close_ops))
        return conn_of(p)->transport.protocol;
    return p;
}

TW_API unsigned long long tw_policy_factory_refused(const tw_factory *f)
{
    if (f == NULL || f->ops != &policy_factory_ops)
        return 0;
    return tw_container_of(f, tw__policy_factory, base)->peer_refused;
}
