/* SPDX-License-Identifier: MIT */
/*
 * The poller: how a reactor learns that a descriptor can be read or
 * written, for every kind of handle (streams, listeners, UDP ports, the
 * thread wake-up). As in libuv's uv__io_t, the watched descriptor, a
 * tw__io embedded in its owner, carries the owner's callback, so the
 * poller knows no handle types: net registers with core, never the other
 * way round.
 *
 * Two backends (configure --with-poller). On Linux every reactor keeps one
 * epoll set of its own and hands libevent only that set's descriptor, as
 * one persistent read event: a connection then costs the kernel's epoll
 * entry and the few bytes of a tw__io, instead of a struct event plus
 * libevent's per-descriptor map entries. Elsewhere (and with
 * --with-poller=libevent) each tw__io embeds a libevent event of its own.
 * poller_epoll.c and poller_event.c are both built; only the chosen one
 * (TW_POLLER_EPOLL) has a body. poller.c holds what both share.
 *
 * Besides readiness the poller offers two facilities any handle can use:
 *   - deferred work (tw__io_kick): run the owner's callback from the loop
 *     soon, outside the call that asked, e.g. to close a stream after its
 *     protocol's data_received returned;
 *   - deferred free (tw__io_release): the owner is closed, but a dispatch
 *     under way may still hold a pointer to it; the poller calls it back
 *     once to be freed when none can (at once when no dispatch runs).
 */
#ifndef TWINE_POLLER_INTERNAL_H
#define TWINE_POLLER_INTERNAL_H

#include <stdint.h>
#ifndef TW_POLLER_EPOLL
#include <event2/event_struct.h>
#endif

#include "core/reactor_internal.h"

/* Interest and readiness bits. TW__POLL_HUP as interest asks to hear the
 * peer's FIN while not reading; as readiness it reports an error, a hangup
 * or that FIN outside the other interest, so a stream that watches nothing
 * still learns that its peer reset. The callback gets TW__IO_KICK alone for
 * a kick, and TW__IO_FREE alone, once, after tw__io_release(). */
enum {
    TW__POLL_IN = 1,
    TW__POLL_OUT = 2,
    TW__POLL_HUP = 4,
    TW__IO_KICK = 8,
    TW__IO_FREE = 16
};

typedef struct tw__io tw__io;

/* What the poller calls: @p what is readiness (TW__POLL_*, within the
 * mask), TW__IO_KICK or TW__IO_FREE. */
typedef void (*tw__io_fn)(tw__io *io, int what);

/* One descriptor watched by the poller; embedded in its owner, which sets
 * it up with tw__io_init(). The owner's memory must stay valid until the
 * callback got TW__IO_FREE, or, for an owner that never kicks nor
 * releases, until tw__io_stop() returned. */
struct tw__io {
#ifndef TW_POLLER_EPOLL
    struct event ev; /* assigned on first registration */
    tw_reactor *r;   /* whose dispatch bookkeeping the event raises */
#endif
    tw__io_fn cb;
    struct tw__io *next; /* the poller's kick list, then its free list */
    int fd;
    uint8_t mask;  /* TW__POLL_* registered now */
    uint8_t added; /* known to the backend (in the epoll set, or ev assigned) */
    uint8_t state; /* the poller's: kicked, released (poller.c) */
};

/* A reactor's poller (r->poller): the backend's state and the shared
 * bookkeeping of poller.c. */
struct tw__poller {
    struct tw__backend *backend;     /* the backend's own, or NULL */
    tw__io *kick_head, *kick_tail;   /* kicked, FIFO */
    struct event *kick_ev;           /* active while the kick list is not empty */
    tw__io *dead;                    /* released during a dispatch: freed after */
    int busy;                        /* dispatches under way */
};

/* Make @p r's poller, first of all the reactor's parts: the others watch
 * descriptors through it. @return 0 or a negated errno. */
int tw__poller_init(tw_reactor *r);

/* Release @p r's poller, last: every tw__io must be stopped, and those
 * released or kicked get TW__IO_FREE here if they have not yet. */
void tw__poller_free(tw_reactor *r);

/* Whether a dispatch of @p r's poller is under way (tw_reactor_free() is
 * refused then). */
int tw__poller_busy(const tw_reactor *r);

/* Set up @p io to watch @p fd for its owner, calling @p cb. Watches
 * nothing until tw__io_watch(). */
void tw__io_init(tw__io *io, int fd, tw__io_fn cb);

/* Watch @p io for exactly @p mask, which may be 0 (the registration stays,
 * so watching again is cheap). @return 0 or a negated errno (the owner
 * then closes @p io). */
int tw__io_watch(tw_reactor *r, tw__io *io, int mask);

/* Stop watching @p io, before its descriptor is closed. Readiness already
 * collected for it is dropped: the callback hears no more of it, except
 * for a kick made before and TW__IO_FREE after tw__io_release(). */
void tw__io_stop(tw_reactor *r, tw__io *io);

/* Call back @p io with TW__IO_KICK from the loop soon (once, however often
 * it is kicked before that), in the order kicks were made. */
void tw__io_kick(tw_reactor *r, tw__io *io);

/* Whether a kick of @p io waits to run. The loop runs kicks before it
 * waits for descriptors again (libevent runs an event made active inside
 * its dispatch in the same pass). */
int tw__io_kick_pending(const tw__io *io);

/* The owner of @p io is closed (its descriptor stopped and closed): call
 * back TW__IO_FREE, once, when no dispatch can hold a pointer to it any
 * more -- now, when none runs and @p io is not waiting for its kick. */
void tw__io_release(tw_reactor *r, tw__io *io);

/* For the backends (poller_epoll.c, poller_event.c) and poller.c only. */

/* Make and free the backend's part of @p r's poller. */
int tw__backend_init(tw_reactor *r);
void tw__backend_free(tw_reactor *r);

/* A dispatch begins and ends: while one runs, released ios wait, and
 * tw_reactor_free() is refused. Dispatches nest. Also for fdwatch.c, which
 * dispatches the watches of unpollable descriptors from a timer. */
void tw__poller_hold(tw_reactor *r);
void tw__poller_unhold(tw_reactor *r);
/* Between two io callbacks of one held run: send what the last one wrote. */
void tw__poller_io_done(tw_reactor *r);

#endif
