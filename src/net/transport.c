/* SPDX-License-Identifier: MIT */
/*
 * The public transport calls. Each dispatches through the transport's ops
 * table, so protocols run unchanged over sockets and over the in-memory
 * transports that tests use.
 */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>
#include <twine/transport.h>

#include "net/unixmsg_internal.h"

TW_API int tw_transport_write(tw_transport *t, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return t->ops->writev(t, &iov, 1);
}

TW_API int tw_transport_writev(tw_transport *t, const struct iovec *iov, int iovcnt)
{
    return t->ops->writev(t, iov, iovcnt);
}

TW_API void tw_transport_lose_connection(tw_transport *t)
{
    t->ops->lose_connection(t);
}

TW_API void tw_transport_abort_connection(tw_transport *t)
{
    t->ops->abort_connection(t);
}

TW_API int tw_transport_lose_write_connection(tw_transport *t)
{
    if (t->ops->lose_write_connection == NULL)
        return TW_ESTATE;
    return t->ops->lose_write_connection(t);
}

TW_API void tw_transport_pause_producing(tw_transport *t)
{
    t->ops->pause_producing(t);
}

TW_API void tw_transport_resume_producing(tw_transport *t)
{
    t->ops->resume_producing(t);
}

TW_API int tw_transport_get_peer(tw_transport *t, tw_address *out)
{
    return t->ops->get_peer(t, out);
}

TW_API int tw_transport_get_host(tw_transport *t, tw_address *out)
{
    return t->ops->get_host(t, out);
}

TW_API size_t tw_transport_write_buffer_size(tw_transport *t)
{
    return t->ops->write_buffer_size(t);
}

TW_API void tw_transport_set_write_watermarks(tw_transport *t, size_t high, size_t low)
{
    t->ops->set_write_watermarks(t, high, low);
}

TW_API int tw_transport_fileno(tw_transport *t)
{
    return t->ops->fileno != NULL ? t->ops->fileno(t) : -1;
}

TW_API int tw_transport_register_producer(tw_transport *t, tw_producer *p, int streaming)
{
    if (t->ops->register_producer == NULL)
        return TW_ESTATE;
    return t->ops->register_producer(t, p, streaming);
}

TW_API void tw_transport_unregister_producer(tw_transport *t)
{
    if (t->ops->unregister_producer != NULL)
        t->ops->unregister_producer(t);
}

TW_API int tw_transport_disconnecting(tw_transport *t)
{
    return t->ops->disconnecting != NULL && t->ops->disconnecting(t);
}

TW_API void tw_transport_set_close_reason(tw_transport *t, tw_close_reason reason)
{
    if (t->ops->set_close_reason != NULL && (unsigned)reason < TW_CLOSE_REASONS)
        t->ops->set_close_reason(t, reason);
}

TW_API const char *tw_close_reason_name(tw_close_reason reason)
{
    static const char *const names[TW_CLOSE_REASONS] = {
        "peer",     "local",   "idle_timeout", "timeout", "too_long", "protocol_error",
        "refused",  "overload", "shutdown",    "abort",   "error"};
    return (unsigned)reason < TW_CLOSE_REASONS ? names[reason] : "unknown";
}

TW_API int tw_transport_send_fds(tw_transport *t, const void *data, size_t len, const int *fds,
                                 int nfds)
{
    if (len == 0 || nfds < 1 || nfds > TW_TRANSPORT_FDS_MAX || fds == NULL)
        return -EINVAL;
    if (t->ops->send_fds == NULL)
        return -EOPNOTSUPP;
    return t->ops->send_fds(t, data, len, fds, nfds);
}

TW_API int tw_transport_get_peer_credentials(tw_transport *t, tw_peer_credentials *out)
{
    int fd = tw_transport_fileno(t);
    tw_address host;
    if (fd < 0 || tw_transport_get_host(t, &host) < 0 || tw_address_family(&host) != AF_UNIX)
        return -EOPNOTSUPP;
    return tw__unix_peer_credentials(fd, out);
}
