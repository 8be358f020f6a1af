/* SPDX-License-Identifier: MIT */
/*
 * The test kit users get with <twine/testing.h>: the string transport keeps
 * every promise of a stream transport (writes, closes, half-closes, flow
 * control, producers, addresses), the pump carries a conversation and its
 * closes in chunks of any size, the clock drives timed calls, looping calls
 * and deferred timeouts, and the result readers read a fired deferred and
 * refuse one that has no result.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <twine/testing.h>

/* ---------------------------------------------------------------- a protocol that records */

typedef struct {
    tw_protocol base;
    char got[512];
    size_t len;
    int made, lost, lost_code, read_lost, write_lost, paused, resumed;
    /* What to do when a callback runs. */
    const char *greeting;      /* written by connection_made */
    int echo;                  /* data_received writes back what it got */
    const char *reply_on_eof;  /* read_connection_lost writes it and closes */
} rec;

static void r_made(tw_protocol *p)
{
    rec *r = tw_container_of(p, rec, base);
    r->made++;
    if (r->greeting != NULL)
        tw_transport_write(p->transport, r->greeting, strlen(r->greeting));
}

static void r_data(tw_protocol *p, const void *data, size_t len)
{
    rec *r = tw_container_of(p, rec, base);
    if (r->len + len <= sizeof r->got) {
        memcpy(r->got + r->len, data, len);
        r->len += len;
    }
    if (r->echo)
        tw_transport_write(p->transport, data, len);
}

static void r_lost(tw_protocol *p, const tw_failure *reason)
{
    rec *r = tw_container_of(p, rec, base);
    r->lost++;
    r->lost_code = tw_failure_code(reason);
}

static void r_read_lost(tw_protocol *p)
{
    rec *r = tw_container_of(p, rec, base);
    r->read_lost++;
    if (r->reply_on_eof != NULL) {
        tw_transport_write(p->transport, r->reply_on_eof, strlen(r->reply_on_eof));
        tw_transport_lose_connection(p->transport);
    }
}

static void r_write_lost(tw_protocol *p)
{
    tw_container_of(p, rec, base)->write_lost++;
}

static void r_pause(tw_protocol *p)
{
    tw_container_of(p, rec, base)->paused++;
}

static void r_resume(tw_protocol *p)
{
    tw_container_of(p, rec, base)->resumed++;
}

static const tw_protocol_ops rec_ops = {
    .connection_made = r_made,
    .data_received = r_data,
    .connection_lost = r_lost,
    .write_connection_lost = r_write_lost,
    .pause_producing = r_pause,
    .resume_producing = r_resume,
};

/* The same, opted in to half-close. */
static const tw_protocol_ops half_ops = {
    .connection_made = r_made,
    .data_received = r_data,
    .connection_lost = r_lost,
    .read_connection_lost = r_read_lost,
    .write_connection_lost = r_write_lost,
};

static int got_is(const rec *r, const char *s)
{
    return r->len == strlen(s) && memcmp(r->got, s, r->len) == 0;
}

/* ---------------------------------------------------------------- string transport */

START_TEST(test_string_transport_records_writes_in_order)
{
    rec r = {.base = {.ops = &rec_ops}, .greeting = "hello "};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(r.made, 1);
    ck_assert_ptr_eq(r.base.transport, &t->base);
    struct iovec iov[2] = {{"wor", 3}, {"ld", 2}};
    ck_assert_int_eq(tw_transport_writev(&t->base, iov, 2), 0);
    ck_assert(tw_string_transport_output_is(t, "hello world"));
    ck_assert_uint_eq(t->writes, 2);
    tw_string_transport_clear_output(t);
    ck_assert(tw_string_transport_output_is(t, ""));
    ck_assert_int_eq(tw_transport_write(&t->base, "!", 1), 0);
    size_t len;
    const char *out = tw_string_transport_output(t, &len);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(out[0], '!');
    tw_string_transport_free(t);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.lost_code, TW_ECONNLOST);
}
END_TEST

START_TEST(test_string_transport_returns_the_write_error_the_test_sets)
{
    rec r = {.base = {.ops = &rec_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    t->write_error = -EPIPE;
    ck_assert_int_eq(tw_transport_write(&t->base, "x", 1), -EPIPE);
    ck_assert(tw_string_transport_output_is(t, ""));
    tw_string_transport_free(t);
}
END_TEST

START_TEST(test_lose_still_takes_writes_and_connection_lost_waits_for_run_close)
{
    rec r = {.base = {.ops = &rec_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    ck_assert_int_eq(tw_transport_disconnecting(&t->base), 0);
    tw_transport_lose_connection(&t->base);
    ck_assert_int_eq(t->lose_calls, 1);
    ck_assert_int_ne(tw_transport_disconnecting(&t->base), 0);
    /* as a stream sends them before its FIN */
    ck_assert_int_eq(tw_transport_write(&t->base, "late", 4), 0);
    ck_assert_uint_eq(t->out_len, 4);
    ck_assert_int_eq(r.lost, 0); /* the loop would deliver it later */
    tw_string_transport_feed_str(t, "ignored");
    ck_assert_uint_eq(r.len, 0);
    ck_assert_int_eq(tw_string_transport_run_close(t), 1);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.lost_code, TW_EDONE);
    ck_assert_int_eq(tw_string_transport_run_close(t), 0);
    ck_assert_int_eq(tw_transport_write(&t->base, "lost", 4), TW_ESTATE);
    tw_string_transport_free(t);
    ck_assert_int_eq(r.lost, 1);
}
END_TEST

START_TEST(test_abort_is_recorded_and_delivers_aborted)
{
    rec r = {.base = {.ops = &rec_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    tw_transport_abort_connection(&t->base);
    ck_assert_int_eq(t->abort_calls, 1);
    ck_assert_int_eq(t->lose_calls, 0);
    ck_assert_int_eq(tw_transport_write(&t->base, "late", 4), TW_ESTATE);
    ck_assert_int_eq(tw_string_transport_run_close(t), 1);
    ck_assert_int_eq(r.lost_code, TW_EABORTED);
    tw_string_transport_free(t);
}
END_TEST

typedef struct {
    tw_producer base;
    int paused, resumed, stopped;
    tw_transport *t; /* a pull producer writes here when asked */
} prod;

static void p_pause(tw_producer *p)
{
    tw_container_of(p, prod, base)->paused++;
}

static void p_resume(tw_producer *p)
{
    prod *pr = tw_container_of(p, prod, base);
    pr->resumed++;
    if (pr->t != NULL)
        tw_transport_write(pr->t, "piece", 5);
}

static void p_stop(tw_producer *p)
{
    tw_container_of(p, prod, base)->stopped++;
}

static const tw_producer_ops prod_ops = {p_pause, p_resume, p_stop};

START_TEST(test_lose_simulates_a_lost_connection_and_stops_the_producer)
{
    rec r = {.base = {.ops = &rec_ops}};
    prod pr = {.base = {.ops = &prod_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    ck_assert_int_eq(tw_transport_register_producer(&t->base, &pr.base, 1), 0);
    ck_assert_int_eq(tw_transport_register_producer(&t->base, &pr.base, 1), TW_ESTATE);
    tw_string_transport_lose(t, -ECONNRESET);
    ck_assert_int_eq(pr.stopped, 1);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.lost_code, -ECONNRESET);
    ck_assert_int_eq(tw_transport_write(&t->base, "x", 1), TW_ESTATE);
    tw_string_transport_feed_str(t, "after");
    ck_assert_uint_eq(r.len, 0);
    tw_string_transport_free(t);
    ck_assert_int_eq(r.lost, 1);
}
END_TEST

START_TEST(test_hold_mode_pauses_and_resumes_at_the_watermarks)
{
    rec r = {.base = {.ops = &rec_ops}};
    prod pr = {.base = {.ops = &prod_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    tw_transport_set_write_watermarks(&t->base, 100, 20);
    tw_string_transport_set_hold(t, 1);
    char buf[60] = {0};
    /* Without a registered producer, the protocol is paused and resumed. */
    tw_transport_write(&t->base, buf, sizeof buf);
    ck_assert_int_eq(r.paused, 0);
    tw_transport_write(&t->base, buf, sizeof buf); /* 120 > 100 */
    ck_assert_int_eq(r.paused, 1);
    tw_string_transport_drain(t, 100); /* 20: at the low watermark */
    ck_assert_int_eq(r.resumed, 1);
    /* With one, only the producer is, as in Twisted. */
    ck_assert_int_eq(tw_transport_register_producer(&t->base, &pr.base, 1), 0);
    tw_transport_write(&t->base, buf, sizeof buf);
    ck_assert_int_eq(pr.paused, 0);
    tw_transport_write(&t->base, buf, 40); /* 120 > 100 */
    ck_assert_int_eq(pr.paused, 1);
    ck_assert_int_eq(r.paused, 1);
    ck_assert_uint_eq(tw_transport_write_buffer_size(&t->base), 120);
    tw_string_transport_drain(t, 90); /* 30 left: still above 20 */
    ck_assert_int_eq(pr.resumed, 0);
    tw_string_transport_drain(t, 10); /* 20: at the low watermark */
    ck_assert_int_eq(pr.resumed, 1);
    ck_assert_int_eq(r.resumed, 1);
    ck_assert_uint_eq(tw_transport_write_buffer_size(&t->base), 20);
    tw_string_transport_set_hold(t, 0);
    ck_assert_uint_eq(t->queued, 0);
    tw_transport_unregister_producer(&t->base);
    tw_string_transport_free(t);
    ck_assert_int_eq(pr.stopped, 0); /* unregistered: never told */
}
END_TEST

START_TEST(test_a_pull_producer_is_asked_for_more_when_the_queue_empties)
{
    rec r = {.base = {.ops = &rec_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    prod pr = {.base = {.ops = &prod_ops}, .t = &t->base};
    ck_assert_int_eq(tw_string_transport_pull(t), TW_ESTATE);
    tw_string_transport_set_hold(t, 1);
    ck_assert_int_eq(tw_transport_register_producer(&t->base, &pr.base, 0), 0);
    ck_assert_int_eq(tw_string_transport_pull(t), 0);
    ck_assert_int_eq(pr.resumed, 1);
    ck_assert_uint_eq(t->queued, 5);
    tw_string_transport_drain(t, 4);
    ck_assert_int_eq(pr.resumed, 1); /* not empty yet */
    tw_string_transport_drain(t, 1);
    ck_assert_int_eq(pr.resumed, 2);
    ck_assert(tw_string_transport_output_is(t, "piecepiece"));
    tw_string_transport_free(t);
    ck_assert_int_eq(pr.stopped, 1);
}
END_TEST

START_TEST(test_reading_pause_and_resume_are_tracked)
{
    rec r = {.base = {.ops = &rec_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    tw_transport_pause_producing(&t->base);
    ck_assert_int_eq(t->reading_paused, 1);
    tw_string_transport_feed_str(t, "in flight"); /* the test decides */
    ck_assert(got_is(&r, "in flight"));
    tw_transport_resume_producing(&t->base);
    ck_assert_int_eq(t->reading_paused, 0);
    ck_assert_int_eq(t->pause_calls, 1);
    ck_assert_int_eq(t->resume_calls, 1);
    tw_string_transport_free(t);
}
END_TEST

START_TEST(test_lose_write_connection_refuses_writes_and_reports_the_shutdown)
{
    rec r = {.base = {.ops = &half_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    tw_transport_write(&t->base, "last", 4);
    ck_assert_int_eq(tw_transport_lose_write_connection(&t->base), 0);
    ck_assert_int_eq(tw_transport_lose_write_connection(&t->base), TW_ESTATE);
    ck_assert_int_eq(tw_transport_write(&t->base, "more", 4), TW_ESTATE);
    ck_assert_int_eq(tw_string_transport_run_close(t), 0); /* still reading */
    ck_assert_int_eq(r.write_lost, 1);
    tw_string_transport_feed_str(t, "reply");
    ck_assert(got_is(&r, "reply"));
    /* The peer's EOF with both directions shut ends the connection. */
    tw_string_transport_feed_eof(t);
    ck_assert_int_eq(r.read_lost, 0);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.lost_code, TW_EDONE);
    tw_string_transport_free(t);
}
END_TEST

START_TEST(test_feed_eof_half_closes_a_protocol_that_opted_in)
{
    rec r = {.base = {.ops = &half_ops}, .reply_on_eof = "bye"};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    tw_string_transport_feed_str(t, "question");
    tw_string_transport_feed_eof(t);
    ck_assert_int_eq(r.read_lost, 1);
    ck_assert(tw_string_transport_output_is(t, "bye")); /* it could still write */
    tw_string_transport_feed_str(t, "after the end");
    ck_assert(got_is(&r, "question"));
    ck_assert_int_eq(tw_string_transport_run_close(t), 1);
    ck_assert_int_eq(r.lost_code, TW_EDONE);
    tw_string_transport_free(t);
}
END_TEST

START_TEST(test_feed_eof_closes_a_protocol_without_half_close)
{
    rec r = {.base = {.ops = &rec_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    tw_string_transport_feed_eof(t);
    ck_assert_int_eq(r.lost, 1);
    ck_assert_int_eq(r.lost_code, TW_EDONE);
    tw_string_transport_feed_eof(t);
    ck_assert_int_eq(r.lost, 1);
    tw_string_transport_free(t);
}
END_TEST

START_TEST(test_addresses_are_the_tests_to_set_and_there_is_no_descriptor)
{
    rec r = {.base = {.ops = &rec_ops}};
    tw_string_transport *t = tw_string_transport_new(NULL, &r.base);
    tw_address a;
    char buf[64];
    ck_assert_int_eq(tw_transport_get_peer(&t->base, &a), 0);
    ck_assert_str_eq(tw_address_format(&a, buf, sizeof buf), "127.0.0.1:40000");
    ck_assert_int_eq(tw_transport_get_host(&t->base, &a), 0);
    ck_assert_str_eq(tw_address_format(&a, buf, sizeof buf), "127.0.0.1:7");
    ck_assert_int_eq(tw_address_from_ip(&t->peer, "::1", 5555), 0);
    ck_assert_int_eq(tw_transport_get_peer(&t->base, &a), 0);
    ck_assert_int_eq(tw_address_port(&a), 5555);
    ck_assert_int_eq(tw_transport_fileno(&t->base), -1);
    ck_assert_ptr_null(t->base.reactor);
    tw_string_transport_free(t);
}
END_TEST

typedef struct {
    tw_factory base;
    int started, stopped, built;
    rec r;
    int refuse;
} rec_factory;

static tw_protocol *rf_build(tw_factory *f, const tw_address *peer)
{
    rec_factory *rf = tw_container_of(f, rec_factory, base);
    ck_assert_int_eq(tw_address_port(peer), 40000);
    if (rf->refuse)
        return NULL;
    rf->built++;
    rf->r.base.ops = &rec_ops;
    return &rf->r.base;
}

static void rf_start(tw_factory *f)
{
    tw_container_of(f, rec_factory, base)->started++;
}

static void rf_stop(tw_factory *f)
{
    tw_container_of(f, rec_factory, base)->stopped++;
}

static const tw_factory_ops rf_ops = {
    .build_protocol = rf_build, .start_factory = rf_start, .stop_factory = rf_stop};

START_TEST(test_open_builds_with_the_factory_and_counts_a_user)
{
    rec_factory rf = {0};
    tw_factory_init(&rf.base, &rf_ops);
    tw_string_transport *t = tw_string_transport_open(NULL, &rf.base);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(rf.built, 1);
    ck_assert_int_eq(rf.started, 1);
    ck_assert_int_eq(rf.r.made, 1);
    ck_assert_ptr_eq(rf.r.base.factory, &rf.base);
    tw_string_transport_free(t);
    ck_assert_int_eq(rf.stopped, 1);
    rf.refuse = 1;
    ck_assert_ptr_null(tw_string_transport_open(NULL, &rf.base));
    ck_assert_int_eq(rf.started, 2);
    ck_assert_int_eq(rf.stopped, 2);
}
END_TEST

/* A protocol that hangs up on a silent peer, on its transport's reactor. */
typedef struct {
    tw_protocol base;
    tw_call *timer;
} idler;

static void idle_fired(void *arg)
{
    idler *i = arg;
    tw_call_release(i->timer);
    i->timer = NULL;
    tw_transport_write(i->base.transport, "timeout\n", 8);
    tw_transport_lose_connection(i->base.transport);
}

static void idle_made(tw_protocol *p)
{
    idler *i = tw_container_of(p, idler, base);
    tw_reactor_call_later(p->transport->reactor, 30, idle_fired, i, &i->timer);
}

static void idle_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    idler *i = tw_container_of(p, idler, base);
    if (i->timer != NULL) {
        tw_call_cancel(i->timer);
        tw_call_release(i->timer);
        i->timer = NULL;
    }
}

static const tw_protocol_ops idle_ops = {.connection_made = idle_made,
                                         .connection_lost = idle_lost};

START_TEST(test_a_string_transport_on_a_clock_drives_the_protocols_timers)
{
    tw_clock *clock = tw_clock_new();
    idler i = {.base = {.ops = &idle_ops}};
    tw_string_transport *t = tw_string_transport_new(tw_clock_reactor(clock), &i.base);
    ck_assert_ptr_eq(t->base.reactor, tw_clock_reactor(clock));
    ck_assert_int_eq(tw_clock_advance(clock, 29.9), 0);
    ck_assert_int_eq(t->lose_calls, 0);
    ck_assert_int_eq(tw_clock_advance(clock, 0.1), 0);
    ck_assert(tw_string_transport_output_is(t, "timeout\n"));
    ck_assert_int_eq(t->lose_calls, 1);
    tw_string_transport_free(t);
    tw_clock_free(clock);
}
END_TEST

/* ---------------------------------------------------------------- pump */

START_TEST(test_pump_carries_the_same_conversation_in_chunks_of_every_size)
{
    static const char msg[] = "a message longer than a few chunks";
    for (size_t chunk = 0; chunk <= sizeof msg; chunk++) {
        rec c = {.base = {.ops = &rec_ops}, .greeting = msg};
        rec s = {.base = {.ops = &rec_ops}, .echo = 1};
        tw_pump pump;
        ck_assert_int_eq(tw_pump_connect(&pump, NULL, &c.base, &s.base), 0);
        ck_assert_int_eq(s.made, 1);
        ck_assert_int_eq(c.made, 1);
        size_t rounds = tw_pump_flush(&pump, chunk, 1000);
        ck_assert(got_is(&s, msg));
        ck_assert(got_is(&c, msg));
        ck_assert_uint_eq(pump.client_sent, strlen(msg));
        ck_assert_uint_eq(pump.server_sent, strlen(msg));
        if (chunk > 0)
            ck_assert_uint_ge(rounds, (strlen(msg) + chunk - 1) / chunk);
        tw_pump_free(&pump);
        ck_assert_int_eq(c.lost, 1);
        ck_assert_int_eq(s.lost, 1);
    }
}
END_TEST

START_TEST(test_pump_stops_after_max_rounds)
{
    rec c = {.base = {.ops = &rec_ops}, .greeting = "0123456789"};
    rec s = {.base = {.ops = &rec_ops}};
    tw_pump pump;
    tw_pump_connect(&pump, NULL, &c.base, &s.base);
    ck_assert_uint_eq(tw_pump_flush(&pump, 1, 3), 3);
    ck_assert(got_is(&s, "012"));
    ck_assert_uint_eq(tw_pump_flush(&pump, 0, 100), 1);
    ck_assert(got_is(&s, "0123456789"));
    ck_assert_uint_eq(tw_pump_flush(&pump, 0, 100), 0);
    tw_pump_free(&pump);
}
END_TEST

START_TEST(test_pump_delivers_a_half_close_after_the_data)
{
    rec c = {.base = {.ops = &half_ops}, .greeting = "question"};
    rec s = {.base = {.ops = &half_ops}, .reply_on_eof = "answer"};
    tw_pump pump;
    tw_pump_connect(&pump, NULL, &c.base, &s.base);
    ck_assert_int_eq(tw_transport_lose_write_connection(c.base.transport), 0);
    tw_pump_flush(&pump, 3, 1000);
    ck_assert(got_is(&s, "question"));
    ck_assert_int_eq(s.read_lost, 1);
    ck_assert_int_eq(c.write_lost, 1);
    ck_assert(got_is(&c, "answer")); /* the reply came back over the open half */
    ck_assert_int_eq(c.lost, 1);
    ck_assert_int_eq(c.lost_code, TW_EDONE);
    ck_assert_int_eq(s.lost, 1);
    ck_assert_int_eq(s.lost_code, TW_EDONE);
    tw_pump_free(&pump);
}
END_TEST

START_TEST(test_pump_half_close_closes_a_peer_without_half_close)
{
    rec c = {.base = {.ops = &half_ops}, .greeting = "hi"};
    rec s = {.base = {.ops = &rec_ops}};
    tw_pump pump;
    tw_pump_connect(&pump, NULL, &c.base, &s.base);
    tw_transport_lose_write_connection(c.base.transport);
    tw_pump_flush(&pump, 0, 100);
    ck_assert(got_is(&s, "hi"));
    ck_assert_int_eq(s.lost_code, TW_EDONE);
    ck_assert_int_eq(c.lost_code, TW_EDONE);
    tw_pump_free(&pump);
}
END_TEST

START_TEST(test_pump_addresses_mirror_each_other)
{
    rec c = {.base = {.ops = &rec_ops}};
    rec s = {.base = {.ops = &rec_ops}};
    tw_pump pump;
    tw_pump_connect(&pump, NULL, &c.base, &s.base);
    tw_address cp, ch, sp, sh;
    tw_transport_get_peer(c.base.transport, &cp);
    tw_transport_get_host(c.base.transport, &ch);
    tw_transport_get_peer(s.base.transport, &sp);
    tw_transport_get_host(s.base.transport, &sh);
    ck_assert_int_eq(tw_address_port(&cp), tw_address_port(&sh));
    ck_assert_int_eq(tw_address_port(&sp), tw_address_port(&ch));
    ck_assert_int_ne(tw_address_port(&cp), tw_address_port(&ch));
    tw_pump_free(&pump);
}
END_TEST

/* ---------------------------------------------------------------- clock */

static int order[8], norder;

static void note(void *arg)
{
    order[norder++] = (int)(long)arg;
}

START_TEST(test_clock_runs_calls_when_advanced_past_them_in_order)
{
    tw_clock *clock = tw_clock_new();
    tw_reactor *r = tw_clock_reactor(clock);
    norder = 0;
    ck_assert(tw_clock_seconds(clock) == 0.0);
    tw_reactor_call_later(r, 2, note, (void *)2L, NULL);
    tw_reactor_call_later(r, 1, note, (void *)1L, NULL);
    tw_reactor_call_later(r, 1, note, (void *)3L, NULL);
    ck_assert_int_eq(tw_clock_advance(clock, 0.999), 0);
    ck_assert_int_eq(norder, 0);
    ck_assert_int_eq(tw_clock_advance(clock, 0.001), 0);
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(order[1], 3); /* same time: FIFO */
    ck_assert_int_eq(tw_clock_advance(clock, 5), 0);
    ck_assert_int_eq(norder, 3);
    ck_assert(tw_clock_seconds(clock) == 6.0);
    ck_assert(tw_reactor_seconds(r) == 6.0);
    ck_assert_int_eq(tw_clock_advance(clock, -1), -EINVAL);
    ck_assert(tw_clock_seconds(clock) == 6.0);
    tw_clock_free(clock);
}
END_TEST

static tw_reactor *chain_reactor;

static void schedule_now(void *arg)
{
    note(arg);
    if ((long)arg < 3)
        tw_reactor_call_later(chain_reactor, 0, schedule_now, (void *)((long)arg + 1), NULL);
}

START_TEST(test_clock_advance_runs_calls_scheduled_for_a_time_already_reached)
{
    tw_clock *clock = tw_clock_new();
    chain_reactor = tw_clock_reactor(clock);
    norder = 0;
    tw_reactor_call_later(chain_reactor, 1, schedule_now, (void *)1L, NULL);
    tw_clock_advance(clock, 1);
    ck_assert_int_eq(norder, 3); /* as Twisted's Clock.advance */
    tw_clock_free(clock);
}
END_TEST

START_TEST(test_clock_drives_a_deferred_timeout)
{
    tw_clock *clock = tw_clock_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_add_timeout(d, tw_clock_reactor(clock), 5), 0);
    tw_clock_advance(clock, 4.9);
    ck_assert_int_eq(tw_deferred_has_result(d), 0);
    tw_clock_advance(clock, 0.1);
    tw_failure *f = NULL;
    ck_assert_int_eq(tw_deferred_failure_result(d, &f), 0);
    ck_assert_int_eq(tw_failure_code(f), TW_ETIMEDOUT);
    tw_failure_unref(f);
    tw_deferred_unref(d);
    tw_clock_free(clock);
}
END_TEST

static void set_answer(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tw_result_set_value(res, arg, NULL);
}

START_TEST(test_clock_drives_defer_later)
{
    tw_clock *clock = tw_clock_new();
    static int answer = 42;
    tw_deferred *d = tw_defer_later(tw_clock_reactor(clock), 10, set_answer, &answer);
    void *v = NULL;
    ck_assert_int_eq(tw_deferred_success_result(d, &v, NULL), TW_ESTATE);
    tw_clock_advance(clock, 10);
    ck_assert_int_eq(tw_deferred_success_result(d, &v, NULL), 0);
    ck_assert_ptr_eq(v, &answer);
    tw_deferred_unref(d);
    tw_clock_free(clock);
}
END_TEST

static int loops;

static tw_deferred *count_loop(void *arg)
{
    (void)arg;
    loops++;
    return NULL;
}

START_TEST(test_clock_drives_a_looping_call)
{
    tw_clock *clock = tw_clock_new();
    tw_looping_call *lc = tw_looping_call_new(tw_clock_reactor(clock), count_loop, NULL);
    loops = 0;
    ck_assert_int_eq(tw_looping_call_start(lc, 2, 0, NULL), 0);
    for (int i = 0; i < 10; i++)
        tw_clock_advance(clock, 1);
    ck_assert_int_eq(loops, 5);
    tw_looping_call_free(lc);
    tw_clock_free(clock);
}
END_TEST

/* ---------------------------------------------------------------- results */

static int freed;

static void free_counted(void *v)
{
    freed++;
    free(v);
}

START_TEST(test_success_result_peeks_or_takes_the_value)
{
    freed = 0;
    int *v = malloc(sizeof *v);
    *v = 7;
    tw_deferred *d = tw_deferred_succeed(v, free_counted);
    ck_assert_int_ne(tw_deferred_has_result(d), 0);
    void *got = NULL;
    ck_assert_int_eq(tw_deferred_success_result(d, &got, NULL), 0);
    ck_assert_ptr_eq(got, v); /* peeked: the chain still owns it */
    tw_free_fn fn = NULL;
    ck_assert_int_eq(tw_deferred_success_result(d, &got, &fn), 0);
    ck_assert_ptr_eq(got, v);
    ck_assert_ptr_eq(fn, free_counted);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 0); /* taken: ours to free */
    fn(got);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_result_readers_refuse_a_deferred_without_a_result)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    void *v = (void *)1;
    tw_failure *f = NULL;
    ck_assert_int_eq(tw_deferred_has_result(d), 0);
    ck_assert_int_eq(tw_deferred_success_result(d, &v, NULL), TW_ESTATE);
    ck_assert_int_eq(tw_deferred_failure_result(d, &f), TW_ESTATE);
    ck_assert_ptr_eq(v, (void *)1);
    ck_assert_ptr_null(f);
    /* Fired but paused: still no result a callback would see. */
    tw_deferred_pause(d);
    tw_deferred_callback(d, NULL, NULL);
    ck_assert_int_eq(tw_deferred_has_result(d), 0);
    ck_assert_int_eq(tw_deferred_success_result(d, &v, NULL), TW_ESTATE);
    tw_deferred_unpause(d);
    ck_assert_int_eq(tw_deferred_success_result(d, &v, NULL), 0);
    ck_assert_ptr_null(v);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_failure_result_takes_the_failure_and_success_result_leaves_it)
{
    tw_deferred *d = tw_deferred_fail(tw_failure_new(TW_EPROTO, "bad %s", "box"));
    void *v = NULL;
    ck_assert_int_eq(tw_deferred_success_result(d, &v, NULL), -ENOMSG);
    tw_failure *f = NULL;
    ck_assert_int_eq(tw_deferred_failure_result(d, &f), 0);
    ck_assert_int_eq(tw_failure_code(f), TW_EPROTO);
    ck_assert_str_eq(tw_failure_message(f), "bad box");
    tw_failure_unref(f);
    /* Handled: the chain goes on with a NULL value. */
    ck_assert_int_eq(tw_deferred_failure_result(d, &f), -ENOMSG);
    ck_assert_int_eq(tw_deferred_success_result(d, &v, NULL), 0);
    ck_assert_ptr_null(v);
    tw_deferred_unref(d);
}
END_TEST

static Suite *testing_suite(void)
{
    Suite *s = suite_create("testing");
    TCase *tc = tcase_create("string transport");
    tcase_add_test(tc, test_string_transport_records_writes_in_order);
    tcase_add_test(tc, test_string_transport_returns_the_write_error_the_test_sets);
    tcase_add_test(tc, test_lose_still_takes_writes_and_connection_lost_waits_for_run_close);
    tcase_add_test(tc, test_abort_is_recorded_and_delivers_aborted);
    tcase_add_test(tc, test_lose_simulates_a_lost_connection_and_stops_the_producer);
    tcase_add_test(tc, test_hold_mode_pauses_and_resumes_at_the_watermarks);
    tcase_add_test(tc, test_a_pull_producer_is_asked_for_more_when_the_queue_empties);
    tcase_add_test(tc, test_reading_pause_and_resume_are_tracked);
    tcase_add_test(tc, test_lose_write_connection_refuses_writes_and_reports_the_shutdown);
    tcase_add_test(tc, test_feed_eof_half_closes_a_protocol_that_opted_in);
    tcase_add_test(tc, test_feed_eof_closes_a_protocol_without_half_close);
    tcase_add_test(tc, test_addresses_are_the_tests_to_set_and_there_is_no_descriptor);
    tcase_add_test(tc, test_open_builds_with_the_factory_and_counts_a_user);
    tcase_add_test(tc, test_a_string_transport_on_a_clock_drives_the_protocols_timers);
    suite_add_tcase(s, tc);
    tc = tcase_create("pump");
    tcase_add_test(tc, test_pump_carries_the_same_conversation_in_chunks_of_every_size);
    tcase_add_test(tc, test_pump_stops_after_max_rounds);
    tcase_add_test(tc, test_pump_delivers_a_half_close_after_the_data);
    tcase_add_test(tc, test_pump_half_close_closes_a_peer_without_half_close);
    tcase_add_test(tc, test_pump_addresses_mirror_each_other);
    suite_add_tcase(s, tc);
    tc = tcase_create("clock");
    tcase_add_test(tc, test_clock_runs_calls_when_advanced_past_them_in_order);
    tcase_add_test(tc, test_clock_advance_runs_calls_scheduled_for_a_time_already_reached);
    tcase_add_test(tc, test_clock_drives_a_deferred_timeout);
    tcase_add_test(tc, test_clock_drives_defer_later);
    tcase_add_test(tc, test_clock_drives_a_looping_call);
    suite_add_tcase(s, tc);
    tc = tcase_create("results");
    tcase_add_test(tc, test_success_result_peeks_or_takes_the_value);
    tcase_add_test(tc, test_result_readers_refuse_a_deferred_without_a_result);
    tcase_add_test(tc, test_failure_result_takes_the_failure_and_success_result_leaves_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(testing_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
