/* SPDX-License-Identifier: MIT */
/*
 * The two halves of a descriptor transport that is not a socket (pipe.c):
 * a read half that hands what a pipe, FIFO, terminal or file yields to its
 * owner, and a write half with an output queue that never blocks. A pipe
 * transport (pipe_transport.c) pairs one of each for a protocol; a child
 * process (src/proc) owns one per descriptor it shares with the child.
 *
 * Both are embedded in their owner and watch their descriptor through a
 * tw_fd_watch, so a regular file (which cannot be polled) works too. They
 * call their owner back only from the loop, never from inside a call the
 * owner makes, and never after the owner closed them; an owner must not
 * free itself inside one of their callbacks (finish from the loop instead).
 */
#ifndef TWINE_PIPE_INTERNAL_H
#define TWINE_PIPE_INTERNAL_H

#include <stddef.h>
#include <sys/uio.h>
#include <twine/fdwatch.h>
#include <twine/reactor.h>
#include <twine/transport.h>

struct evbuffer;

typedef struct tw__pipe_in tw__pipe_in;
struct tw__pipe_in {
    tw_reactor *r;
    tw_fd_watch *watch; /* NULL once closed */
    int fd;
    int old_fl;  /* the file status flags before open */
    int restore; /* put old_fl back before closing (set by the owner) */
    int paused;
    /* @p len bytes arrived (at most 64 KiB, in the reactor's read buffer). */
    void (*data)(tw__pipe_in *in, const void *buf, size_t len);
    /* The half closed itself: TW_EDONE at EOF (a terminal's EIO counts as
     * one), or the negated errno of a read. */
    void (*lost)(tw__pipe_in *in, int code);
};

typedef struct tw__pipe_out tw__pipe_out;
struct tw__pipe_out {
    tw_reactor *r;
    tw_fd_watch *watch; /* NULL once closed */
    struct evbuffer *queue;
    tw_call *report; /* delivers an error from the loop */
    int fd;
    int old_fl;  /* as in tw__pipe_in */
    int restore;
    int fifo;    /* a write-only pipe or FIFO: its hangup is watched (pipe.c) */
    int closing; /* close once the queue is empty */
    int error;   /* a write failed with this negated errno */
    /* The queue shrank (a flush from the loop); it may be empty. */
    void (*drained)(tw__pipe_out *out);
    /* The half closed itself: TW_EDONE once a requested close flushed, or
     * the negated errno of a write (EPIPE: the reader is gone). */
    void (*lost)(tw__pipe_out *out, int code);
};

/* Start reading @p fd, which the half takes (made non-blocking, closed by
 * tw__pipe_in_close or at EOF). data and lost must be set. On error @p fd
 * is closed. @return 0 or a negated errno. */
int tw__pipe_in_open(tw_reactor *r, tw__pipe_in *in, int fd);
void tw__pipe_in_pause(tw__pipe_in *in);
void tw__pipe_in_resume(tw__pipe_in *in);
/* Stop and close the descriptor; no callback follows. Idempotent. */
void tw__pipe_in_close(tw__pipe_in *in);
static inline int tw__pipe_in_is_open(const tw__pipe_in *in)
{
    return in->watch != NULL;
}

/* Take @p fd for writing (made non-blocking). drained and lost must be
 * set. On error @p fd is closed. @return 0 or a negated errno. */
int tw__pipe_out_open(tw_reactor *r, tw__pipe_out *out, int fd);
/* Write, straight out when nothing is queued, queueing what the descriptor
 * refuses. A write error is reported through lost, from the loop.
 * @return 0; TW_ESTATE once closing, closed or failed; -ENOMEM. */
int tw__pipe_out_writev(tw__pipe_out *out, const struct iovec *iov, int iovcnt);
size_t tw__pipe_out_queued(const tw__pipe_out *out);
/* Have drained called from the loop soon (a pull producer's next pull). */
void tw__pipe_out_poke(tw__pipe_out *out);
/* Close once everything queued is written, then lost(TW_EDONE). */
void tw__pipe_out_close_flushed(tw__pipe_out *out);
/* Close now, dropping the queue; no callback follows. Idempotent. */
void tw__pipe_out_close(tw__pipe_out *out);
static inline int tw__pipe_out_is_open(const tw__pipe_out *out)
{
    return out->watch != NULL;
}

/* pipe_transport.c: run a protocol built by @p f over @p rfd (read, or -1)
 * and @p wfd (written, or -1), both taken (closed on error). Counts as a
 * user of @p f while it lives. connection_made runs before this returns.
 * @param restore_flags nonzero: give each descriptor its original file
 *        status flags back before closing it (stdio shares them).
 * @return 0; -ECONNREFUSED when the factory refused; -ENOMEM; -EINVAL. */
int tw__pipe_transport_start(tw_reactor *r, int rfd, int wfd, tw_factory *f, int restore_flags,
                             tw_transport **out);

/* pipe_transport.c: tw_transport_adopt() of a descriptor that is not a
 * socket: read, written or both as its access mode allows. Takes @p fd. */
int tw__pipe_adopt(tw_reactor *r, int fd, tw_factory *f);

#endif
