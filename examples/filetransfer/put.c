/* SPDX-License-Identifier: MIT */
/*
 * The filetransfer module's put. The body is written as it arrives, a frame
 * at a time, to a new hidden file beside its target -- created with O_EXCL,
 * so nothing that exists already is ever written through -- and hashed on
 * the way. Only when the size and the SHA-256 match the header is the file
 * renamed over the target, so no reader ever sees half a file. (It is not
 * fsync()ed first: that would stall every other client of the reactor while
 * the disk catches up.)
 *
 * The body follows its header without waiting for an answer, so a put that
 * is refused at once (a bad name, say) gets its error frame at once and
 * still has its body read and dropped: the frames stay in step.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

/* Refuse now, then read and drop @p size bytes of body. */
static void refuse_body(ft_conn *c, const char *why, uint64_t size)
{
    ft_refuse(c, why);
    c->receiving = 1;
    c->sink = (ft_sink){.fd = -1, .left = size};
}

/* The whole body arrived: check it, then store it or say why not. */
static void finish(ft_conn *c)
{
    char why[FT_NAME_MAX + 256], sha[FT_HEX_LEN + 1];
    if (c->sink.sha == NULL) { /* refused at the start; the body was dropped */
        ft_reset(c);
        return;
    }
    const char *bad = ft_sink_check(&c->sink, c->sha, sha);
    if (bad == NULL && renameat(c->dir, c->tmp, c->dir, c->leaf) < 0)
        bad = strerror(errno);
    if (bad != NULL) {
        snprintf(why, sizeof why, "'%s' was not stored: %s", c->name, bad);
        ft_refuse(c, why);
        return;
    }
    c->tmp[0] = '\0'; /* it is the target now */
    ft_send_header(&c->sr, "ok", c->size, sha, c->name);
    ft_reset(c);
}

void ft_serve_put(ft_conn *c, const ft_header *h)
{
    char why[FT_NAME_MAX + 128];
    if (ft_resolve(c->srv->root, h->text, &c->dir, c->leaf, why, sizeof why) < 0) {
        refuse_body(c, why, h->size);
    } else {
        snprintf(c->tmp, sizeof c->tmp, ".ft-%ld-%lu.part", (long)getpid(), ++c->srv->uploads);
        c->fd = openat(c->dir, c->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (c->fd < 0) {
            c->tmp[0] = '\0';
            snprintf(why, sizeof why, "'%s' cannot be created: %s", h->text, strerror(errno));
            refuse_body(c, why, h->size);
        } else if ((c->sink.sha = ft_sha_new()) == NULL) {
            refuse_body(c, "out of memory", h->size);
        } else {
            c->receiving = 1;
            c->sink.fd = c->fd;
            c->sink.left = c->size = h->size;
            c->sink.error = 0;
            snprintf(c->name, sizeof c->name, "%s", h->text);
            memcpy(c->sha, h->sha, sizeof c->sha);
        }
    }
    if (h->size == 0)
        finish(c);
}

void ft_put_body(ft_conn *c, const void *data, size_t len)
{
    int rc = ft_sink_write(&c->sink, data, len);
    if (rc < 0) { /* more than announced: the framing cannot be trusted any more */
        ft_reset(c);
        tw_transport_abort_connection(c->base.transport);
    } else if (rc == 1) {
        finish(c);
    }
}
