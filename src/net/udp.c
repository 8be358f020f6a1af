/* SPDX-License-Identifier: MIT */
/*
 * Datagram ports: UDP over IPv4 and IPv6, and UNIX datagram sockets (a
 * path or, on Linux, an abstract name), all serving the same datagram
 * protocol. A datagram is read whole into the reactor's 64 KiB buffer (a
 * UDP payload cannot be larger) and handed to the protocol with its source
 * address; a UNIX datagram that does not fit is dropped, never delivered
 * cut short (recvmsg reports MSG_TRUNC). A bounded batch per wake-up keeps
 * one flooded port from starving the rest of the loop. Errors the kernel
 * reports for earlier datagrams (ICMP port unreachable on a connected UDP
 * socket, a vanished peer on a connected UNIX one) surface on a later recv
 * or send as ECONNREFUSED and become connection_refused. The socket is
 * watched through the reactor's poller.
 *
 * A port bound to a UNIX path owns its socket file as a UNIX listener does
 * (unixfile.c): a stale file is removed before binding and the file goes
 * when the port stops.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <twine/log.h>
#include <twine/protocol.h>
#include <twine/udp.h>

#include "core/fd_internal.h"
#include "core/poller_internal.h"
#include "core/reactor_internal.h"
#include "net/udp_internal.h"
#include "net/unixfile_internal.h"

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
    tw__unix_file file; /* a UNIX path's socket file, removed when it stops */
    /* Inside on_readable: a close from a callback leaves the memory to
     * on_readable, which frees it once the callback returned. */
    unsigned char dispatching, closed;
    unsigned char truncation_logged;
};

static void refused(tw_udp_port *u)
{
    if (u->proto->ops->connection_refused != NULL)
        u->proto->ops->connection_refused(u->proto);
}

/* A datagram larger than the read buffer (UNIX datagrams may be): said
 * once per port, since a peer could send them at any rate. */
static void truncated(tw_udp_port *u, const tw_address *from)
{
    if (u->truncation_logged)
        return;
    u->truncation_logged = 1;
    char who[TW_ADDRSTRLEN], where[TW_ADDRSTRLEN];
    tw_log(TW_LOG_WARN, "udp",
           "dropped a datagram from %s to %s larger than %d bytes (said once per port)",
           tw_address_format(from, who, sizeof who), tw_address_format(&u->addr, where, sizeof where),
           TW__READ_SIZE);
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
        memset(&from, 0, sizeof from);
        struct iovec iov = {u->r->read_buf, TW__READ_SIZE};
        struct msghdr msg = {.msg_name = &from.u.storage,
                             .msg_namelen = sizeof from.u.storage,
                             .msg_iov = &iov,
                             .msg_iovlen = 1};
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0) {
            if (errno == ECONNREFUSED) {
                refused(u);
                continue;
            }
            break; /* EAGAIN, or a transient error that the next wake-up retries */
        }
        from.len = msg.msg_namelen;
        if (msg.msg_flags & MSG_TRUNC) {
            truncated(u, &from);
            continue;
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
    tw__unix_file_remove(&u->file, tw__unix_path(&u->addr));
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

/* A UNIX address with no name at all: bind it to have the system pick one. */
static int unnamed_unix(const tw_address *a)
{
    return tw_address_family(a) == AF_UNIX && a->len <= offsetof(struct sockaddr_un, sun_path);
}

/* A bound socket for @p addr, not yet watched nor given a protocol. */
static int open_port(tw_reactor *r, const tw_address *addr, int mode, tw_udp_port **out,
                     const char **why)
{
    int family = tw_address_family(addr);
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return -EAFNOSUPPORT;
    if (r->stopping)
        return TW_ESHUTDOWN;
    int rc = tw__unix_clear_stale(addr, SOCK_DGRAM, why);
    if (rc < 0)
        return rc;
    tw_udp_port *u = calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    int fd = tw__socket(family, SOCK_DGRAM, 0, O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        free(u);
        return -errno;
    }
    int one = 1;
    if (family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const char *path = tw__unix_path(addr);
    int bound = 0;
    if (unnamed_unix(addr)) {
#ifdef __linux__
        /* Linux gives an unnamed UNIX socket an abstract name of its own
         * (an autobind), so that the peer it writes to can answer.
         * Elsewhere it stays unbound and can only send. */
        if (bind(fd, &addr->u.sa, (socklen_t)sizeof(sa_family_t)) < 0)
            goto fail;
#endif
    } else if (bind(fd, &addr->u.sa, addr->len) < 0) {
        goto fail;
    } else {
        bound = 1;
    }
    if (path != NULL && (rc = tw__unix_file_claim(&u->file, path, mode)) < 0) {
        errno = -rc;
        goto fail;
    }
    u->addr.len = sizeof u->addr.u.storage;
    if (getsockname(fd, &u->addr.u.sa, &u->addr.len) < 0 || u->addr.len == 0)
        u->addr = *addr;
    u->node.ops = &udp_closeable_ops;
    tw__io_init(&u->io, fd, on_readable);
    *out = u;
    return 0;

fail:
    rc = -errno;
    close(fd);
    if (bound && path != NULL)
        unlink(path);
    free(u);
    return rc;
}

/* Undo open_port() for a port that never started. */
static void discard_port(tw_udp_port *u)
{
    close(u->io.fd);
    tw__unix_file_remove(&u->file, tw__unix_path(&u->addr));
    free(u);
}

/* Watch the port and hand it to @p p; start_protocol runs last. */
static int start_port(tw_reactor *r, tw_udp_port *u, tw_datagram_protocol *p, tw_udp_port **out)
{
    int rc = tw__io_watch(r, &u->io, TW__POLL_IN);
    if (rc < 0) {
        discard_port(u);
        return rc;
    }
    u->r = r;
    u->proto = p;
    p->port = u;
    tw__reactor_register_listener(r, &u->node);
    *out = u;
    if (p->ops->start_protocol != NULL)
        p->ops->start_protocol(p);
    return 0;
}

int tw__udp_listen(tw_reactor *r, const tw_address *addr, int mode, tw_datagram_protocol *p,
                   tw_udp_port **out, const char **why)
{
    tw_udp_port *u;
    int rc = open_port(r, addr, mode, &u, why);
    if (rc < 0)
        return rc;
    return start_port(r, u, p, out);
}

TW_API int tw_udp_listen(tw_reactor *r, const tw_address *addr, tw_datagram_protocol *p,
                         tw_udp_port **out)
{
    const char *why = NULL;
    return tw__udp_listen(r, addr, -1, p, out, &why);
}

TW_API int tw_datagram_connect(tw_reactor *r, const tw_address *peer, const tw_address *bind_addr,
                               tw_datagram_protocol *p, tw_udp_port **out)
{
    int family = tw_address_family(peer);
    tw_address any;
    memset(&any, 0, sizeof any);
    if (bind_addr == NULL) {
        if (family == AF_INET || family == AF_INET6) {
            tw_address_from_ip(&any, family == AF_INET ? "0.0.0.0" : "::", 0);
        } else if (family == AF_UNIX) {
            any.u.sa.sa_family = AF_UNIX;
            any.len = (socklen_t)offsetof(struct sockaddr_un, sun_path);
        } else {
            return -EAFNOSUPPORT;
        }
        bind_addr = &any;
    }
    if (tw_address_family(bind_addr) != family)
        return -EAFNOSUPPORT;
    tw_udp_port *u;
    const char *why = NULL;
    int rc = open_port(r, bind_addr, -1, &u, &why);
    if (rc < 0)
        return rc;
    if (connect(u->io.fd, &peer->u.sa, peer->len) < 0) {
        rc = -errno;
        discard_port(u);
        return rc;
    }
    return start_port(r, u, p, out);
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

TW_API int tw_udp_port_fileno(const tw_udp_port *u)
{
    return u->r != NULL ? u->io.fd : -1;
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
