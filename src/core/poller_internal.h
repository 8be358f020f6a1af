/* SPDX-License-Identifier: MIT */
/*
 * The readiness backend behind stream connections: how a reactor learns that
 * a connected socket can be read or written.
 *
 * On Linux every reactor keeps one epoll set of its own for its streams and
 * hands libevent only that set's descriptor, as one persistent read event. A
 * connection then costs the kernel's epoll entry and the few bytes of a
 * tw__pollable, instead of a struct event plus libevent's per-descriptor
 * map entries. Timers, signals, listeners, UDP, DNS and embedding stay on
 * libevent. Elsewhere each stream gets a libevent event of its own.
 *
 * configure picks the backend (--with-poller: epoll where sys/epoll.h
 * exists, unless libevent is asked for); poller_epoll.c and poller_event.c
 * are both built, and only the chosen one (TW_POLLER_EPOLL) has a body.
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
 * still learns that its peer reset. */
enum { TW__POLL_IN = 1, TW__POLL_OUT = 2, TW__POLL_HUP = 4 };

/* One descriptor watched by the poller; embedded in its owner. */
typedef struct tw__pollable {
#ifndef TW_POLLER_EPOLL
    struct event ev; /* assigned on first registration */
    tw_reactor *r;   /* whose stream_busy the dispatch raises */
#endif
    int fd;
    uint8_t mask;  /* TW__POLL_* registered now */
    uint8_t added; /* known to the backend (in the epoll set, or ev assigned) */
} tw__pollable;

/* Make @p r's poller state, with the reactor. @return 0 or a negated errno. */
int tw__poller_init(tw_reactor *r);

/* Release @p r's poller state; every pollable must be removed already. */
void tw__poller_free(tw_reactor *r);

/* Watch @p p (whose fd is set) for exactly @p mask, which may be 0.
 * @return 0 or a negated errno (the owner then closes @p p). */
int tw__poll_set(tw_reactor *r, tw__pollable *p, int mask);

/* Stop watching @p p, before its descriptor is closed. Readiness already
 * collected for it is dropped, so @p p may be freed once the current
 * dispatch is over (r->stream_busy is 0). */
void tw__poll_remove(tw_reactor *r, tw__pollable *p);

/* stream.c: @p p is ready for @p what (TW__POLL_*, within its mask). */
void tw__stream_ready(tw__pollable *p, int what);

/* stream.c: free the streams that closed while r->stream_busy was set. */
void tw__stream_reap(tw_reactor *r);

#endif
