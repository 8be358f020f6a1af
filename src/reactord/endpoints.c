/* SPDX-License-Identifier: MIT */
/*
 * Where reactord listens: endpoint descriptions in Twisted's strports
 * syntax (twine/endpoint.h), parsed once in the first process so that a
 * mistake is reported, naming the segment, before anything forks; listening
 * happens later in the serving process. Streams (tcp, tcp6, unix, systemd)
 * go to the protocol's factory; a udp: endpoint is served by the module's
 * datagram protocol, for modules that have one.
 *
 * Socket activation belongs to the process systemd started (LISTEN_PID).
 * reactord checks that when parsing, and hands the claim on to the process
 * that finally listens (a daemon or a worker has another pid), as a
 * supervisor that forwards activated sockets must.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <twine/endpoint.h>
#include <twine/log.h>
#include <twine/tls.h>
#include <twine/udp.h>

#include "core/fd_internal.h"
#include "reactord.h"

struct rd_endpoint {
    tw_endpoint ep;
    char *desc;          /* as the operator wrote it */
    tw_tls_context *tls; /* ssl: the certificate, read while parsing */
};

static int activation_checked_later; /* --check away from systemd */

void rd_endpoint_defer_activation_check(void)
{
    activation_checked_later = 1;
}

static int check_activation(const rd_endpoint *e)
{
    int nfds = tw_endpoint_activated_fds();
    if (nfds < 0)
        return rd_error(EX_USAGE,
                        "bad endpoint '%s': reactord was not started by systemd socket "
                        "activation (LISTEN_PID and LISTEN_FDS do not name this process)",
                        e->desc);
    if (e->ep.index >= nfds)
        return rd_error(EX_USAGE,
                        "bad endpoint '%s': systemd passed %d descriptors, so index %d does "
                        "not exist",
                        e->desc, nfds, e->ep.index);
    return 0;
}

/* The socket file is removed by name when the listener closes, after a
 * --chdir: name it from the root when that fits in sun_path. */
static void absolute_unix_path(rd_endpoint *e)
{
    char *abs = rd_absolute_path(e->ep.path);
    if (abs != NULL && strlen(abs) < sizeof e->ep.path)
        memcpy(e->ep.path, abs, strlen(abs) + 1);
    free(abs);
}

/* Name a TLS file from the root, so a --chdir or a reload finds it. */
static void absolute_file(char *path, size_t size)
{
    if (path[0] == '\0' || path[0] == '/')
        return;
    char *abs = rd_absolute_path(path);
    if (abs != NULL && strlen(abs) < size)
        memcpy(path, abs, strlen(abs) + 1);
    free(abs);
}

/* ssl: read the certificate and key now, in the first process and before
 * any privilege drop, so that a bad one stops the start with one sentence
 * and the workers inherit what was read. */
static int load_tls(rd_endpoint *e)
{
    absolute_file(e->ep.private_key, sizeof e->ep.private_key);
    absolute_file(e->ep.certificate, sizeof e->ep.certificate);
    absolute_file(e->ep.cert_chain, sizeof e->ep.cert_chain);
    char err[TW_TLS_ERRLEN];
    int rc = tw_tls_context_from_endpoint(&e->ep, &e->tls, err, sizeof err);
    if (rc == -ENOMEM)
        return rd_error(EX_OSERR, "endpoint '%s': %s", e->desc, err);
    if (rc < 0)
        return rd_error(EX_CONFIG, "endpoint '%s': %s", e->desc, err);
    return 0;
}

int rd_endpoint_reload_tls(rd_endpoint *e)
{
    if (e->tls == NULL)
        return 0;
    char err[TW_TLS_ERRLEN];
    int rc = tw_tls_context_use_certificate(e->tls, e->ep.certificate, e->ep.private_key,
                                            e->ep.cert_chain[0] != '\0' ? e->ep.cert_chain : NULL,
                                            err, sizeof err);
    if (rc < 0)
        tw_log(TW_LOG_WARN, rd_logging_system(),
               "%s: keeping the certificate in use: %s", e->desc, err);
    else
        tw_log(TW_LOG_INFO, rd_logging_system(), "%s: certificate %s reloaded", e->desc,
               e->ep.certificate);
    return rc;
}

int rd_endpoint_parse(const char *desc, rd_endpoint **out)
{
    rd_endpoint *e = calloc(1, sizeof *e);
    if (e == NULL || (e->desc = strdup(desc)) == NULL) {
        free(e);
        return rd_error(EX_OSERR, "out of memory parsing the endpoint '%s'", desc);
    }
    char err[1024];
    int rc = 0;
    if (tw_endpoint_parse_server(desc, &e->ep, err, sizeof err) < 0)
        rc = rd_error(EX_USAGE, "%s", err);
    else if (e->ep.type == TW_ENDPOINT_SYSTEMD &&
             !(activation_checked_later && tw_endpoint_activated_fds() < 0))
        rc = check_activation(e);
    else if ((e->ep.type == TW_ENDPOINT_UNIX || e->ep.type == TW_ENDPOINT_UNIXGRAM) &&
             e->ep.path[0] != '/' && e->ep.path[0] != '@')
        absolute_unix_path(e); /* an abstract name (@name) is no file */
    else if (e->ep.tls)
        rc = load_tls(e);
    if (rc != 0) {
        rd_endpoint_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void rd_endpoint_free(rd_endpoint *e)
{
    if (e == NULL)
        return;
    tw_tls_context_unref(e->tls);
    free(e->desc);
    free(e);
}

const char *rd_endpoint_describe(const rd_endpoint *e)
{
    return e->desc;
}

int rd_endpoint_is_activated(const rd_endpoint *e)
{
    return e->ep.type == TW_ENDPOINT_SYSTEMD;
}

int rd_endpoint_is_tls(const rd_endpoint *e)
{
    return e->tls != NULL;
}

int rd_endpoint_is_datagram(const rd_endpoint *e)
{
    return e->ep.type == TW_ENDPOINT_UDP || e->ep.type == TW_ENDPOINT_UNIXGRAM;
}

int rd_endpoint_shareable(const rd_endpoint *e)
{
    /* UNIX paths cannot be shared, and UDP ports are bound without
     * SO_REUSEPORT; an activated socket is inherited by every worker. */
    return e->ep.type == TW_ENDPOINT_TCP || e->ep.type == TW_ENDPOINT_TCP6 ||
           e->ep.type == TW_ENDPOINT_SYSTEMD;
}

int rd_endpoint_wants_any_port(const rd_endpoint *e)
{
    return (e->ep.type == TW_ENDPOINT_TCP || e->ep.type == TW_ENDPOINT_TCP6) && e->ep.port == 0;
}

void rd_endpoint_set_port(rd_endpoint *e, int port)
{
    e->ep.port = port;
}

/* The address for messages: "127.0.0.1:9000", "[::]:9000", "unix:/path". */
static void where(const rd_endpoint *e, char *buf, size_t len)
{
    tw_address a;
    const char *iface = e->ep.interface[0] != '\0'           ? e->ep.interface
                        : e->ep.type == TW_ENDPOINT_TCP6 ? "::"
                                                         : "0.0.0.0";
    switch (e->ep.type) {
    case TW_ENDPOINT_TCP:
    case TW_ENDPOINT_TCP6:
    case TW_ENDPOINT_UDP:
        if (tw_address_from_ip(&a, iface, e->ep.port) == 0) {
            tw_address_format(&a, buf, len);
            return;
        }
        break;
    case TW_ENDPOINT_UNIX:
    case TW_ENDPOINT_UNIXGRAM:
        snprintf(buf, len, "unix:%s", e->ep.path);
        return;
    default:
        break;
    }
    snprintf(buf, len, "%s", e->desc);
}

static int listen_error(const rd_endpoint *e, int code, const char *detail)
{
    char at[TW_ENDPOINT_STRLEN];
    where(e, at, sizeof at);
    switch (code) {
    case -EADDRINUSE:
        return rd_error(EX_UNAVAILABLE, "cannot listen on %s: the address is already in use", at);
    case -EADDRNOTAVAIL:
        return rd_error(EX_UNAVAILABLE,
                        "cannot listen on %s: the address is not one of this host's", at);
    case -EACCES:
    case -EPERM:
        if (e->ep.port > 0 && e->ep.port < 1024)
            return rd_error(EX_NOPERM,
                            "cannot listen on %s: permission denied; ports below 1024 need "
                            "root (start as root and use --user to drop privileges after "
                            "listening)",
                            at);
        return rd_error(EX_NOPERM, "cannot listen on %s: permission denied", at);
    default:
        /* A passed socket of the wrong kind is the unit file's mistake. */
        if (e->ep.type == TW_ENDPOINT_SYSTEMD && detail != NULL)
            return rd_error(EX_USAGE, "%s", detail);
        if (detail != NULL)
            return rd_error(EX_OSERR, "%s", detail);
        return rd_error(EX_OSERR, "cannot listen on %s: %s", at, tw_strerror(code));
    }
}

int rd_endpoint_check_free(const rd_endpoint *e, const tw_listen_options *opts)
{
    if (e->ep.type != TW_ENDPOINT_TCP && e->ep.type != TW_ENDPOINT_TCP6)
        return 0;
    tw_address a;
    const char *iface = e->ep.interface[0] != '\0'           ? e->ep.interface
                        : e->ep.type == TW_ENDPOINT_TCP6 ? "::"
                                                         : "0.0.0.0";
    if (e->ep.port == 0 || tw_address_from_ip(&a, iface, e->ep.port) < 0)
        return 0; /* port 0, or an interface listening will name */
    int fd = tw__socket(tw_address_family(&a), SOCK_STREAM, 0, O_CLOEXEC);
    if (fd < 0)
        return rd_error(EX_OSERR, "cannot create a socket to check %s: %s", e->desc,
                        strerror(errno));
    /* The options listening uses, but SO_REUSEPORT: a port in TIME_WAIT is
     * free, a port someone listens on is not, with or without it. */
    int one = 1, v6only = opts->v6_only ? 1 : 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (tw_address_family(&a) == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    int rc = bind(fd, &a.u.sa, a.len) < 0 ? -errno : 0;
    close(fd);
    return rc == -EADDRINUSE ? listen_error(e, rc, NULL) : 0;
}

typedef struct {
    tw_listener *listener;
    int code;
    char detail[1024];
} outcome;

static void on_listening(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    outcome *o = arg;
    tw_free_fn close_it; /* tw_listener_close, now ours to call */
    o->listener = tw_result_take_value(res, &close_it);
}

static void on_failed(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    outcome *o = arg;
    tw_failure *f = tw_result_take_failure(res);
    o->code = tw_failure_code(f);
    tw_failure_format(f, o->detail, sizeof o->detail);
    tw_failure_unref(f);
}

int rd_endpoint_listen(rd_endpoint *e, tw_reactor *r, tw_factory *f,
                       const tw_listen_options *opts, tw_listener **out)
{
    if (e->ep.type == TW_ENDPOINT_SYSTEMD) {
        /* The activation was checked for the first process; this is its heir. */
        char pid[32];
        snprintf(pid, sizeof pid, "%ld", (long)getpid());
        setenv("LISTEN_PID", pid, 1);
    }
    outcome o = {NULL, 0, ""};
    tw_deferred *d = e->tls != NULL ? tw_listen_tls(r, &e->ep, opts, e->tls, f)
                                    : tw_endpoint_listen(r, &e->ep, opts, f);
    if (d == NULL)
        return rd_error(EX_OSERR, "out of memory listening on %s", e->desc);
    /* Listening is immediate: the deferred has fired and these run now. */
    int rc = tw_deferred_add_callbacks(d, on_listening, on_failed, &o);
    tw_deferred_unref(d);
    if (rc < 0)
        return rd_error(EX_OSERR, "out of memory listening on %s", e->desc);
    if (o.listener == NULL)
        return listen_error(e, o.code ? o.code : -EINVAL, o.detail[0] ? o.detail : NULL);
    *out = o.listener;
    return 0;
}

/* A unixgram endpoint: the library's, for the socket file's rules and mode. */
static void on_bound(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tw_free_fn close_it; /* tw_udp_port_close, now ours to call */
    *(tw_udp_port **)arg = tw_result_take_value(res, &close_it);
}

static void on_bind_failed(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    outcome *o = arg;
    tw_failure *f = tw_result_take_failure(res);
    o->code = tw_failure_code(f);
    tw_failure_format(f, o->detail, sizeof o->detail);
    tw_failure_unref(f);
}

static int listen_unixgram(rd_endpoint *e, tw_reactor *r, tw_datagram_protocol *p,
                           tw_udp_port **out)
{
    outcome o = {NULL, 0, ""};
    tw_udp_port *port = NULL;
    tw_deferred *d = tw_endpoint_listen_udp(r, &e->ep, p);
    if (d == NULL)
        return rd_error(EX_OSERR, "out of memory listening on %s", e->desc);
    /* Binding is immediate: the deferred has fired and these run now. */
    int rc = tw_deferred_add_callback(d, on_bound, &port);
    if (rc == 0)
        rc = tw_deferred_add_errback(d, on_bind_failed, &o);
    tw_deferred_unref(d);
    if (rc < 0)
        return rd_error(EX_OSERR, "out of memory listening on %s", e->desc);
    if (port == NULL)
        return listen_error(e, o.code ? o.code : -EINVAL, o.detail[0] ? o.detail : NULL);
    *out = port;
    return 0;
}

int rd_endpoint_listen_udp(rd_endpoint *e, tw_reactor *r, tw_datagram_protocol *p,
                           tw_udp_port **out)
{
    if (e->ep.type == TW_ENDPOINT_UNIXGRAM)
        return listen_unixgram(e, r, p, out);
    tw_address a;
    const char *iface = e->ep.interface[0] != '\0' ? e->ep.interface : NULL;
    if (tw_address_from_ip(&a, iface, e->ep.port) < 0)
        return rd_error(EX_USAGE, "bad endpoint '%s': the interface '%s' is not a numeric IP "
                        "address", e->desc, e->ep.interface);
    int rc = tw_udp_listen(r, &a, p, out);
    return rc < 0 ? listen_error(e, rc, NULL) : 0;
}
