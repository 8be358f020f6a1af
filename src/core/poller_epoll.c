/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend for streams: one epoll set per reactor, registered with
 * libevent as a single persistent read event on the set's descriptor.
 *
 * The set is level-triggered. Each time libevent reports it readable, one
 * epoll_wait() with no timeout collects up to BATCH ready streams and
 * dispatches them; whatever is left makes the set readable again and
 * libevent calls back on its next iteration, so streams share the loop
 * fairly with timers and everything else on it.
 *
 * While a batch is being dispatched, the reactor's stream_busy count is
 * raised: a stream closed meanwhile (by its own protocol or by another
 * stream's) is not freed, because a later entry of the same batch may still
 * point at it; tw__poll_remove() marks it so that entry is skipped, and
 * tw__stream_reap() frees it once the batch is done.
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

/* Ready streams taken per epoll_wait(). */
#define BATCH 256

struct tw__poller {
    int epfd;
    struct event *ev; /* EV_READ | EV_PERSIST on epfd */
    struct epoll_event events[BATCH];
};

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    tw_reactor *r = arg;
    struct epoll_event *events = r->poller->events;
    int n;
    do
        n = epoll_wait((int)fd, events, BATCH, 0);
    while (n < 0 && errno == EINTR);

    r->stream_busy++;
    for (int i = 0; i < n; i++) {
        tw__pollable *p = events[i].data.ptr;
        if (!p->added)
            continue; /* removed by an earlier entry of this batch */
        uint32_t ev = events[i].events;
        int ready = 0;
        if (ev & EPOLLIN)
            ready |= TW__POLL_IN;
        if (ev & EPOLLOUT)
            ready |= TW__POLL_OUT;
        if (ev & (EPOLLERR | EPOLLHUP))
            ready |= TW__POLL_IN | TW__POLL_OUT; /* the read or write reports it */
        ready &= p->mask;
        if (ready == 0 && (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
            ready = TW__POLL_HUP; /* reported even with no interest */
        if (ready == 0) {
            /* Readiness the stream no longer wants, level-triggered: it
             * would wake us every round. Leave the set until the stream
             * wants something again. */
            epoll_ctl(r->poller->epfd, EPOLL_CTL_DEL, p->fd, NULL);
            p->added = 0;
            continue;
        }
        tw__stream_ready(p, ready);
    }
    r->stream_busy--;
    tw__stream_reap(r);
}

int tw__poller_init(tw_reactor *r)
{
    struct tw__poller *pl = malloc(sizeof *pl);
    if (pl == NULL)
        return -ENOMEM;
    pl->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (pl->epfd < 0) {
        int err = -errno;
        free(pl);
        return err;
    }
    pl->ev = event_new(r->base, pl->epfd, EV_READ | EV_PERSIST, on_ready, r);
    if (pl->ev == NULL || event_add(pl->ev, NULL) < 0) {
        if (pl->ev != NULL)
            event_free(pl->ev);
        close(pl->epfd);
        free(pl);
        return -ENOMEM;
    }
    r->poller = pl;
    return 0;
}

void tw__poller_free(tw_reactor *r)
{
    struct tw__poller *pl = r->poller;
    if (pl == NULL)
        return;
    event_free(pl->ev);
    close(pl->epfd);
    free(pl);
    r->poller = NULL;
}

int tw__poll_set(tw_reactor *r, tw__pollable *p, int mask)
{
    if (p->added && mask == p->mask)
        return 0;
    if (!p->added && mask == 0) {
        p->mask = 0; /* nothing to watch: no need to join the set yet */
        return 0;
    }
    /* Interest dropping to nothing keeps the entry (events 0): a stream
     * that pauses and resumes costs one MOD each way, not a DEL and ADD. */
    struct epoll_event ev = {.events = 0, .data.ptr = p};
    if (mask & TW__POLL_IN)
        ev.events |= EPOLLIN;
    if (mask & TW__POLL_OUT)
        ev.events |= EPOLLOUT;
    if (mask & TW__POLL_HUP)
        ev.events |= EPOLLRDHUP;
    if (epoll_ctl(r->poller->epfd, p->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, p->fd, &ev) < 0)
        return -errno;
    p->added = 1;
    p->mask = (uint8_t)mask;
    return 0;
}

void tw__poll_remove(tw_reactor *r, tw__pollable *p)
{
    if (p->added)
        epoll_ctl(r->poller->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    p->added = 0;
    p->mask = 0;
}

#endif
