/* SPDX-License-Identifier: MIT */
/*
 * The filetransfer module's get. The header carries the file's SHA-256, so
 * the file is hashed before anything is sent -- a megabyte per turn of the
 * loop, so that a large file never stalls the other clients -- then the
 * header goes out and the body follows through a pull producer, a frame
 * each time the transport's queue runs empty. Meanwhile the connection's
 * string receiver is paused: a client that sends its next request early
 * is served once this one is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

#define HASH_STEP (1 << 20)

static unsigned char buf[FT_CHUNK];

/* The body went out (or could not, and the connection is being aborted). */
static void sent(ft_sender *s, int status)
{
    ft_conn *c = tw_container_of(s, ft_conn, sender);
    if (status == TW_ECONNLOST)
        return; /* connection_lost cleans up */
    ft_reset(c);
    tw_string_receiver_resume_producing(&c->sr);
}

static void hash_step(void *arg)
{
    ft_conn *c = arg;
    tw_call_release(c->step);
    c->step = NULL;
    for (uint64_t end = c->hashed + HASH_STEP; c->hashed < c->size && c->hashed < end;) {
        size_t want = c->size - c->hashed < FT_CHUNK ? (size_t)(c->size - c->hashed) : FT_CHUNK;
        ssize_t n = pread(c->fd, buf, want, (off_t)c->hashed);
        if (n <= 0) {
            ft_refuse(c, "the file could not be read");
            tw_string_receiver_resume_producing(&c->sr);
            return;
        }
        EVP_DigestUpdate(c->hash, buf, (size_t)n);
        c->hashed += (uint64_t)n;
    }
    if (c->hashed < c->size) {
        tw_reactor_call_later(c->base.transport->reactor, 0, hash_step, c, &c->step);
        return;
    }
    ft_sha_finish(c->hash, c->sha);
    c->hash = NULL;
    ft_send_header(&c->sr, "ok", c->size, c->sha, c->name);
    ft_send_file(&c->sender, &c->sr, c->fd, c->size, sent);
}

/* @return NULL, or why @p name cannot be served (in @p why). */
static const char *open_file(ft_conn *c, const char *name, struct stat *st, char *why, size_t len)
{
    if (ft_resolve(c->srv->root, name, &c->dir, c->leaf, why, len) < 0)
        return why;
    /* O_NONBLOCK: a FIFO must not hang the server while it is opened. */
    c->fd = openat(c->dir, c->leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (c->fd < 0 || fstat(c->fd, st) < 0 || !S_ISREG(st->st_mode)) {
        snprintf(why, len, "'%s' is not a regular file beneath the root (%s)", name,
                 c->fd < 0 && errno == ELOOP ? "links are not followed"
                 : c->fd < 0                 ? strerror(errno)
                                             : "it is of another type");
        return why;
    }
    if ((c->hash = ft_sha_new()) == NULL)
        return "out of memory";
    return NULL;
}

void ft_serve_get(ft_conn *c, const char *name)
{
    char why[FT_NAME_MAX + 128];
    struct stat st;
    const char *refused = open_file(c, name, &st, why, sizeof why);
    if (refused != NULL) {
        ft_refuse(c, refused);
        return;
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    c->size = (uint64_t)st.st_size;
    c->hashed = 0;
    tw_string_receiver_pause_producing(&c->sr);
    if (tw_reactor_call_later(c->base.transport->reactor, 0, hash_step, c, &c->step) < 0) {
        ft_refuse(c, "out of memory");
        tw_string_receiver_resume_producing(&c->sr);
    }
}
