/* SPDX-License-Identifier: MIT */
/*
 * Flow control of one output queue (flow.c), for the transports built on
 * the write half of pipe_internal.h: Twisted's rules for who is paused when
 * the queue crosses its watermarks. Without a registered producer the
 * owner (a protocol) is paused above the high mark and resumed at the low
 * one; with a streaming producer only that producer is; a pull producer is
 * asked for more each time the queue empties.
 */
#ifndef TWINE_FLOW_INTERNAL_H
#define TWINE_FLOW_INTERNAL_H

#include <stddef.h>
#include <twine/transport.h>

typedef struct tw__flow tw__flow;
struct tw__flow {
    size_t high, low;
    tw_producer *producer; /* borrowed while registered */
    int streaming;
    int owner_paused, producer_paused;
    int pulled_wrote; /* a pull producer wrote since it was asked */
    void (*pause_owner)(tw__flow *fl);
    void (*resume_owner)(tw__flow *fl);
};

/* Default watermarks, nothing registered. */
void tw__flow_init(tw__flow *fl, void (*pause_owner)(tw__flow *), void (*resume_owner)(tw__flow *));
void tw__flow_set_watermarks(tw__flow *fl, size_t high, size_t low);
/* The queue holds @p queued bytes after a write. */
void tw__flow_grew(tw__flow *fl, size_t queued);
/* The queue shrank to @p queued bytes. @return nonzero when a pull
 * producer was asked and wrote, so the owner should ask again from the
 * loop (what it wrote may have gone straight out). */
int tw__flow_drained(tw__flow *fl, size_t queued);
/* Register @p p (see tw_transport_register_producer). @return 0, or
 * TW_ESTATE when one is registered already. A pull producer's first pull
 * is the owner's to ask for, from the loop. */
int tw__flow_register(tw__flow *fl, tw_producer *p, int streaming, size_t queued);
void tw__flow_unregister(tw__flow *fl);
/* The connection ended: the producer hears stop_producing, once. */
void tw__flow_stop(tw__flow *fl);

#endif
