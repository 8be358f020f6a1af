/* SPDX-License-Identifier: MIT */
/*
 * The recording protocol: see recorder.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/fd_internal.h"
#include "recorder.h"
#include "testutil.h"

typedef struct {
    tw_protocol base;
    rec_factory *rf;
} rec_protocol;

static void note(rec_factory *rf, int ev)
{
    if (rf->nevents < 64)
        rf->events[rf->nevents++] = ev;
}

static void rec_made(tw_protocol *p)
{
    note(((rec_protocol *)p)->rf, EV_MADE);
}

static void rec_data(tw_protocol *p, const void *data, size_t len)
{
    (void)data;
    rec_factory *rf = ((rec_protocol *)p)->rf;
    if (rf->nevents == 0 || rf->events[rf->nevents - 1] != EV_DATA)
        note(rf, EV_DATA);
    rf->received += len;
    if (len > rf->max_chunk)
        rf->max_chunk = len;
    if (rf->close_in_data) {
        tw_transport_lose_connection(p->transport);
        /* Still usable inside the callback: the close happens later, and
         * writes are taken until then, as Twisted takes them. */
        ck_assert_int_eq(tw_transport_write(p->transport, "x", 1), 0);
    }
    if (rf->abort_in_data)
        tw_transport_abort_connection(p->transport);
}

static void rec_lost(tw_protocol *p, const tw_failure *reason)
{
    rec_factory *rf = ((rec_protocol *)p)->rf;
    note(rf, EV_LOST);
    rf->lost_code = tw_failure_code(reason);
    tw_failure_format(reason, rf->lost_message, sizeof rf->lost_message);
}

static void rec_read_lost(tw_protocol *p)
{
    note(((rec_protocol *)p)->rf, EV_READ_LOST);
}

static void rec_write_lost(tw_protocol *p)
{
    note(((rec_protocol *)p)->rf, EV_WRITE_LOST);
}

static void rec_pause(tw_protocol *p)
{
    rec_factory *rf = ((rec_protocol *)p)->rf;
    note(rf, EV_PAUSE);
    rf->pauses++;
}

static void rec_resume(tw_protocol *p)
{
    rec_factory *rf = ((rec_protocol *)p)->rf;
    note(rf, EV_RESUME);
    rf->resumes++;
}

static void rec_destroy(tw_protocol *p)
{
    rec_factory *rf = ((rec_protocol *)p)->rf;
    note(rf, EV_DESTROY);
    rf->destroyed++;
    if (rf->last == p)
        rf->last = NULL;
    free(p);
}

static const tw_protocol_ops rec_ops = {
    .connection_made = rec_made,
    .data_received = rec_data,
    .connection_lost = rec_lost,
    .write_connection_lost = rec_write_lost,
    .pause_producing = rec_pause,
    .resume_producing = rec_resume,
    .destroy = rec_destroy,
};

static const tw_protocol_ops rec_half_close_ops = {
    .connection_made = rec_made,
    .data_received = rec_data,
    .connection_lost = rec_lost,
    .read_connection_lost = rec_read_lost,
    .write_connection_lost = rec_write_lost,
    .pause_producing = rec_pause,
    .resume_producing = rec_resume,
    .destroy = rec_destroy,
};

static tw_protocol *rec_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    rec_factory *rf = (rec_factory *)f;
    if (rf->refuse)
        return NULL;
    rec_protocol *p = calloc(1, sizeof *p);
    p->base.ops = rf->half_close ? &rec_half_close_ops : &rec_ops;
    p->rf = rf;
    rf->built++;
    rf->last = &p->base;
    return &p->base;
}

static void rec_start(tw_factory *f)
{
    ((rec_factory *)f)->starts++;
}

static void rec_stop(tw_factory *f)
{
    ((rec_factory *)f)->stops++;
}

static const tw_factory_ops rec_factory_ops = {
    .build_protocol = rec_build,
    .start_factory = rec_start,
    .stop_factory = rec_stop,
};

void rec_init(rec_factory *rf, tw_reactor *r)
{
    memset(rf, 0, sizeof *rf);
    tw_factory_init(&rf->base, &rec_factory_ops);
    rf->r = r;
}

void spin(tw_reactor *r, const int *done, int ms)
{
    long long deadline = tu_now_ms() + ms;
    while (!*done && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.005);
}

void spin_ms(tw_reactor *r, int ms)
{
    int never = 0;
    spin(r, &never, ms);
}

int adopt_pair(tw_reactor *r, rec_factory *rf, int *peer)
{
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    *peer = sv[1];
    return tw_transport_adopt(r, sv[0], &rf->base);
}

tw_listener *listen_on(tw_reactor *r, const char *host, rec_factory *rf,
                       const tw_listen_options *opts, int *port)
{
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, host, 0), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, opts, &rf->base, &l), 0);
    tw_address bound;
    tw_listener_address(l, &bound);
    *port = tw_address_port(&bound);
    ck_assert_int_gt(*port, 0);
    return l;
}

static void cf_failed(tw_factory *f, const tw_failure *reason)
{
    tu_client_factory *cf = (tu_client_factory *)f;
    cf->failed++;
    cf->failed_code = tw_failure_code(reason);
    tw_failure_format(reason, cf->failed_message, sizeof cf->failed_message);
}

static void cf_lost(tw_factory *f, const tw_failure *reason)
{
    tu_client_factory *cf = (tu_client_factory *)f;
    cf->lost++;
    cf->lost_code = tw_failure_code(reason);
    cf->protocol_lost_first = cf->rf.destroyed == 1;
}

void tu_client_init(tu_client_factory *cf, tw_reactor *r)
{
    memset(cf, 0, sizeof *cf);
    rec_init(&cf->rf, r);
    /* The recorder's ops with the client hooks added: a copy of our own. */
    cf->ops = *cf->rf.base.ops;
    cf->ops.client_connection_failed = cf_failed;
    cf->ops.client_connection_lost = cf_lost;
    cf->rf.base.ops = &cf->ops;
}

void tu_out_cb(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tu_outcome *o = arg;
    o->fired = 1;
    o->ok = 1;
    o->value = tw_result_take_value(res, &o->free_fn);
    if (o->watch_rf != NULL)
        o->made_before = o->watch_rf->nevents > 0 && o->watch_rf->events[0] == EV_MADE;
}

void tu_out_eb(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tu_outcome *o = arg;
    tw_failure *f = tw_result_take_failure(res);
    o->fired = 1;
    o->ok = 0;
    o->code = tw_failure_code(f);
    tw_failure_format(f, o->message, sizeof o->message);
    tw_failure_unref(f);
}

void tu_watch_made(tw_deferred *d, tu_outcome *o, const rec_factory *rf)
{
    memset(o, 0, sizeof *o);
    o->watch_rf = rf;
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, o), 0);
    tw_deferred_unref(d);
}

void tu_watch(tw_deferred *d, tu_outcome *o)
{
    tu_watch_made(d, o, NULL);
}
