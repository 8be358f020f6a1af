/* SPDX-License-Identifier: MIT */
/*
 * What both poller backends share (poller_internal.h): the kick list that
 * runs deferred work from the loop, and the dispatch count that holds back
 * the free of a released handle while a dispatch may still point at it.
 *
 * Kicks are run by one libevent event per reactor, made active while the
 * list is not empty. The list is taken whole, so an io kicked again by its
 * own callback waits for the next run (which that kick already asked for)
 * and a handle that keeps kicking itself cannot starve the loop.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <event2/event.h>

#include "core/poller_internal.h"

/* tw__io.state bits. */
enum { KICKED = 1, RELEASED = 2 };

/* Leave @p io to be freed once the dispatches under way are over. */
static void bury(struct tw__poller *pl, tw__io *io)
{
    io->next = pl->dead;
    pl->dead = io;
}

static void reap(struct tw__poller *pl)
{
    while (pl->dead != NULL) {
        tw__io *io = pl->dead;
        pl->dead = io->next;
        io->cb(io, TW__IO_FREE);
    }
}

void tw__poller_hold(tw_reactor *r)
{
    r->poller->busy++;
    tw__enter(r); /* the handle may be freed inside; the reactor may not */
}

void tw__poller_unhold(tw_reactor *r)
{
    /* Leaving the dispatch runs what waits for its end (the batch of
     * writes, tw__leave()), which may still use handles released in it:
     * they are freed after. */
    tw__leave(r);
    struct tw__poller *pl = r->poller;
    if (--pl->busy == 0)
        reap(pl);
}

/* What one io's callback wrote leaves when that callback returns, not when
 * the whole run of ready descriptors is done: a wakeup that brings many
 * connections would otherwise hold the first one's answer while the
 * others are served (with TLS handshakes, each a costly signature, the
 * first client waited for all of them, and client and server took turns
 * idling). Writes inside one callback still leave together; a run nested
 * in some other dispatch (depth > 1) leaves its writes to that one. */
void tw__poller_io_done(tw_reactor *r)
{
    if (r->depth == 1 && (r->batch != NULL || r->held_writes.head != NULL))
        tw__flush_writes(r);
}

int tw__poller_busy(const tw_reactor *r)
{
    return r->poller != NULL && r->poller->busy > 0;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tw_reactor *r = arg;
    struct tw__poller *pl = r->poller;
    tw__io *io = pl->kick_head;
    pl->kick_head = pl->kick_tail = NULL;
    tw__poller_hold(r);
    while (io != NULL) {
        tw__io *next = io->next;
        io->next = NULL;
        io->state &= (uint8_t)~KICKED;
        if (io->state & RELEASED) {
            bury(pl, io); /* released while it waited: its free was left to us */
        } else {
            io->cb(io, TW__IO_KICK);
            tw__poller_io_done(r);
        }
        io = next;
    }
    tw__poller_unhold(r);
}

void tw__io_init(tw__io *io, int fd, tw__io_fn cb)
{
    io->cb = cb;
    io->next = NULL;
    io->fd = fd;
    io->mask = 0;
    io->added = 0;
    io->state = 0;
}

void tw__io_kick(tw_reactor *r, tw__io *io)
{
    if (io->state & (KICKED | RELEASED))
        return;
    struct tw__poller *pl = r->poller;
    io->state |= KICKED;
    io->next = NULL;
    if (pl->kick_tail != NULL) {
        pl->kick_tail->next = io;
    } else {
        pl->kick_head = io;
        event_active(pl->kick_ev, EV_WRITE, 1); /* a non-empty list is active */
    }
    pl->kick_tail = io;
}

int tw__io_kick_pending(const tw__io *io)
{
    return (io->state & KICKED) != 0;
}

void tw__io_release(tw_reactor *r, tw__io *io)
{
    struct tw__poller *pl = r->poller;
    io->state |= RELEASED;
    if (io->state & KICKED)
        return; /* the kick run frees it when it comes to it */
    if (pl->busy > 0) {
        bury(pl, io);
        return;
    }
    io->cb(io, TW__IO_FREE);
}

int tw__poller_init(tw_reactor *r)
{
    struct tw__poller *pl = calloc(1, sizeof *pl);
    if (pl == NULL)
        return -ENOMEM;
    r->poller = pl;
    if ((pl->kick_ev = event_new(r->base, -1, 0, on_kick, r)) == NULL)
        return -ENOMEM; /* tw__poller_free() takes what was made */
    return tw__backend_init(r);
}

void tw__poller_free(tw_reactor *r)
{
    struct tw__poller *pl = r->poller;
    if (pl == NULL)
        return;
    /* Kicks that will not run now: the released wait to be freed, the
     * others belong to owners that are still there. */
    tw__io *io = pl->kick_head;
    while (io != NULL) {
        tw__io *next = io->next;
        io->next = NULL;
        io->state &= (uint8_t)~KICKED;
        if (io->state & RELEASED)
            bury(pl, io);
        io = next;
    }
    pl->kick_head = pl->kick_tail = NULL;
    reap(pl);
    if (pl->kick_ev != NULL)
        event_free(pl->kick_ev);
    tw__backend_free(r);
    free(pl);
    r->poller = NULL;
}
