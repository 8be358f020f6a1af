/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend: one epoll set per reactor, registered with libevent as
 * a single persistent read event on the set's descriptor. Every tw__io of
 * the reactor (streams, listeners, UDP ports, the thread wake-up) is an
 * entry of that set.
 *
 * The set is level-triggered. Each time libevent reports it readable, one
 * epoll_wait() with no timeout collects up to BATCH ready entries and
 * dispatches them; whatever is left makes the set readable again and
 * libevent calls back on its next iteration, so descriptors share the loop
 * fairly with timers and everything else on it.
 *
 * A callback may stop any io (its own, or another's, which its owner may
 * then free) while later entries of the same batch still point at it:
 * tw__io_stop() clears those entries, so no callback reaches a stopped io.
 */
#include "config.h"

/* Built everywhere; only the backend configure chose has a body. */
#ifdef TW_POLLER_EPOLL

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <event2/event.h>

#include "core/poller_internal.h"

/* Ready entries taken per epoll_wait(). */
#define BATCH 256

struct tw__backend {
    int epfd;
    struct event *ev; /* EV_READ | EV_PERSIST on epfd */
    int at, count;    /* the batch being dispatched: events[at + 1 .. count) are to come */
    struct epoll_event events[BATCH];
};

/* What entry @p ev of the set reports, for an io watching @p mask. */
static int readiness(uint32_t ev, int mask)
{
    int ready = 0;
    if (ev & EPOLLIN)
        ready |= TW__POLL_IN;
    if (ev & EPOLLOUT)
        ready |= TW__POLL_OUT;
    if (ev & (EPOLLERR | EPOLLHUP))
        ready |= TW__POLL_IN | TW__POLL_OUT; /* the read or write reports it */
    ready &= mask;
    if (ready == 0 && (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
        ready = TW__POLL_HUP; /* reported even with no interest */
    return ready;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    tw_reactor *r = arg;
    struct tw__backend *b = r->poller->backend;
    int n;
    do
        n = epoll_wait((int)fd, b->events, BATCH, 0);
    while (n < 0 && errno == EINTR);

    tw__poller_hold(r);
    b->count = n < 0 ? 0 : n;
    for (b->at = 0; b->at < b->count; b->at++) {
        tw__io *io = b->events[b->at].data.ptr;
        if (io == NULL || !io->added)
            continue; /* stopped by an earlier entry of this batch */
        int ready = readiness(b->events[b->at].events, io->mask);
        if (ready == 0) {
            /* Readiness the io no longer wants, level-triggered: it would
             * wake us every round. Leave the set until it wants something
             * again. */
            epoll_ctl(b->epfd, EPOLL_CTL_DEL, io->fd, NULL);
            io->added = 0;
            continue;
        }
        io->cb(io, ready);
        tw__poller_io_done(r);
    }
    b->count = 0;
    tw__poller_unhold(r);
}

int tw__backend_init(tw_reactor *r)
{
    struct tw__backend *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int err = -errno;
        free(b);
        return err;
    }
    b->ev = event_new(r->base, b->epfd, EV_READ | EV_PERSIST, on_ready, r);
    if (b->ev == NULL || event_add(b->ev, NULL) < 0) {
        if (b->ev != NULL)
            event_free(b->ev);
        close(b->epfd);
        free(b);
        return -ENOMEM;
    }
    r->poller->backend = b;
    return 0;
}

void tw__backend_free(tw_reactor *r)
{
    struct tw__backend *b = r->poller->backend;
    if (b == NULL)
        return;
    event_free(b->ev);
    close(b->epfd);
    free(b);
    r->poller->backend = NULL;
}

int tw__io_watch(tw_reactor *r, tw__io *io, int mask)
{
    if (io->added && mask == io->mask)
        return 0;
    if (!io->added && mask == 0) {
        io->mask = 0; /* nothing to watch: no need to join the set yet */
        return 0;
    }
    /* Interest dropping to nothing keeps the entry (events 0): a stream
     * that pauses and resumes costs one MOD each way, not a DEL and ADD. */
    struct epoll_event ev = {.events = 0, .data.ptr = io};
    if (mask & TW__POLL_IN)
        ev.events |= EPOLLIN;
    if (mask & TW__POLL_OUT)
        ev.events |= EPOLLOUT;
    if (mask & TW__POLL_HUP)
        ev.events |= EPOLLRDHUP;
    struct tw__backend *b = r->poller->backend;
    if (epoll_ctl(b->epfd, io->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    io->added = 1;
    io->mask = (uint8_t)mask;
    return 0;
}

void tw__io_stop(tw_reactor *r, tw__io *io)
{
    struct tw__backend *b = r->poller->backend;
    if (io->added)
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->added = 0;
    io->mask = 0;
    /* Its owner may free it before the batch is over. */
    for (int i = b->at + 1; i < b->count; i++)
        if (b->events[i].data.ptr == io)
            b->events[i].data.ptr = NULL;
}

#endif
