/* SPDX-License-Identifier: MIT */
/*
 * Who is paused and resumed as a pipe-like transport's queue crosses its
 * watermarks (flow_internal.h): the same rules as the stream transport's,
 * for the transports whose queue is a write half (pipe_internal.h).
 */
#include "config.h"

#include "net/flow_internal.h"

void tw__flow_init(tw__flow *fl, void (*pause_owner)(tw__flow *), void (*resume_owner)(tw__flow *))
{
    fl->high = TW_WRITE_HIGH_WATERMARK;
    fl->low = TW_WRITE_LOW_WATERMARK;
    fl->producer = NULL;
    fl->streaming = 0;
    fl->owner_paused = fl->producer_paused = fl->pulled_wrote = 0;
    fl->pause_owner = pause_owner;
    fl->resume_owner = resume_owner;
}

void tw__flow_set_watermarks(tw__flow *fl, size_t high, size_t low)
{
    fl->high = high;
    fl->low = low > high ? high : low;
}

void tw__flow_grew(tw__flow *fl, size_t queued)
{
    fl->pulled_wrote = 1;
    if (queued <= fl->high)
        return;
    if (fl->producer == NULL && !fl->owner_paused) {
        fl->owner_paused = 1;
        fl->pause_owner(fl);
    }
    tw_producer *p = fl->producer;
    if (p != NULL && fl->streaming && !fl->producer_paused) {
        fl->producer_paused = 1;
        if (p->ops->pause_producing != NULL)
            p->ops->pause_producing(p);
    }
}

int tw__flow_drained(tw__flow *fl, size_t queued)
{
    if (queued > fl->low)
        return 0;
    if (fl->owner_paused) {
        fl->owner_paused = 0;
        fl->resume_owner(fl);
    }
    tw_producer *p = fl->producer;
    if (p != NULL && fl->producer_paused) {
        fl->producer_paused = 0;
        if (p->ops->resume_producing != NULL)
            p->ops->resume_producing(p);
    }
    p = fl->producer;
    if (queued > 0 || p == NULL || fl->streaming)
        return 0;
    fl->pulled_wrote = 0;
    if (p->ops->resume_producing != NULL)
        p->ops->resume_producing(p);
    return fl->pulled_wrote && fl->producer != NULL;
}

int tw__flow_register(tw__flow *fl, tw_producer *p, int streaming, size_t queued)
{
    if (fl->producer != NULL)
        return TW_ESTATE;
    fl->producer = p;
    fl->streaming = streaming != 0;
    fl->producer_paused = 0;
    if (streaming)
        tw__flow_grew(fl, queued);
    return 0;
}

void tw__flow_unregister(tw__flow *fl)
{
    fl->producer = NULL;
    fl->streaming = 0;
    fl->producer_paused = 0;
}

void tw__flow_stop(tw__flow *fl)
{
    tw_producer *p = fl->producer;
    tw__flow_unregister(fl);
    if (p != NULL && p->ops->stop_producing != NULL)
        p->ops->stop_producing(p);
}
