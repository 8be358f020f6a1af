/* SPDX-License-Identifier: MIT */
/*
 * The portable backend (--with-poller=libevent, and wherever there is no
 * epoll: kqueue on the BSDs and macOS, poll): each tw__io embeds a libevent
 * event of its own, assigned on its first registration.
 *
 * libevent takes an event off its active queue when the event is deleted,
 * so no later dispatch reaches a stopped io. A callback may still use its
 * owner after closing it, so, as with the epoll backend, the dispatch is
 * held (tw__poller_hold) and an io released meanwhile is freed after it.
 *
 * A stream that is not reading still wants to hear its peer leave
 * (TW__POLL_HUP alone). libevent cannot say that: EV_CLOSED is only the
 * peer's FIN, only on its epoll backend, and a reset (EPOLLHUP|EPOLLERR)
 * comes as EV_READ|EV_WRITE, which a level-triggered read would also report
 * for every unread byte, waking the loop without end. So the io is watched
 * edge-triggered for reading, which wakes the loop once per arrival (data,
 * FIN or reset), and a poll() of the descriptor, which consumes nothing,
 * tells a hangup (POLLERR, POLLHUP, or POLLRDHUP for the FIN where the
 * system has it, as Linux does) from data. Where libevent's backend cannot
 * trigger on edges (select, poll), a paused stream hears its peer only once
 * it reads again. While the stream is flushing it watches for writing
 * instead: a reset fails the next write.
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
 * FIN; reads nothing, so the error stays for the owner to collect. */
static int hung_up(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP | POLLRDHUP)) != 0;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    tw__io *io = arg;
    int ready = 0;
    if (what & EV_READ)
        ready |= TW__POLL_IN;
    if (what & EV_WRITE)
        ready |= TW__POLL_OUT;
    ready &= io->mask;
    if (ready == 0 && (io->mask & TW__POLL_HUP) && hung_up((int)fd))
        ready = TW__POLL_HUP;
    if (ready == 0)
        return;
    tw_reactor *r = io->r;
    tw__poller_hold(r);
    io->cb(io, ready);
    tw__poller_unhold(r);
}

int tw__backend_init(tw_reactor *r)
{
    r->poller->backend = NULL; /* each io carries its own event */
    return 0;
}

void tw__backend_free(tw_reactor *r)
{
    (void)r;
}

int tw__io_watch(tw_reactor *r, tw__io *io, int mask)
{
    if (io->added && mask == io->mask)
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
    if (io->added)
        event_del(&io->ev);
    event_assign(&io->ev, r->base, io->fd, want | EV_PERSIST, on_ready, io);
    io->r = r;
    io->added = 1;
    io->mask = 0;
    /* libevent's epoll backend keeps epoll_ctl's errno: EPERM names a
     * descriptor that cannot be polled (a regular file, /dev/null), which
     * the owner serves as always ready, as with the epoll poller. */
    if (want != 0 && event_add(&io->ev, NULL) < 0)
        return errno == EPERM ? -EPERM : -ENOMEM;
    io->mask = (uint8_t)mask;
    return 0;
}

void tw__io_stop(tw_reactor *r, tw__io *io)
{
    (void)r;
    if (io->added)
        event_del(&io->ev);
    io->added = 0;
    io->mask = 0;
}

#endif
