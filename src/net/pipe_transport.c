/* SPDX-License-Identifier: MIT */
/*
 * The pipe transport: a protocol over descriptors that are not sockets
 * (pipes, FIFOs, terminals, character devices, files), one read half and
 * one write half (pipe_internal.h), either of which may be absent. It is
 * what tw_transport_adopt() makes of a descriptor that is not a socket,
 * what tw_transport_adopt_pipe() makes of two, and the standard IO
 * transport of src/proc.
 *
 * Its rules are the stream transport's: writes never block and are queued
 * past what the descriptor takes, with the same watermarks and producers
 * (flow_internal.h); lose_connection stops reading, flushes and closes;
 * abort closes at once; the input's EOF ends the connection unless the
 * protocol is half-close aware (read_connection_lost), as Twisted's
 * StandardIO does; lose_write_connection closes the write half once
 * flushed, which is how the reader learns of the end. connection_lost
 * always comes from the loop, so a protocol may close its transport inside
 * its own callbacks. There is no batching: a pipe write is sent at once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <twine/log.h>

#include "core/reactor_internal.h"
#include "net/flow_internal.h"
#include "net/pipe_internal.h"

enum {
    P_OPEN,     /* the protocol reads and writes */
    P_DRAINING, /* lose_connection: the write half flushes, then the end */
    P_DONE      /* the end is scheduled or over: nothing is taken any more */
};

typedef struct pipe_transport {
    tw_transport base;
    tw__closeable node;
    tw__pipe_in in;
    tw__pipe_out out;
    tw__flow flow;
    tw_call *finish; /* the end, from the loop */
    int state;       /* P_* */
    int code;        /* what connection_lost will say */
    int write_shut_req;
    int asked; /* the protocol was asked to end its part (close_requested) */
} pipe_transport;

static const tw_transport_ops pipe_ops;
static const tw__closeable_ops pipe_closeable_ops;

/* The end: both halves closed, the protocol told and released. */
static void finish_now(pipe_transport *t)
{
    tw_reactor *r = t->base.reactor;
    tw_protocol *p = t->base.protocol;
    tw_factory *f = p->factory;
    if (t->finish != NULL) {
        tw_call_cancel(t->finish);
        tw_call_release(t->finish);
        t->finish = NULL;
    }
    t->state = P_DONE;
    tw__pipe_in_close(&t->in);
    tw__pipe_out_close(&t->out);
    tw__flow_stop(&t->flow);
    tw__reactor_unregister_conn(r, &t->node);
    tw_failure *reason = tw_failure_new(t->code, NULL);
    p->ops->connection_lost(p, reason);
    tw_failure_unref(reason);
    if (p->ops->destroy != NULL)
        p->ops->destroy(p);
    free(t);
    tw_factory_stop(f);
}

static void finish_call(void *arg)
{
    pipe_transport *t = arg;
    tw_call_release(t->finish);
    t->finish = NULL;
    finish_now(t);
}

/* End with @p code from the loop; the first reason wins. */
static void schedule_finish(pipe_transport *t, int code)
{
    if (t->finish != NULL)
        return;
    t->code = code;
    t->state = P_DONE;
    tw__pipe_in_close(&t->in);
    if (tw_reactor_call_later(t->base.reactor, 0, finish_call, t, &t->finish) < 0) {
        t->finish = NULL;
        tw_log(TW_LOG_ERROR, "pipe", "out of memory ending a pipe transport; it ends at reactor free");
    }
}

static void pipe_lose(tw_transport *base)
{
    pipe_transport *t = (pipe_transport *)base;
    if (t->state != P_OPEN)
        return;
    t->state = P_DRAINING;
    tw__pipe_in_close(&t->in);
    if (tw__pipe_out_is_open(&t->out) && !t->write_shut_req)
        tw__pipe_out_close_flushed(&t->out);
    else if (!tw__pipe_out_is_open(&t->out))
        schedule_finish(t, TW_EDONE);
    /* else: a write shutdown is flushing already; its end ends us */
}

static void pipe_abort(tw_transport *base)
{
    pipe_transport *t = (pipe_transport *)base;
    tw__pipe_out_close(&t->out); /* the queue is dropped */
    schedule_finish(t, TW_EABORTED); /* unless an end is on its way already */
}

static int pipe_writev(tw_transport *base, const struct iovec *iov, int iovcnt)
{
    pipe_transport *t = (pipe_transport *)base;
    if (t->state == P_DONE || t->write_shut_req || !tw__pipe_out_is_open(&t->out))
        return TW_ESTATE;
    if (iovcnt < 0)
        return -EINVAL;
    int rc = tw__pipe_out_writev(&t->out, iov, iovcnt);
    if (rc == 0)
        tw__flow_grew(&t->flow, tw__pipe_out_queued(&t->out));
    return rc;
}

static int pipe_lose_write(tw_transport *base)
{
    pipe_transport *t = (pipe_transport *)base;
    if (t->state != P_OPEN || t->write_shut_req || !tw__pipe_out_is_open(&t->out))
        return TW_ESTATE;
    t->write_shut_req = 1;
    tw__pipe_out_close_flushed(&t->out);
    return 0;
}

static void pipe_pause(tw_transport *base)
{
    tw__pipe_in_pause(&((pipe_transport *)base)->in);
}

static void pipe_resume(tw_transport *base)
{
    tw__pipe_in_resume(&((pipe_transport *)base)->in);
}

static int pipe_no_address(tw_transport *base, tw_address *out)
{
    (void)base;
    out->len = 0;
    return -ENOTSOCK;
}

static size_t pipe_buffer_size(tw_transport *base)
{
    return tw__pipe_out_queued(&((pipe_transport *)base)->out);
}

static void pipe_set_watermarks(tw_transport *base, size_t high, size_t low)
{
    tw__flow_set_watermarks(&((pipe_transport *)base)->flow, high, low);
}

static int pipe_fileno(tw_transport *base)
{
    pipe_transport *t = (pipe_transport *)base;
    if (tw__pipe_in_is_open(&t->in))
        return t->in.fd;
    return tw__pipe_out_is_open(&t->out) ? t->out.fd : -1;
}

static int pipe_register_producer(tw_transport *base, tw_producer *p, int streaming)
{
    pipe_transport *t = (pipe_transport *)base;
    if (t->flow.producer != NULL)
        return TW_ESTATE;
    if (t->state != P_OPEN) {
        if (p->ops->stop_producing != NULL)
            p->ops->stop_producing(p);
        return TW_ESTATE;
    }
    size_t queued = tw__pipe_out_queued(&t->out);
    int rc = tw__flow_register(&t->flow, p, streaming, queued);
    if (rc == 0 && !streaming && queued == 0)
        tw__pipe_out_poke(&t->out);
    return rc;
}

static void pipe_unregister_producer(tw_transport *base)
{
    tw__flow_unregister(&((pipe_transport *)base)->flow);
}

static int pipe_disconnecting(tw_transport *base)
{
    return ((pipe_transport *)base)->state != P_OPEN;
}

static const tw_transport_ops pipe_ops = {
    .writev = pipe_writev,
    .lose_connection = pipe_lose,
    .abort_connection = pipe_abort,
    .lose_write_connection = pipe_lose_write,
    .pause_producing = pipe_pause,
    .resume_producing = pipe_resume,
    .get_peer = pipe_no_address,
    .get_host = pipe_no_address,
    .write_buffer_size = pipe_buffer_size,
    .set_write_watermarks = pipe_set_watermarks,
    .fileno = pipe_fileno,
    .register_producer = pipe_register_producer,
    .unregister_producer = pipe_unregister_producer,
    .disconnecting = pipe_disconnecting,
};

static void on_data(tw__pipe_in *in, const void *buf, size_t len)
{
    pipe_transport *t = tw_container_of(in, pipe_transport, in);
    if (t->state == P_OPEN)
        t->base.protocol->ops->data_received(t->base.protocol, buf, len);
}

static void on_in_lost(tw__pipe_in *in, int code)
{
    pipe_transport *t = tw_container_of(in, pipe_transport, in);
    tw_protocol *p = t->base.protocol;
    if (code != TW_EDONE) {
        tw__pipe_out_close(&t->out);
        schedule_finish(t, code);
        return;
    }
    if (t->state != P_OPEN)
        return;
    if (!tw__pipe_out_is_open(&t->out)) {
        schedule_finish(t, TW_EDONE); /* read-only, or its write side is done */
        return;
    }
    if (p->ops->read_connection_lost != NULL && !t->write_shut_req) {
        p->ops->read_connection_lost(p);
        return;
    }
    pipe_lose(&t->base);
}

static void on_out_lost(tw__pipe_out *out, int code)
{
    pipe_transport *t = tw_container_of(out, pipe_transport, out);
    tw_protocol *p = t->base.protocol;
    if (code != TW_EDONE || t->state != P_OPEN) {
        schedule_finish(t, code);
        return;
    }
    /* A write shutdown completed. */
    if (p->ops->write_connection_lost != NULL)
        p->ops->write_connection_lost(p);
    if (t->state == P_OPEN && !tw__pipe_in_is_open(&t->in))
        schedule_finish(t, TW_EDONE);
}

static void on_drained(tw__pipe_out *out)
{
    pipe_transport *t = tw_container_of(out, pipe_transport, out);
    if (tw__flow_drained(&t->flow, tw__pipe_out_queued(out)))
        tw__pipe_out_poke(out);
}

static void pause_protocol(tw__flow *fl)
{
    tw_protocol *p = tw_container_of(fl, pipe_transport, flow)->base.protocol;
    if (p->ops->pause_producing != NULL)
        p->ops->pause_producing(p);
}

static void resume_protocol(tw__flow *fl)
{
    tw_protocol *p = tw_container_of(fl, pipe_transport, flow)->base.protocol;
    if (p->ops->resume_producing != NULL)
        p->ops->resume_producing(p);
}

/* A graceful stop: as the stream does, a protocol with close_requested (a
 * TLS layer after startTLS) ends its part first, close_notify and all,
 * and then loses this transport itself; asked once, so a layer that has
 * not closed by the next time is closed under it. */
static void closeable_lose(tw__closeable *c)
{
    pipe_transport *t = tw_container_of(c, pipe_transport, node);
    tw_protocol *p = t->base.protocol;
    if (t->state == P_OPEN && !t->asked && p->ops->close_requested != NULL) {
        t->asked = 1;
        p->ops->close_requested(p);
        return;
    }
    pipe_lose(&t->base);
}

static void closeable_abort(tw__closeable *c)
{
    pipe_transport *t = tw_container_of(c, pipe_transport, node);
    if (t->finish == NULL)
        t->code = TW_EABORTED;
    finish_now(t);
}

static const tw__closeable_ops pipe_closeable_ops = {closeable_lose, closeable_abort, NULL, NULL};

int tw__pipe_transport_start(tw_reactor *r, int rfd, int wfd, tw_factory *f, int restore_flags,
                             tw_transport **out)
{
    if (rfd < 0 && wfd < 0)
        return -EINVAL;
    pipe_transport *t = calloc(1, sizeof *t);
    if (t == NULL) {
        if (rfd >= 0)
            close(rfd);
        if (wfd >= 0)
            close(wfd);
        return -ENOMEM;
    }
    t->in.data = on_data;
    t->in.lost = on_in_lost;
    t->in.restore = restore_flags;
    t->out.drained = on_drained;
    t->out.lost = on_out_lost;
    t->out.restore = restore_flags;
    int rc = 0;
    if (rfd >= 0)
        rc = tw__pipe_in_open(r, &t->in, rfd);
    else
        t->in.fd = -1;
    if (wfd >= 0) {
        if (rc == 0)
            rc = tw__pipe_out_open(r, &t->out, wfd);
        else
            close(wfd);
    } else {
        t->out.fd = -1;
    }
    if (rc < 0) {
        tw__pipe_in_close(&t->in);
        tw__pipe_out_close(&t->out);
        free(t);
        return rc;
    }
    tw_factory_start(f);
    tw_protocol *p = f->ops->build_protocol(f, NULL);
    if (p == NULL) {
        tw__pipe_in_close(&t->in);
        tw__pipe_out_close(&t->out);
        free(t);
        tw_factory_stop(f);
        return -ECONNREFUSED;
    }
    t->base.ops = &pipe_ops;
    t->base.protocol = p;
    t->base.reactor = r;
    t->node.ops = &pipe_closeable_ops;
    tw__flow_init(&t->flow, pause_protocol, resume_protocol);
    tw__reactor_register_conn(r, &t->node);
    p->transport = &t->base;
    p->factory = f;
    if (out != NULL)
        *out = &t->base;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p);
    return 0;
}

int tw__pipe_adopt(tw_reactor *r, int fd, tw_factory *f)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    switch (fl & O_ACCMODE) {
    case O_RDONLY:
        return tw__pipe_transport_start(r, fd, -1, f, 0, NULL);
    case O_WRONLY:
        return tw__pipe_transport_start(r, -1, fd, f, 0, NULL);
    default: {
        /* Each half watches a descriptor of its own: a poller watches a
         * descriptor once. */
        int wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (wfd < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        return tw__pipe_transport_start(r, fd, wfd, f, 0, NULL);
    }
    }
}

TW_API int tw_transport_adopt_pipe(tw_reactor *r, int read_fd, int write_fd, tw_factory *f)
{
    if ((read_fd < 0 && write_fd < 0) || (read_fd >= 0 && read_fd == write_fd)) {
        if (read_fd >= 0)
            close(read_fd);
        return -EINVAL;
    }
    return tw__pipe_transport_start(r, read_fd, write_fd, f, 0, NULL);
}
