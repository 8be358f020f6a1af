/* SPDX-License-Identifier: MIT */
/*
 * UDP ports. A datagram is read whole into the reactor's 64 KiB buffer (a
 * UDP payload cannot be larger) and handed to the protocol with its source
 * address; a bounded batch per wake-up keeps one flooded port from starving
 * the rest of the loop. Errors the kernel reports for earlier datagrams
 * (ICMP port unreachable on a connected socket) surface on a later recv or
 * send as ECONNREFUSED and become connection_refused. The socket is watched
 * through the reactor's poller.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine/protocol.h>
#include <twine/udp.h>

#include "core/fd_internal.h"
#include "core/poller_internal.h"
#include "core/reactor_internal.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define READ_BATCH 64

struct tw_udp_port {
    tw__closeable node;
    tw_reactor *r; /* NULL once stopped */
    tw__io io;     /* the socket */
    tw_datagram_protocol *proto;
    tw_address addr;
    /* Inside on_readable: a close from a callback leaves the memory to
     * on_readable, which frees it once the callback returned. */
    unsigned char dispatching, closed;
};

static void refused(tw_udp_port *u)
{
    if (u->proto->ops->connection_refused != NULL)
        u->proto->ops->connection_refused(u->proto);
}

static void on_readable(tw__io *io, int what)
{
    if (!(what & TW__POLL_IN))
        return; /* never kicked nor released */
    tw_udp_port *u = tw_container_of(io, tw_udp_port, io);
    int fd = io->fd;
    u->dispatching = 1;
    for (int i = 0; i < READ_BATCH && u->r != NULL; i++) {
        tw_address from;
        from.len = sizeof from.u.storage;
        ssize_t n = recvfrom(fd, u->r->read_buf, TW__READ_SIZE, 0, &from.u.sa, &from.len);
        if (n < 0) {
            if (errno == ECONNREFUSED) {
                refused(u);
                continue;
            }
            break; /* EAGAIN, or a transient error that the next wake-up retries */
        }
        u->proto->ops->datagram_received(u->proto, u->r->read_buf, (size_t)n, &from);
    }
    u->dispatching = 0;
    if (u->closed)
        free(u);
}

static void stop(tw_udp_port *u)
{
    if (u->r == NULL)
        return;
    tw__io_stop(u->r, &u->io);
    close(u->io.fd);
    u->io.fd = -1;
    tw__reactor_unregister_listener(u->r, &u->node);
    u->r = NULL;
    tw_datagram_protocol *p = u->proto;
    if (p->ops->stop_protocol != NULL)
        p->ops->stop_protocol(p);
}

static void closeable_stop(tw__closeable *c)
{
    stop(tw_container_of(c, tw_udp_port, node));
}

static const tw__closeable_ops udp_closeable_ops = {closeable_stop, closeable_stop, NULL, NULL};

TW_API int tw_udp_listen(tw_reactor *r, const tw_address *addr, tw_datagram_protocol *p,
                         tw_udp_port **out)
{
    int family = tw_address_family(addr);
    if (family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    if (r->stopping)
        return TW_ESHUTDOWN;
    tw_udp_port *u = calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    int fd = tw__socket(family, SOCK_DGRAM, 0, O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        free(u);
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, &addr->u.sa, addr->len) < 0) {
        int err = -errno;
        close(fd);
        free(u);
        return err;
    }
    u->addr.len = sizeof u->addr.u.storage;
    getsockname(fd, &u->addr.u.sa, &u->addr.len);
    tw__io_init(&u->io, fd, on_readable);
    int rc = tw__io_watch(r, &u->io, TW__POLL_IN);
    if (rc < 0) {
        close(fd);
        free(u);
        return rc;
    }
    u->node.ops = &udp_closeable_ops;
    u->r = r;
    u->proto = p;
    p->port = u;
    tw__reactor_register_listener(r, &u->node);
    *out = u;
    if (p->ops->start_protocol != NULL)
        p->ops->start_protocol(p);
    return 0;
}

TW_API int tw_udp_write(tw_udp_port *u, const void *data, size_t len, const tw_address *to)
{
    if (u->r == NULL)
        return TW_ESTATE;
    ssize_t w;
    do {
        if (to != NULL)
            w = sendto(u->io.fd, data, len, MSG_NOSIGNAL, &to->u.sa, to->len);
        else
            w = send(u->io.fd, data, len, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w >= 0)
        return 0;
    int err = errno;
    if (err == ECONNREFUSED)
        refused(u);
    if (err == EWOULDBLOCK)
        err = EAGAIN;
    return -err;
}

TW_API int tw_udp_connect(tw_udp_port *u, const tw_address *peer)
{
    if (u->r == NULL)
        return TW_ESTATE;
    if (connect(u->io.fd, &peer->u.sa, peer->len) < 0)
        return -errno;
    return 0;
}

TW_API int tw_udp_port_address(const tw_udp_port *u, tw_address *out)
{
    *out = u->addr;
    return 0;
}

TW_API void tw_udp_port_close(tw_udp_port *u)
{
    if (u == NULL)
        return;
    if (u->closed)
        return;
    stop(u);
    tw_datagram_protocol *p = u->proto;
    u->closed = 1;
    if (!u->dispatching)
        free(u);
    if (p->ops->destroy != NULL)
        p->ops->destroy(p);
}
