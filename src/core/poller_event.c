/* SPDX-License-Identifier: MIT */
/*
 * The portable backend for streams (--with-poller=libevent, and wherever
 * there is no epoll: kqueue on the BSDs and macOS, poll): each stream
 * embeds a libevent event of its own, assigned on its first registration.
 *
 * libevent takes an event off its active queue when the event is deleted,
 * so no later dispatch reaches a removed stream. The stream's own dispatch
 * may still use it after closing it, so, as the epoll backend does, the
 * reactor's stream_busy count is raised around it and a stream closed
 * meanwhile is freed by tw__stream_reap() once it returned.
 *
 * A stream that is not reading still wants to hear its peer leave
 * (TW__POLL_HUP alone). libevent cannot say that: EV_CLOSED is only the
 * peer's FIN, only on its epoll backend, and a reset (EPOLLHUP|EPOLLERR)
 * comes as EV_READ|EV_WRITE, which a level-triggered read would also report
 * for every unread byte, waking the loop without end. So the stream is
 * watched edge-triggered for reading, which wakes the loop once per arrival
 * (data, FIN or reset), and a poll() of the descriptor, which consumes
 * nothing, tells a hangup (POLLERR, POLLHUP, or POLLRDHUP for the FIN where
 * the system has it, as Linux does) from data. Where libevent's backend
 * cannot trigger on edges (select, poll), a paused stream hears its peer
 * only once it reads again. While the stream is flushing it watches for
 * writing instead: a reset fails the next write.
 */
#include "config.h"

/* Built everywhere; only the backend configure chose has a body. */
#ifndef TW_POLLER_EPOLL

#include <errno.h>
#include <poll.h>
#include <event2/event.h>

#include "core/poller_internal.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0 /* a FIN alone is then not told from data */
#endif

/* Whether the peer of @p fd has reset or (where POLLRDHUP exists) sent its
 * FIN; reads nothing, so the error stays for the stream to collect. */
static int hung_up(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP | POLLRDHUP)) != 0;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    tw__pollable *p = arg;
    int ready = 0;
    if (what & EV_READ)
        ready |= TW__POLL_IN;
    if (what & EV_WRITE)
        ready |= TW__POLL_OUT;
    ready &= p->mask;
    if (ready == 0 && (p->mask & TW__POLL_HUP) && hung_up((int)fd))
        ready = TW__POLL_HUP;
    if (ready == 0)
        return;
    tw_reactor *r = p->r;
    r->stream_busy++;
    tw__stream_ready(p, ready);
    r->stream_busy--;
    tw__stream_reap(r);
}

int tw__poller_init(tw_reactor *r)
{
    (void)r;
    return 0;
}

void tw__poller_free(tw_reactor *r)
{
    (void)r;
}

int tw__poll_set(tw_reactor *r, tw__pollable *p, int mask)
{
    if (p->added && mask == p->mask)
        return 0;
    short want = 0;
    if (mask & TW__POLL_IN)
        want |= EV_READ;
    if (mask & TW__POLL_OUT)
        want |= EV_WRITE;
    /* A hangup alone: see the comment at the top. */
    if (mask == TW__POLL_HUP && (event_base_get_features(r->base) & EV_FEATURE_ET))
        want |= EV_READ | EV_ET;
    /* An event's interest is fixed once assigned: take it out, reassign. */
    if (p->added)
        event_del(&p->ev);
    event_assign(&p->ev, r->base, p->fd, want | EV_PERSIST, on_ready, p);
    p->r = r;
    p->added = 1;
    p->mask = 0;
    if (want != 0 && event_add(&p->ev, NULL) < 0)
        return -ENOMEM;
    p->mask = (uint8_t)mask;
    return 0;
}

void tw__poll_remove(tw_reactor *r, tw__pollable *p)
{
    (void)r;
    if (p->added)
        event_del(&p->ev);
    p->added = 0;
    p->mask = 0;
}

#endif
