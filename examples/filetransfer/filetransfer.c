/* SPDX-License-Identifier: MIT */
/*
 * filetransfer: a twine module serving get and put of the files beneath one
 * directory, over the int32-framed protocol of ft.h; ftclient.c is its
 * client. It is the classic socket-course FTP exercise without its flaws:
 * frames instead of a header of guessed size, SHA-256 checked on both sides,
 * memory bounded whatever the file size, no way out of the root (confine.c).
 * From the build tree:
 *
 *   reactord --plugin-path examples/filetransfer/.libs --protocol filetransfer \
 *            -o root=/srv/files --port 9000
 *   examples/filetransfer/ftclient tcp:127.0.0.1:9000 put notes.txt
 *
 * This file holds the descriptor, the factory (which owns a descriptor of
 * the root) and the dispatch of requests to get.c and put.c. A request that
 * is not understood gets an error frame; the connection stays open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

void ft_reset(ft_conn *c)
{
    if (c->tmp[0] != '\0')
        unlinkat(c->dir, c->tmp, 0);
    if (c->fd >= 0)
        close(c->fd);
    if (c->dir >= 0)
        close(c->dir);
    if (c->step != NULL)
        tw_call_cancel(c->step);
    tw_call_release(c->step);
    EVP_MD_CTX_free(c->hash);
    EVP_MD_CTX_free(c->sink.sha);
    c->fd = c->dir = -1;
    c->receiving = 0;
    c->tmp[0] = '\0';
    c->hash = c->sink.sha = NULL;
    c->step = NULL;
}

void ft_refuse(ft_conn *c, const char *why)
{
    ft_send_header(&c->sr, "error", 0, NULL, why);
    ft_reset(c);
}

static void string_received(tw_string_receiver *sr, const void *data, size_t len)
{
    ft_conn *c = tw_container_of(sr, ft_conn, sr);
    ft_header h;
    int parsed = !c->receiving && ft_parse(data, len, &h) == 0;
    if (c->receiving)
        ft_put_body(c, data, len);
    else if (parsed && strcmp(h.verb, "get") == 0)
        ft_serve_get(c, h.text);
    else if (parsed && strcmp(h.verb, "put") == 0)
        ft_serve_put(c, &h);
    else
        ft_refuse(c, "not a request: expected 'get NAME' or 'put SIZE SHA256 NAME'");
}

static const tw_string_receiver_ops frame_ops = {.string_received = string_received};

static void data_received(tw_protocol *p, const void *data, size_t len)
{
    tw_string_receiver_data_received(&tw_container_of(p, ft_conn, base)->sr, data, len);
}

static void connection_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    ft_reset(tw_container_of(p, ft_conn, base)); /* drops a half-received put */
}

static void destroy(tw_protocol *p)
{
    ft_conn *c = tw_container_of(p, ft_conn, base);
    tw_string_receiver_cleanup(&c->sr);
    free(c);
}

static const tw_protocol_ops conn_ops = {
    .data_received = data_received,
    .connection_lost = connection_lost,
    .destroy = destroy,
};

static tw_protocol *build_protocol(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    ft_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base.ops = &conn_ops;
    c->srv = tw_container_of(f, ft_server, base);
    c->fd = c->dir = -1;
    tw_string_receiver_init(&c->sr, &c->base, TW_FRAMING_INT32, &frame_ops);
    tw_string_receiver_set_max_length(&c->sr, FT_CHUNK);
    return &c->base;
}

static void destroy_server(tw_factory *f)
{
    ft_server *s = tw_container_of(f, ft_server, base);
    close(s->root);
    free(s);
}

static const tw_factory_ops server_ops = {
    .build_protocol = build_protocol,
    .destroy = destroy_server,
};

static tw_factory *make_server(tw_reactor *r, const tw_options *opts, char *err, size_t errlen)
{
    (void)r;
    const char *root = tw_options_get(opts, "root");
    if (root == NULL) {
        snprintf(err, errlen, "filetransfer needs the directory to serve: -o root=DIR");
        return NULL;
    }
    ft_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory creating the filetransfer server");
        return NULL;
    }
    if ((s->root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "filetransfer cannot open its root directory '%s': %s", root,
                 strerror(errno));
        free(s);
        return NULL;
    }
    tw_factory_init(&s->base, &server_ops);
    return &s->base;
}

static const tw_option_spec options[] = {
    {"root", TW_OPTION_STRING, NULL, "the directory served; nothing outside it is reachable"},
    {NULL, 0, NULL, NULL},
};

TW_PLUGIN(filetransfer, .type = TW_PLUGIN_PROTOCOL, .name = "filetransfer",
          .description = "get and put files beneath a root directory, with SHA-256 checks",
          .options = options,
          .ctx = &(const tw_plugin_protocol){.make_factory = make_server});
