/* SPDX-License-Identifier: MIT */
/*
 * The bandwidth throttle (Twisted's ThrottlingFactory), by token buckets:
 * one per direction for each connection and one per direction for the
 * whole factory. A bucket holds at most a tenth of a second's worth of
 * bytes; every byte read or written is taken from it, and it may go
 * negative by what a read or a write took beyond it. While a bucket is
 * negative its side is held: reads stop (for the factory's bucket, on every
 * connection), writers are paused; a timer ends the hold at the moment the
 * bucket refills to zero, so the long-run rate is the limit exactly and any
 * stretch of time moves at most the bucket plus one read or write more.
 * Twisted checks once a second instead, which lets a second's worth burst.
 */
#include "config.h"

#include <twine/reactor.h>

#include "policy/policy_internal.h"

/* The burst a bucket allows, in seconds of its rate. */
#define BUCKET_SECONDS 0.1

static void bucket_init(tw__bucket *b, double rate, double now)
{
    b->rate = rate;
    b->level = rate * BUCKET_SECONDS;
    b->last = now;
}

/* Take @p bytes. @return how long, in seconds, until the bucket is back to
 * zero: 0 when it did not go negative. */
static double bucket_take(tw__bucket *b, size_t bytes, double now)
{
    double cap = b->rate * BUCKET_SECONDS;
    b->level += (now - b->last) * b->rate;
    if (b->level > cap)
        b->level = cap;
    b->last = now;
    b->level -= (double)bytes;
    return b->level < 0 ? -b->level / b->rate : 0;
}

static double now_of(const tw__policy_factory *f)
{
    return tw_reactor_seconds(f->reactor);
}

/* Hold until @p wait seconds from now: start the timer, or push it later.
 * @return nonzero while a timer holds; without memory for one the side
 * stays free, since better unthrottled than stuck. */
static int hold(tw_reactor *r, tw_call **call, double wait, tw_call_fn fn, void *arg)
{
    if (*call != NULL && tw_call_active(*call)) {
        if (tw_call_time(*call) < tw_reactor_seconds(r) + wait)
            tw_call_reset(*call, wait);
        return 1;
    }
    tw_call_release(*call); /* dropped by a reactor stop, if anything */
    *call = NULL;
    if (tw_reactor_call_later(r, wait, fn, arg, call) < 0) {
        *call = NULL;
        return 0;
    }
    return 1;
}

static void end_hold(tw_call **call)
{
    if (*call != NULL) {
        tw_call_cancel(*call);
        tw_call_release(*call);
        *call = NULL;
    }
}

/* ------------------------------------------------------------ one connection */

static void conn_reads_free(void *arg)
{
    tw__policy_conn *c = arg;
    end_hold(&c->in_resume);
    c->flags &= ~(unsigned)TW__PC_READ_THROTTLED;
    tw__policy_update_read(c);
}

static void conn_writes_free(void *arg)
{
    tw__policy_conn *c = arg;
    end_hold(&c->out_resume);
    c->flags &= ~(unsigned)TW__PC_WRITE_THROTTLED;
    tw__policy_update_write(c);
}

void tw__throttle_conn_init(tw__policy_conn *c)
{
    double now = now_of(c->f);
    bucket_init(&c->in, c->f->opts.connection_read_limit, now);
    bucket_init(&c->out, c->f->opts.connection_write_limit, now);
}

void tw__throttle_conn_done(tw__policy_conn *c)
{
    end_hold(&c->in_resume);
    end_hold(&c->out_resume);
}

/* ------------------------------------------------------------ the whole factory */

static void factory_reads_free(void *arg)
{
    tw__policy_factory *f = arg;
    end_hold(&f->in_resume);
    for (tw__link *n = f->conns.head, *next; n != NULL; n = next) {
        next = n->next; /* a resumed protocol may close, never another */
        tw__policy_update_read(tw_container_of(n, tw__policy_conn, link));
    }
}

static void factory_writes_free(void *arg)
{
    tw__policy_factory *f = arg;
    end_hold(&f->out_resume);
    /* Each resumed writer may write enough to hold the factory again,
     * which pauses the rest at once: the walk then only confirms it. */
    for (tw__link *n = f->conns.head, *next; n != NULL; n = next) {
        next = n->next;
        tw__policy_update_write(tw_container_of(n, tw__policy_conn, link));
    }
}

void tw__throttle_factory_init(tw__policy_factory *f)
{
    double now = now_of(f);
    bucket_init(&f->in, f->opts.read_limit, now);
    bucket_init(&f->out, f->opts.write_limit, now);
}

void tw__throttle_factory_done(tw__policy_factory *f)
{
    end_hold(&f->in_resume);
    end_hold(&f->out_resume);
}

/* ------------------------------------------------------------ counting */

/* @p c used up the factory's bucket: it is resumed last next time. The
 * first resumed is the first to read or write, and would otherwise take
 * the whole bucket every time. */
static void to_the_back(tw__policy_factory *f, tw__policy_conn *c)
{
    tw__list_remove(&f->conns, &c->link);
    tw__list_append(&f->conns, &c->link);
}

void tw__throttle_read(tw__policy_conn *c, size_t bytes)
{
    tw__policy_factory *f = c->f;
    double now = now_of(f), wait;
    if (c->flags & TW__PC_LOST)
        return;
    if (f->in.rate > 0 && (wait = bucket_take(&f->in, bytes, now)) > 0) {
        to_the_back(f, c);
        hold(f->reactor, &f->in_resume, wait, factory_reads_free, f);
        for (tw__link *n = f->conns.head; n != NULL; n = n->next)
            tw__policy_update_read(tw_container_of(n, tw__policy_conn, link));
    }
    if (c->in.rate > 0 && (wait = bucket_take(&c->in, bytes, now)) > 0) {
        if (hold(f->reactor, &c->in_resume, wait, conn_reads_free, c))
            c->flags |= TW__PC_READ_THROTTLED;
        tw__policy_update_read(c);
    }
}

void tw__throttle_wrote(tw__policy_conn *c, size_t bytes)
{
    tw__policy_factory *f = c->f;
    double now = now_of(f), wait;
    if (c->flags & TW__PC_LOST)
        return;
    if (f->out.rate > 0 && (wait = bucket_take(&f->out, bytes, now)) > 0) {
        to_the_back(f, c);
        hold(f->reactor, &f->out_resume, wait, factory_writes_free, f);
        for (tw__link *n = f->conns.head, *next; n != NULL; n = next) {
            next = n->next;
            tw__policy_update_write(tw_container_of(n, tw__policy_conn, link));
        }
    }
    if (c->out.rate > 0 && (wait = bucket_take(&c->out, bytes, now)) > 0) {
        if (hold(f->reactor, &c->out_resume, wait, conn_writes_free, c))
            c->flags |= TW__PC_WRITE_THROTTLED;
        tw__policy_update_write(c);
    }
}

int tw__throttle_reads_held(const tw__policy_conn *c)
{
    return (c->flags & TW__PC_READ_THROTTLED) ||
           (c->f->in_resume != NULL && tw_call_active(c->f->in_resume));
}

int tw__throttle_writes_held(const tw__policy_conn *c)
{
    return (c->flags & TW__PC_WRITE_THROTTLED) ||
           (c->f->out_resume != NULL && tw_call_active(c->f->out_resume));
}
