/* SPDX-License-Identifier: MIT */
/*
 * Bodies, for both sides of the file-transfer protocol (ft.h): the pull
 * producer that streams a file out a frame at a time, each time the
 * transport's queue has emptied, and the sink that writes one in as its
 * frames arrive. Neither holds more than one frame of a file in memory.
 */
#include <errno.h>
#include <unistd.h>

#include "ft.h"

/* One piece at a time: the reactor is single-threaded, so one buffer serves all. */
static unsigned char chunk[FT_CHUNK];

/* Report once, however the sending ended; TW_ECONNLOST: the transport let go of us. */
static void report(ft_sender *s, int status)
{
    tw_transport *t = s->sr->protocol->transport;
    if (status != TW_ECONNLOST)
        tw_transport_unregister_producer(t);
    if (status == -EIO) /* the peer is owed bytes we do not have: only closing tells it */
        tw_transport_abort_connection(t);
    if (!s->reported && s->done != NULL) {
        s->reported = 1;
        s->done(s, status);
    }
}

/* The transport's queue is empty: send the next piece. */
static void send_more(tw_producer *p)
{
    ft_sender *s = tw_container_of(p, ft_sender, base);
    uint64_t want = s->size - s->offset < FT_CHUNK ? s->size - s->offset : FT_CHUNK;
    ssize_t n = pread(s->fd, chunk, (size_t)want, (off_t)s->offset);
    if (n <= 0) { /* it shrank under us, or cannot be read */
        report(s, -EIO);
        return;
    }
    s->offset += (uint64_t)n;
    tw_string_receiver_send_string(s->sr, chunk, (size_t)n);
    if (s->offset == s->size)
        report(s, 0);
}

static void stop_sending(tw_producer *p)
{
    report(tw_container_of(p, ft_sender, base), TW_ECONNLOST);
}

static const tw_producer_ops sender_ops = {.resume_producing = send_more,
                                           .stop_producing = stop_sending};

void ft_send_file(ft_sender *s, tw_string_receiver *sr, int fd, uint64_t size,
                  void (*done)(ft_sender *s, int status))
{
    *s = (ft_sender){.base.ops = &sender_ops, .sr = sr, .fd = fd, .size = size, .done = done};
    if (size == 0)
        report(s, 0);
    else if (tw_transport_register_producer(sr->protocol->transport, &s->base, 0) < 0)
        report(s, TW_ECONNLOST); /* closing: it may have stopped us already */
}

int ft_sink_write(ft_sink *k, const void *data, size_t len)
{
    if (len > k->left)
        return -1;
    k->left -= len;
    if (k->sha != NULL)
        EVP_DigestUpdate(k->sha, data, len);
    for (const char *p = data; k->fd >= 0 && k->error == 0 && len > 0;) {
        ssize_t n = write(k->fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n == 0 || errno != EINTR) {
            k->error = n == 0 ? -EIO : -errno;
        }
    }
    return k->left == 0;
}
