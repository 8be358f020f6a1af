/* SPDX-License-Identifier: MIT */
/*
 * Listening sockets. The accept loop takes every waiting connection (up to a
 * batch limit, so one busy port cannot starve the others) and gives each to
 * a stream transport.
 *
 * Running out of descriptors (EMFILE/ENFILE) must neither spin nor leave
 * clients hanging in the backlog. The listener keeps one spare descriptor:
 * it releases it, accepts and closes the waiting connections so their
 * clients see a clean close, takes the spare back, and stops accepting for a
 * moment before it tries again.
 *
 * The listener is reference-counted: its owner holds one reference and every
 * connection it accepted holds one, so a connection can report its end to a
 * listener the owner already closed. Its connections are the members of its
 * stream group (net/stream_internal.h), which the idle sweep walks; the
 * listening socket is watched through the reactor's poller.
 *
 * With proxy_protocol the listener runs its factory behind the PROXY
 * protocol's wrapping factory (proxy.c), which it owns and frees with its
 * last reference, since the connections it accepted use it until then.
 *
 * A UNIX listener owns its socket file: a stale one (a socket nobody
 * accepts on) is removed before binding, a live one or any other kind of
 * file is refused, and the file is removed when the listener stops -- if it
 * is still the one this listener created, since a server started since may
 * own the path (unixfile.c, shared with UNIX datagram ports).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <twine/listener.h>
#include <twine/log.h>

#include "core/fd_internal.h"
#include "core/poller_internal.h"
#include "core/reactor_internal.h"
#include "net/listener_internal.h"
#include "net/proxy_internal.h"
#include "net/stream_internal.h"
#include "net/unixfile_internal.h"

#define ACCEPT_BATCH 128
#define EMFILE_RETRY_SECONDS 0.5
#define DEFAULT_BACKLOG 511

struct tw_listener {
    tw__closeable node;
    tw_reactor *r; /* NULL once stopped */
    tw__io io;     /* the listening socket */
    tw__stream_group group; /* the connections it accepted */
    tw_factory *factory; /* the owner's, or proxy below */
    tw_factory *proxy;   /* proxy_protocol: reads the header, then runs the owner's */
    int spare_fd; /* reserved for the EMFILE dance */
    unsigned refs;
    size_t conns; /* accepted and not yet done, or being started */
    tw_address addr;
    tw_call *retry; /* re-enables accepting after EMFILE */
    int emfile_logged;
    size_t max_connections;
    unsigned long long rejected, rejected_logged;
    tw_conn_stats stats;     /* open and the bytes of open connections are filled in on demand */
    tw_conn_closed_fn on_close;
    void *on_close_arg;
    double last_reject_log;
    tw_call *reject_report; /* reports the refusals a throttled log held back */
    tw_call *idle_sweep;
    void (*on_stop)(void *arg); /* tw__listener_on_stop() */
    void *on_stop_arg;
    tw__unix_file file; /* the UNIX socket file it created, removed when it stops */
};

TW_API void tw_listen_options_init(tw_listen_options *o)
{
    memset(o, 0, sizeof *o);
    o->backlog = DEFAULT_BACKLOG;
    o->proxy_header_timeout = TW_PROXY_HEADER_TIMEOUT;
}

static void unref(tw_listener *l)
{
    if (--l->refs == 0) {
        tw__proxy_factory_free(l->proxy); /* its last connection is gone */
        free(l);
    }
}

static void report_rejections(tw_listener *l);

static void stop(tw_listener *l)
{
    if (l->r == NULL)
        return;
    report_rejections(l); /* every refusal is counted, the last ones too */
    tw_call *calls[3] = {l->retry, l->idle_sweep, l->reject_report};
    for (int i = 0; i < 3; i++) {
        tw_call_cancel(calls[i]);
        tw_call_release(calls[i]);
    }
    l->retry = l->idle_sweep = l->reject_report = NULL;
    tw__io_stop(l->r, &l->io);
    close(l->io.fd);
    l->io.fd = -1;
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    l->spare_fd = -1;
    tw__reactor_unregister_listener(l->r, &l->node);
    l->r = NULL;
    tw__unix_file_remove(&l->file, tw__unix_path(&l->addr));
    if (l->on_stop != NULL) {
        void (*fn)(void *) = l->on_stop;
        l->on_stop = NULL;
        fn(l->on_stop_arg);
    }
    tw_factory_stop(l->factory);
}

void tw__listener_on_stop(tw_listener *l, void (*fn)(void *arg), void *arg)
{
    l->on_stop = fn;
    l->on_stop_arg = arg;
}

static int accept_batch(tw_listener *l, int lfd);

/*
 * The reactor's graceful stop: closing a listening socket resets the
 * connections still in its backlog, which the kernel had already accepted
 * for us -- a load balancer that sent one could not retry it elsewhere. So
 * they are taken first, and close in order (a FIN) with the others.
 * Freeing the reactor, or the owner's tw_listener_close(), just closes.
 */
static void closeable_stop(tw__closeable *c)
{
    tw_listener *l = tw_container_of(c, tw_listener, node);
    if (l->r != NULL && l->r->stopping && !l->r->freeing) {
        l->refs++; /* build_protocol may close the listener: not under us */
        while (l->r != NULL && accept_batch(l, l->io.fd))
            ;
        stop(l); /* unless build_protocol closed it already */
        unref(l);
        return;
    }
    stop(l);
}

static const tw__closeable_ops listener_closeable_ops = {closeable_stop, closeable_stop, NULL,
                                                         NULL};

static void resume_accepting(void *arg)
{
    tw_listener *l = arg;
    tw_call_release(l->retry);
    l->retry = NULL;
    if (l->spare_fd < 0)
        l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    tw__io_watch(l->r, &l->io, TW__POLL_IN);
}

/* Out of descriptors: shed the waiting connections and pause. */
static void out_of_descriptors(tw_listener *l, int err)
{
    if (!l->emfile_logged) {
        char where[TW_ADDRSTRLEN];
        tw_log(TW_LOG_ERROR, "tcp",
               "accept on %s failed: %s; closing waiting connections and retrying every %.1fs",
               tw_address_format(&l->addr, where, sizeof where), strerror(err),
               EMFILE_RETRY_SECONDS);
        l->emfile_logged = 1;
    }
    if (l->spare_fd >= 0) {
        close(l->spare_fd);
        l->spare_fd = -1;
        for (int i = 0; i < ACCEPT_BATCH; i++) {
            int fd = accept(l->io.fd, NULL, NULL);
            if (fd < 0)
                break;
            close(fd);
            l->stats.refused[TW_REFUSE_DESCRIPTORS]++;
        }
        l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    tw__io_watch(l->r, &l->io, 0);
    if (l->retry == NULL &&
        tw_reactor_call_later(l->r, EMFILE_RETRY_SECONDS, resume_accepting, l, &l->retry) < 0)
        tw__io_watch(l->r, &l->io, TW__POLL_IN); /* no timer: keep accepting rather than go deaf */
}

/* Log the refusals not reported yet. */
static void report_rejections(tw_listener *l)
{
    if (l->rejected == l->rejected_logged)
        return;
    char where[TW_ADDRSTRLEN];
    tw_log(TW_LOG_WARN, "tcp",
           "%s: %zu connections open (the limit); refused %llu connection(s) since the last "
           "report",
           tw_address_format(&l->addr, where, sizeof where), l->conns,
           l->rejected - l->rejected_logged);
    l->rejected_logged = l->rejected;
    l->last_reject_log = tw_reactor_seconds(l->r);
}

static void delayed_report(void *arg)
{
    tw_listener *l = arg;
    tw_call_release(l->reject_report);
    l->reject_report = NULL;
    report_rejections(l);
}

/* Over max_connections: close at once, and say so at most once a second;
 * refusals within that second are reported when it ends. */
static void reject(tw_listener *l, int fd)
{
    close(fd);
    l->rejected++;
    l->stats.refused[TW_REFUSE_MAX_CONNECTIONS]++;
    double now = tw_reactor_seconds(l->r);
    if (l->rejected_logged == 0 || now - l->last_reject_log >= 1.0)
        report_rejections(l);
    else if (l->reject_report == NULL &&
             tw_reactor_call_later(l->r, l->last_reject_log + 1.0 - now, delayed_report, l,
                                   &l->reject_report) < 0)
        report_rejections(l); /* no timer: report now rather than never */
}

static void on_accept(tw__io *io, int what)
{
    if (!(what & TW__POLL_IN))
        return; /* a listening socket reports no hangup; it is never kicked */
    tw_listener *l = tw_container_of(io, tw_listener, io);
    l->refs++; /* build_protocol may close the listener: not under us */
    accept_batch(l, io->fd);
    unref(l);
}

/* Accept up to a batch. @return 1 when a whole batch was taken (more may
 * wait), 0 once the backlog is empty or accepting failed. */
static int accept_batch(tw_listener *l, int lfd)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (l->r == NULL)
            return 0;
        tw_address peer;
        peer.len = sizeof peer.u.storage;
        int fd = tw__accept(lfd, &peer.u.sa, &peer.len, O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return 0;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                out_of_descriptors(l, err);
                return 0;
            }
            tw_log(TW_LOG_WARN, "tcp", "accept failed: %s", strerror(err));
            return 0;
        }
        l->emfile_logged = 0;
        if (l->max_connections > 0 && l->conns >= l->max_connections) {
            reject(l, fd);
            continue;
        }
        l->refs++;
        l->conns++;
        int rc = tw__stream_start(l->r, fd, l->factory, &peer, TW__STREAM_ACCEPTED, &l->group,
                                  NULL);
        if (rc < 0) {
            if (rc == -ECONNREFUSED)
                l->stats.refused[TW_REFUSE_FACTORY]++;
            l->conns--;
            unref(l);
        } else {
            l->stats.accepted++;
        }
    }
    return 1;
}

static double sweep_interval(double timeout)
{
    /* Late by at most a quarter of the timeout, and by at most a second. */
    double every = timeout / 4;
    return every < 0.01 ? 0.01 : every > 1.0 ? 1.0 : every;
}

static void idle_sweep(void *arg)
{
    tw_listener *l = arg;
    tw_call_release(l->idle_sweep);
    l->idle_sweep = NULL;
    tw__stream_close_idle(l->r, &l->group);
    tw_reactor_call_later(l->r, sweep_interval(l->group.idle_timeout), idle_sweep, l,
                          &l->idle_sweep);
}

/* One of the connections it accepted is done (tw__stream_group). */
static void connection_done(tw__stream_group *g, const tw__stream_end *end)
{
    tw_listener *l = tw_container_of(g, tw_listener, group);
    l->stats.closed[end->reason]++;
    if (l->on_close != NULL) {
        /* A member that had no memory for its record still reports its end. */
        const tw__stream_record *sr = end->record;
        tw_conn_record rec;
        memset(&rec, 0, sizeof rec);
        if (sr != NULL) {
            rec.peer = sr->peer;
            rec.host = sr->host;
            rec.duration = sr->duration;
            rec.bytes_in = sr->bytes_in;
            rec.bytes_out = sr->bytes_out;
        }
        rec.reason = end->reason;
        rec.code = end->code;
        l->on_close(&rec, l->on_close_arg);
    }
    l->conns--;
    unref(l);
}

static int start(tw_reactor *r, int fd, const tw_address *addr, const tw_listen_options *opts,
                 tw_factory *f, tw_listener **out)
{
    if (opts->idle_timeout < 0 || opts->idle_timeout != opts->idle_timeout)
        return -EINVAL;
    if (opts->proxy_protocol &&
        (!(opts->proxy_header_timeout >= 0) || opts->proxy_header_timeout > 1e9))
        return -EINVAL;
    tw_listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    if (opts->proxy_protocol &&
        (l->proxy = tw__proxy_factory_new(f, opts->proxy_header_timeout)) == NULL) {
        free(l);
        return -ENOMEM;
    }
    tw__io_init(&l->io, fd, on_accept);
    int rc = tw__io_watch(r, &l->io, TW__POLL_IN);
    if (rc < 0) {
        tw__proxy_factory_free(l->proxy);
        free(l);
        return rc;
    }
    l->node.ops = &listener_closeable_ops;
    l->r = r;
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->factory = l->proxy != NULL ? l->proxy : f;
    l->refs = 1;
    l->addr = *addr;
    l->max_connections = opts->max_connections;
    l->group.idle_timeout = opts->idle_timeout;
    l->group.member_done = connection_done;
    l->on_close = opts->on_close;
    l->on_close_arg = opts->on_close_arg;
    l->group.want_records = opts->on_close != NULL;
    if (l->group.idle_timeout > 0 &&
        tw_reactor_call_later(r, sweep_interval(l->group.idle_timeout), idle_sweep, l,
                              &l->idle_sweep) < 0) {
        tw__io_stop(r, &l->io);
        if (l->spare_fd >= 0)
            close(l->spare_fd);
        tw__proxy_factory_free(l->proxy);
        free(l);
        return -ENOMEM;
    }
    tw__reactor_register_listener(r, &l->node);
    tw_factory_start(l->factory);
    *out = l;
    return 0;
}

int tw__listen_socket(const tw_address *addr, int mode, const tw_listen_options *opts,
                      int *out, struct stat *st, const char **why)
{
    int family = tw_address_family(addr);
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return -EAFNOSUPPORT;
    const char *path = tw__unix_path(addr);
    int rc;
    if ((rc = tw__unix_clear_stale(addr, SOCK_STREAM, why)) < 0)
        return rc;

    int fd = tw__socket(family, SOCK_STREAM, 0, O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int one = 1, bound = 0;
    if (family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) {
        int v6only = opts->v6_only ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
#ifdef SO_REUSEPORT
    if (opts->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
#else
    if (opts->reuse_port) {
        errno = ENOTSUP;
        goto fail;
    }
#endif
    if (bind(fd, &addr->u.sa, addr->len) < 0)
        goto fail;
    bound = 1;
    /* The mode is set before listen(): nobody connects under a wider one. */
    if (path != NULL &&
        ((mode >= 0 && chmod(path, (mode_t)mode) < 0) || lstat(path, st) < 0))
        goto fail;
    if (listen(fd, opts->backlog > 0 ? opts->backlog : DEFAULT_BACKLOG) < 0)
        goto fail;
    *out = fd;
    return 0;

fail:
    rc = -errno;
    close(fd);
    if (bound && path != NULL)
        unlink(path);
    return rc;
}

int tw__listen(tw_reactor *r, const tw_address *addr, int mode, const tw_listen_options *opts,
               tw_factory *f, tw_listener **out, const char **why)
{
    tw_listen_options defaults;
    if (opts == NULL) {
        tw_listen_options_init(&defaults);
        opts = &defaults;
    }
    int family = tw_address_family(addr);
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return -EAFNOSUPPORT;
    if (r->stopping)
        return TW_ESHUTDOWN;
    int fd, rc;
    struct stat st;
    if ((rc = tw__listen_socket(addr, mode, opts, &fd, &st, why)) < 0)
        return rc;
    const char *path = tw__unix_path(addr);

    tw_address name;
    name.len = sizeof name.u.storage;
    if (getsockname(fd, &name.u.sa, &name.len) < 0 || family == AF_UNIX)
        name = *addr;
    rc = start(r, fd, &name, opts, f, out);
    if (rc < 0) {
        close(fd);
        if (path != NULL)
            unlink(path);
        return rc;
    }
    if (path != NULL) {
        (*out)->file.owned = 1;
        (*out)->file.dev = st.st_dev;
        (*out)->file.ino = st.st_ino;
    }
    return 0;
}

TW_API int tw_listen(tw_reactor *r, const tw_address *addr, const tw_listen_options *opts,
                     tw_factory *f, tw_listener **out)
{
    const char *why = NULL;
    return tw__listen(r, addr, -1, opts, f, out, &why);
}

TW_API int tw_listen_fd(tw_reactor *r, int fd, const tw_listen_options *opts, tw_factory *f,
                        tw_listener **out)
{
    tw_listen_options defaults;
    if (opts == NULL) {
        tw_listen_options_init(&defaults);
        opts = &defaults;
    }
    tw_address bound;
    bound.len = sizeof bound.u.storage;
    if (getsockname(fd, &bound.u.sa, &bound.len) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return start(r, fd, &bound, opts, f, out);
}

TW_API int tw_listener_address(const tw_listener *l, tw_address *out)
{
    *out = l->addr;
    return 0;
}

TW_API size_t tw_listener_connections(const tw_listener *l)
{
    return l->conns;
}

TW_API unsigned long long tw_listener_rejected(const tw_listener *l)
{
    return l->rejected;
}

TW_API int tw_listener_stats(const tw_listener *l, tw_conn_stats *out)
{
    *out = l->stats;
    out->bytes_in = l->group.bytes_in;
    out->bytes_out = l->group.bytes_out;
    out->tls_handshakes = l->group.tls_handshakes;
    memcpy(out->tls_failures, l->group.tls_failures, sizeof out->tls_failures);
    unsigned long long closed = 0;
    for (int i = 0; i < TW_CLOSE_REASONS; i++)
        closed += out->closed[i];
    out->open = out->accepted - closed;
    return 0;
}

TW_API const char *tw_refusal_name(tw_refusal r)
{
    static const char *const names[TW_REFUSE_REASONS] = {"max_connections", "descriptors",
                                                         "factory"};
    return (unsigned)r < TW_REFUSE_REASONS ? names[r] : "unknown";
}

TW_API const char *tw_tls_failure_name(tw_tls_failure f)
{
    static const char *const names[TW_TLS_FAILURES] = {"timeout", "protocol_error",
                                                       "verify_failed", "peer_closed", "local"};
    return (unsigned)f < TW_TLS_FAILURES ? names[f] : "unknown";
}

TW_API void tw_listener_close(tw_listener *l)
{
    if (l == NULL)
        return;
    stop(l);
    unref(l);
}
