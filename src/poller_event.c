/* SPDX-License-Identifier: MIT */
/*
 * The portable backend for streams, where there is no epoll: each stream
 * embeds a libevent event of its own, assigned on its first registration.
 *
 * libevent takes an event off its active queue when the event is deleted,
 * so a stream may be freed at any time here and stream_busy is never raised.
 */
#include "config.h"

/* Built everywhere; only the backend configure chose has a body. */
#ifndef HAVE_SYS_EPOLL_H

#include <errno.h>
#include <event2/event.h>

#include "poller_internal.h"

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    tw__pollable *p = arg;
    int ready = 0;
    if (what & EV_READ)
        ready |= TW__POLL_IN;
    if (what & EV_WRITE)
        ready |= TW__POLL_OUT;
#ifdef EV_CLOSED
    if (what & EV_CLOSED)
        ready |= TW__POLL_HUP;
#endif
    ready &= p->mask;
    if (ready != 0)
        tw__stream_ready(p, ready);
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
#ifdef EV_CLOSED
    if (mask & TW__POLL_HUP)
        want |= EV_CLOSED; /* where the backend supports it */
#endif
    /* An event's interest is fixed once assigned: take it out, reassign. */
    if (p->added)
        event_del(&p->ev);
    event_assign(&p->ev, r->base, p->fd, want | EV_PERSIST, on_ready, p);
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
