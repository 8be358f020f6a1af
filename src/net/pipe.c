/* SPDX-License-Identifier: MIT */
/*
 * The halves of a descriptor that is not a socket (pipe_internal.h): the
 * read half reads up to 64 KiB per readiness into the reactor's read
 * buffer, as a stream does; the write half writes straight out while
 * nothing is queued and keeps what the descriptor refuses in an evbuffer,
 * watching writability only while something is queued. (The stream's own
 * queue, outq_internal.h, belongs to its batch machinery and to the spares
 * the streams of a reactor share; a pipe write is never batched.)
 *
 * A write to a pipe whose reader is gone raises SIGPIPE, and pipes have no
 * MSG_NOSIGNAL. Each flush therefore blocks SIGPIPE in the calling thread,
 * and takes back the SIGPIPE the write raised (a signal that was pending
 * before stays pending), so the process's disposition is never touched
 * and the write reports EPIPE instead.
 *
 * A terminal's master side reads EIO once the last slave descriptor
 * closed: for a reader that is the end of the input, an EOF.
 *
 * A writer with nothing to write would not notice that the reader went
 * away (a child that exited), so the write half of a pipe or FIFO also
 * watches for readability, which the write end of a pipe reports only as
 * an error once the read end is gone (as Twisted's ProcessWriter does).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "core/reactor_internal.h"
#include "net/pipe_internal.h"

/* Make @p fd non-blocking and close-on-exec; @return its old status flags
 * or a negated errno. */
static int prepare(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl >= 0 && !(fdfl & FD_CLOEXEC))
        fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
    return fl;
}

static void close_fd(int fd, int restore, int old_fl)
{
    if (restore)
        fcntl(fd, F_SETFL, old_fl);
    close(fd);
}

/* ---- the read half ---- */

static void in_ready(tw_fd_watch *w, int fd, void *arg)
{
    (void)w;
    tw__pipe_in *in = arg;
    tw_reactor *r = in->r;
    ssize_t n;
    do
        n = read(fd, r->read_buf, TW__READ_SIZE);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        in->data(in, r->read_buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    int code = n == 0 || errno == EIO ? TW_EDONE : -errno;
    tw__pipe_in_close(in);
    in->lost(in, code);
}

int tw__pipe_in_open(tw_reactor *r, tw__pipe_in *in, int fd)
{
    in->r = r;
    in->fd = fd;
    in->paused = 0;
    in->watch = NULL;
    int fl = prepare(fd);
    if (fl < 0) {
        close(fd);
        return fl;
    }
    in->old_fl = fl;
    int rc = tw_reactor_watch_fd(r, fd, in_ready, NULL, in, &in->watch);
    if (rc < 0) {
        in->watch = NULL;
        close_fd(fd, in->restore, fl);
        return rc;
    }
    return 0;
}

void tw__pipe_in_pause(tw__pipe_in *in)
{
    in->paused = 1;
    if (in->watch != NULL)
        tw_fd_watch_set(in->watch, 0);
}

void tw__pipe_in_resume(tw__pipe_in *in)
{
    in->paused = 0;
    if (in->watch != NULL)
        tw_fd_watch_set(in->watch, TW_FD_READABLE);
}

void tw__pipe_in_close(tw__pipe_in *in)
{
    if (in->watch == NULL)
        return;
    tw_fd_watch_close(in->watch);
    in->watch = NULL;
    close_fd(in->fd, in->restore, in->old_fl);
    in->fd = -1;
}

/* ---- the write half ---- */

/* Write what is queued, without SIGPIPE (see the top). @return 0 or a
 * negated errno. */
static int flush(tw__pipe_out *out)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    int rc = 0;
    while (evbuffer_get_length(out->queue) > 0) {
        int n = evbuffer_write(out->queue, out->fd);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            rc = -errno;
        break;
    }
    if (rc == -EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* What the write half watches: writability while it has work, and a pipe's
 * hangup always. */
static int out_events(const tw__pipe_out *out, int writable)
{
    return (out->fifo ? TW_FD_READABLE : 0) | (writable ? TW_FD_WRITABLE : 0);
}

static void out_report(void *arg)
{
    tw__pipe_out *out = arg;
    tw_call_release(out->report);
    out->report = NULL;
    int code = out->error;
    tw__pipe_out_close(out);
    out->lost(out, code);
}

/* A write failed: close and tell the owner from the loop. */
static void out_fail(tw__pipe_out *out, int code)
{
    out->error = code;
    evbuffer_drain(out->queue, evbuffer_get_length(out->queue));
    if (out->watch != NULL)
        tw_fd_watch_set(out->watch, 0);
    if (out->report == NULL && tw_reactor_call_later(out->r, 0, out_report, out, &out->report) < 0)
        out->report = NULL; /* cannot happen but for memory: the close still comes with the owner */
}

static void out_ready(tw_fd_watch *w, int fd, void *arg)
{
    (void)fd;
    tw__pipe_out *out = arg;
    int rc = flush(out);
    if (rc < 0) {
        int code = rc;
        tw__pipe_out_close(out);
        out->lost(out, code);
        return;
    }
    if (evbuffer_get_length(out->queue) == 0) {
        tw_fd_watch_set(w, out_events(out, 0));
        if (out->closing) {
            tw__pipe_out_close(out);
            out->lost(out, TW_EDONE);
            return;
        }
    }
    out->drained(out);
}

/* The reader of the pipe is gone (see the top). */
static void out_hangup(tw_fd_watch *w, int fd, void *arg)
{
    (void)w;
    (void)fd;
    tw__pipe_out *out = arg;
    tw__pipe_out_close(out);
    out->lost(out, -EPIPE);
}

int tw__pipe_out_open(tw_reactor *r, tw__pipe_out *out, int fd)
{
    out->r = r;
    out->fd = fd;
    out->watch = NULL;
    out->report = NULL;
    out->closing = 0;
    out->error = 0;
    int fl = prepare(fd);
    if (fl < 0) {
        close(fd);
        return fl;
    }
    out->old_fl = fl;
    if ((out->queue = evbuffer_new()) == NULL) {
        close_fd(fd, out->restore, fl);
        return -ENOMEM;
    }
    struct stat st;
    /* Only a write-only end: one opened for both would read its own data. */
    out->fifo = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && (fl & O_ACCMODE) == O_WRONLY;
    int rc = tw_reactor_watch_fd(r, fd, out->fifo ? out_hangup : NULL, out_ready, out, &out->watch);
    if (rc == 0)
        rc = tw_fd_watch_set(out->watch, out_events(out, 0));
    if (rc < 0) {
        tw_fd_watch_close(out->watch);
        out->watch = NULL;
        evbuffer_free(out->queue);
        out->queue = NULL;
        close_fd(fd, out->restore, fl);
        return rc;
    }
    return 0;
}

size_t tw__pipe_out_queued(const tw__pipe_out *out)
{
    return out->queue != NULL ? evbuffer_get_length(out->queue) : 0;
}

int tw__pipe_out_writev(tw__pipe_out *out, const struct iovec *iov, int iovcnt)
{
    if (out->watch == NULL || out->closing || out->error != 0)
        return TW_ESTATE;
    int was_empty = evbuffer_get_length(out->queue) == 0;
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len > 0 && evbuffer_add(out->queue, iov[i].iov_base, iov[i].iov_len) < 0)
            return -ENOMEM;
    if (!was_empty || evbuffer_get_length(out->queue) == 0)
        return 0; /* writability is watched already, or nothing to do */
    int rc = flush(out);
    if (rc < 0) {
        out_fail(out, rc);
        return 0;
    }
    if (evbuffer_get_length(out->queue) > 0 &&
        (rc = tw_fd_watch_set(out->watch, out_events(out, 1))) < 0)
        out_fail(out, rc);
    return 0;
}

void tw__pipe_out_poke(tw__pipe_out *out)
{
    /* Writability comes at once for a descriptor that takes more, and the
     * callback with an empty queue is just the drained call. */
    if (out->watch != NULL && out->error == 0 && tw_fd_watch_set(out->watch, out_events(out, 1)) < 0)
        out_fail(out, -EIO);
}

void tw__pipe_out_close_flushed(tw__pipe_out *out)
{
    if (out->watch == NULL || out->closing)
        return;
    out->closing = 1;
    if (out->error != 0)
        return; /* the report closes it */
    /* From the loop, even when empty: the owner hears lost after its call. */
    if (tw_fd_watch_set(out->watch, out_events(out, 1)) < 0)
        out_fail(out, -EIO);
}

void tw__pipe_out_close(tw__pipe_out *out)
{
    if (out->report != NULL) {
        tw_call_cancel(out->report);
        tw_call_release(out->report);
        out->report = NULL;
    }
    if (out->watch == NULL)
        return;
    tw_fd_watch_close(out->watch);
    out->watch = NULL;
    evbuffer_free(out->queue);
    out->queue = NULL;
    close_fd(out->fd, out->restore, out->old_fl);
    out->fd = -1;
}
