/* SPDX-License-Identifier: MIT */
/*
 * The --metrics endpoint: Prometheus scrapes GET /metrics over HTTP. The
 * endpoint is an ordinary twine server endpoint string, parsed by twine's
 * parser; twine makes the listening socket (tw_endpoint_bind()), and
 * libevent's evhttp serves it on the event_base it is given (the reactor's,
 * or the supervisor's), so there is no HTTP parser here. Only GET and HEAD
 * of /metrics are answered (200, text format 0.0.4); every other path is a
 * 404, every other method refused by evhttp.
 *
 * The socket is bound while reactord may still be root, like the serving
 * endpoints, so a port in use or a forbidden one fails start-up with one
 * sentence. A UNIX socket file made here is removed when the server is
 * freed, except by rd_metrics_server_forget(), which a forked worker uses to
 * let go of its copy of the supervisor's server.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "reactord.h"

#define MAX_HEADERS_SIZE 8192
#define REQUEST_TIMEOUT 10 /* seconds a client may take to send its request */

struct rd_metrics_server {
    struct evhttp *http;
    rd_scrape_fn fn;
    void *arg;
    char path[TW_ENDPOINT_PATH_MAX]; /* a UNIX socket file to remove, or "" */
};

static int parse(const char *desc, tw_endpoint *e)
{
    char err[TW_ENDPOINT_STRLEN];
    if (tw_endpoint_parse_server(desc, e, err, sizeof err) < 0)
        return rd_error(EX_USAGE, "--metrics: %s", err);
    if (e->type == TW_ENDPOINT_UDP || e->proxy_protocol || e->lockfile)
        return rd_error(EX_USAGE,
                        "--metrics needs a tcp, tcp6, unix or systemd endpoint without a PROXY "
                        "header or lock file, not '%s'",
                        desc);
    return 0;
}

int rd_metrics_check_endpoint(const char *desc)
{
    tw_endpoint e;
    return parse(desc, &e);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    rd_metrics_server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, "Not Found: the metrics are at /metrics");
        return;
    }
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    s->fn(body, s->arg);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

int rd_metrics_serve(const char *desc, struct event_base *base, rd_scrape_fn fn, void *arg,
                     rd_metrics_server **out)
{
    tw_endpoint e;
    int rc = parse(desc, &e);
    if (rc != 0)
        return rc;
    char err[TW_ENDPOINT_STRLEN + 64];
    int fd;
    int brc = tw_endpoint_bind(&e, NULL, &fd, err, sizeof err);
    if (brc < 0)
        return rd_error(brc == -EADDRINUSE  ? EX_UNAVAILABLE
                        : brc == -EACCES    ? EX_NOPERM
                        : brc == -EINVAL || brc == -EADDRNOTAVAIL ? EX_CONFIG
                                                                  : EX_OSERR,
                        "cannot serve metrics: %s", err);
    rd_metrics_server *s = calloc(1, sizeof *s);
    if (s == NULL || (s->http = evhttp_new(base)) == NULL) {
        free(s);
        close(fd);
        if (e.type == TW_ENDPOINT_UNIX)
            unlink(e.path);
        return rd_error(EX_OSERR, "cannot serve metrics on %s: out of memory", desc);
    }
    s->fn = fn;
    s->arg = arg;
    if (e.type == TW_ENDPOINT_UNIX)
        snprintf(s->path, sizeof s->path, "%s", e.path);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(s->http, MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(s->http, 0);
    evhttp_set_timeout(s->http, REQUEST_TIMEOUT);
    evhttp_set_gencb(s->http, on_request, s);
    if (evhttp_accept_socket_with_handle(s->http, fd) == NULL) {
        close(fd);
        rd_metrics_server_free(s);
        return rd_error(EX_OSERR, "cannot serve metrics on %s: libevent refused the socket", desc);
    }
    tw_address a;
    char where[TW_ADDRSTRLEN] = "?";
    a.len = sizeof a.u.storage;
    if (getsockname(fd, &a.u.sa, &a.len) == 0)
        tw_address_format(&a, where, sizeof where);
    tw_log(TW_LOG_INFO, rd_logging_system(), "serving metrics at /metrics on %s", where);
    *out = s;
    return 0;
}

void rd_metrics_server_forget(rd_metrics_server *s)
{
    if (s == NULL)
        return;
    evhttp_free(s->http); /* closes the socket and the connections */
    free(s);
}

void rd_metrics_server_free(rd_metrics_server *s)
{
    if (s == NULL)
        return;
    if (s->path[0] != '\0')
        unlink(s->path);
    rd_metrics_server_forget(s);
}
