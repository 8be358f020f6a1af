/* SPDX-License-Identifier: MIT */
/*
 * Watches on descriptors the user owns (<twine/fdwatch.h>): a tw__io of
 * the reactor's poller with the user's two callbacks, so a user's pipe or
 * device is one more poller entry, like a connection.
 *
 * Regular files (and directories) cannot be polled: epoll refuses them, and
 * they never block anyway; nor can a device without poll support, which
 * epoll refuses with EPERM (/dev/null). Such a descriptor is "always ready": while the
 * watch wants something it calls back once per loop pass, from a libevent
 * timer of zero delay. A timer added inside a pass fires in the next one,
 * so other events get their turn; an event made active from its own
 * callback would run again in the same pass, for ever.
 *
 * Every watch of a reactor is on a list kept by a reactor service, so that
 * tw_reactor_free() can close the ones the user left open. A closed watch
 * goes back through the poller's deferred free, since a dispatch under way
 * may still point at it.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <event2/event.h>
#include <twine/fdwatch.h>

#include "core/list_internal.h"
#include "core/poller_internal.h"
#include "core/reactor_internal.h"

struct tw_fd_watch {
    tw__io io;
    tw__link link; /* in ws->open while open */
    struct watches *ws;
    tw_reactor *r;
    tw_fd_fn on_read, on_write;
    void *arg;
    int events;  /* TW_FD_* wanted */
    int closed;
    int always;  /* not pollable: ready whenever asked */
    struct event *again; /* always: the next pass's call */
};

typedef struct watches {
    tw__service service; /* first */
    tw__list open;
} watches;

static void watches_free(tw__service *sv);
static const tw__service_ops watches_ops = {NULL, watches_free};

static watches *find_watches(tw_reactor *r, int create)
{
    for (tw__service *s = r->services; s != NULL; s = s->next)
        if (s->ops == &watches_ops)
            return (watches *)s;
    if (!create)
        return NULL;
    watches *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->service.ops = &watches_ops;
    tw__reactor_add_service(r, &w->service);
    return w;
}

static void watches_free(tw__service *sv)
{
    watches *ws = (watches *)sv;
    while (ws->open.head != NULL)
        tw_fd_watch_close(tw_container_of(ws->open.head, tw_fd_watch, link));
    free(ws);
}

static int poll_mask(int events)
{
    return ((events & TW_FD_READABLE) ? TW__POLL_IN : 0) |
           ((events & TW_FD_WRITABLE) ? TW__POLL_OUT : 0);
}

static void on_again(evutil_socket_t fd, short what, void *arg);

static void on_io(tw__io *io, int what)
{
    tw_fd_watch *w = tw_container_of(io, tw_fd_watch, io);
    if (what == TW__IO_FREE) {
        free(w);
        return;
    }
    if (w->closed)
        return;
    if (what == TW__IO_KICK)
        return; /* this owner never kicks */
    /* An error or hangup is news for whoever reads, or else for the writer. */
    if ((what & TW__POLL_HUP) && !(what & (TW__POLL_IN | TW__POLL_OUT)))
        what |= (w->events & TW_FD_READABLE) ? TW__POLL_IN : TW__POLL_OUT;
    int fd = io->fd;
    if ((what & TW__POLL_IN) && (w->events & TW_FD_READABLE))
        w->on_read(w, fd, w->arg);
    if (!w->closed && (what & TW__POLL_OUT) && (w->events & TW_FD_WRITABLE))
        w->on_write(w, fd, w->arg);
}

static void arm(tw_fd_watch *w)
{
    static const struct timeval now = {0, 0};
    event_add(w->again, &now);
}

/* An always-ready watch's pass. */
static void on_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tw_fd_watch *w = arg;
    tw_reactor *r = w->r;
    tw__poller_hold(r); /* a dispatch, as the poller's own: writes batch, frees wait */
    on_io(&w->io, poll_mask(w->events));
    if (!w->closed && w->events != 0)
        arm(w);
    tw__poller_unhold(r);
}

TW_API int tw_fd_watch_set(tw_fd_watch *w, int events)
{
    if (w->closed)
        return TW_ESTATE;
    events &= (w->on_read != NULL ? TW_FD_READABLE : 0) | (w->on_write != NULL ? TW_FD_WRITABLE : 0);
    w->events = events;
    if (w->always) {
        if (events != 0)
            arm(w);
        else
            event_del(w->again);
        return 0;
    }
    int rc = tw__io_watch(w->r, &w->io, poll_mask(events));
    if (rc == -EPERM) {
        /* A device without poll support (/dev/null): always ready too. */
        tw__io_stop(w->r, &w->io);
        if ((w->again = evtimer_new(w->r->base, on_again, w)) != NULL) {
            w->always = 1;
            if (events != 0)
                arm(w);
            return 0;
        }
        rc = -ENOMEM;
    }
    if (rc < 0)
        w->events = 0;
    return rc;
}

TW_API int tw_fd_watch_events(const tw_fd_watch *w)
{
    return w->events;
}

TW_API int tw_reactor_watch_fd(tw_reactor *r, int fd, tw_fd_fn on_readable, tw_fd_fn on_writable,
                               void *arg, tw_fd_watch **out)
{
    struct stat st;
    if (fd < 0 || (on_readable == NULL && on_writable == NULL))
        return -EINVAL;
    if (fstat(fd, &st) < 0)
        return -errno;
    watches *ws = find_watches(r, 1);
    tw_fd_watch *w = calloc(1, sizeof *w);
    if (ws == NULL || w == NULL) {
        free(w);
        return -ENOMEM;
    }
    w->r = r;
    w->ws = ws;
    w->on_read = on_readable;
    w->on_write = on_writable;
    w->arg = arg;
    w->always = S_ISREG(st.st_mode) || S_ISDIR(st.st_mode);
    tw__io_init(&w->io, fd, on_io);
    if (w->always && (w->again = evtimer_new(r->base, on_again, w)) == NULL) {
        free(w);
        return -ENOMEM;
    }
    int rc = tw_fd_watch_set(w, TW_FD_READABLE | TW_FD_WRITABLE);
    if (rc < 0) {
        tw__io_stop(r, &w->io);
        if (w->again != NULL)
            event_free(w->again);
        free(w);
        return rc;
    }
    tw__list_push(&ws->open, &w->link);
    *out = w;
    return 0;
}

TW_API void tw_fd_watch_close(tw_fd_watch *w)
{
    if (w == NULL || w->closed)
        return;
    w->closed = 1;
    w->events = 0;
    tw__list_remove(&w->ws->open, &w->link);
    if (w->again != NULL) {
        event_free(w->again);
        w->again = NULL;
    }
    tw__io_stop(w->r, &w->io);
    tw__io_release(w->r, &w->io);
}
