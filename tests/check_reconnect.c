/* SPDX-License-Identifier: MIT */
/*
 * The reconnecting client service against real loopback servers, with the
 * reactor on the test kit's clock (tw_clock) so that backoff delays are
 * exact: the delays grow and cap, a server started after some failures is
 * reached, a dropped connection resets the backoff by itself, stop cancels
 * what is pending, and the caller's factory and protocol see what a plain
 * client would.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>
#include <twine/testing.h>

#include "recorder.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */
/* Run the loop until *counter reaches @p target (bounded). */
static void wait_for(tw_reactor *r, const int *counter, int target)
{
    long long deadline = tu_now_ms() + 3000;
    while (*counter < target && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.005);
    ck_assert_int_ge(*counter, target);
}

static tw_listener *listen_at(tw_reactor *r, rec_factory *rf, int port)
{
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", port);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf->base, &l), 0);
    return l;
}

static void client_endpoint(tw_endpoint *e, int port)
{
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d", port);
    ck_assert_int_eq(tw_endpoint_parse_client(desc, e, NULL, 0), 0);
}

/* A service on @p port with delays 1, 2, 4, ... capped at @p max, no jitter. */
static tw_reconnect *service(tw_reactor *r, tu_client_factory *cf, int port, double max,
                             unsigned max_retries)
{
    tw_endpoint e;
    client_endpoint(&e, port);
    tw_reconnect_options o;
    tw_reconnect_options_init(&o);
    o.initial_delay = 1.0;
    o.factor = 2.0;
    o.max_delay = max;
    o.jitter = 0;
    o.max_retries = max_retries;
    tw_reconnect *rc;
    ck_assert_int_eq(tw_reconnect_new(r, &e, &cf->rf.base, &o, &rc), 0);
    return rc;
}

/* Fail @p n times in a row against a closed port, following the delays. */
static void fail_times(tw_clock *c, tw_reconnect *rc, tu_client_factory *cf, int n)
{
    int base = cf->failed;
    for (int i = 1; i <= n; i++) {
        wait_for(tw_clock_reactor(c), &cf->failed, base + i);
        if (i < n)
            tw_clock_advance(c, tw_reconnect_delay(rc));
    }
}

/* ------------------------------------------------------------ tests */

START_TEST(test_backoff_grows_by_the_factor_up_to_the_maximum)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, tu_closed_port(), 5.0, 0);
    ck_assert_int_eq(tw_reconnect_start(rc), 0);
    const double expect[] = {1, 2, 4, 5, 5};
    for (int i = 0; i < 5; i++) {
        wait_for(tw_clock_reactor(c), &cf.failed, i + 1);
        ck_assert_uint_eq(tw_reconnect_attempts(rc), (unsigned)i + 1);
        ck_assert_msg(tw_reconnect_delay(rc) == expect[i], "retry %d waits %g, not %g", i + 1,
                      tw_reconnect_delay(rc), expect[i]);
        ck_assert_int_eq(cf.failed_code, -ECONNREFUSED);
        tw_clock_advance(c, expect[i]);
    }
    tw_reconnect_free(rc);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_a_retry_waits_for_its_whole_delay)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, tu_closed_port(), 60.0, 0);
    tw_reconnect_start(rc);
    fail_times(c, rc, &cf, 2); /* the pending retry waits 2 s */
    tw_clock_advance(c, 1.99);
    spin_ms(tw_clock_reactor(c), 100);
    ck_assert_int_eq(cf.failed, 2);
    tw_clock_advance(c, 0.01);
    wait_for(tw_clock_reactor(c), &cf.failed, 3);
    tw_reconnect_free(rc);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_jitter_spreads_delays_within_its_bounds)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    tw_endpoint e;
    client_endpoint(&e, tu_closed_port());
    tw_reconnect_options o;
    tw_reconnect_options_init(&o);
    o.initial_delay = 2.0;
    o.factor = 1.0;
    o.max_delay = 2.0;
    o.jitter = 0.25;
    o.seed = 42;
    tw_reconnect *rc;
    ck_assert_int_eq(tw_reconnect_new(tw_clock_reactor(c), &e, &cf.rf.base, &o, &rc), 0);
    tw_reconnect_start(rc);
    double first = -1;
    int varied = 0;
    for (int i = 1; i <= 8; i++) {
        wait_for(tw_clock_reactor(c), &cf.failed, i);
        double d = tw_reconnect_delay(rc);
        ck_assert_msg(d >= 1.5 && d <= 2.5, "delay %g is outside 2 +- 25%%", d);
        if (first < 0)
            first = d;
        else if (d != first)
            varied = 1;
        tw_clock_advance(c, d);
    }
    ck_assert(varied);
    tw_reconnect_free(rc);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_a_server_started_after_failures_is_reached)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    rec_factory server;
    tu_client_init(&cf, tw_clock_reactor(c));
    rec_init(&server, tw_clock_reactor(c));
    int port = tu_closed_port();
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, port, 60.0, 0);
    tu_outcome o;
    tu_watch(tw_reconnect_when_connected(rc), &o);
    tw_reconnect_start(rc);
    fail_times(c, rc, &cf, 3);
    ck_assert(!o.fired);
    ck_assert(tw_reconnect_delay(rc) == 4.0);
    tw_listener *l = listen_at(tw_clock_reactor(c), &server, port);
    tw_clock_advance(c, 4.0);
    wait_for(tw_clock_reactor(c), &o.fired, 1);
    ck_assert(o.ok);
    ck_assert_ptr_eq(o.value, cf.rf.last);
    ck_assert_ptr_eq(tw_reconnect_protocol(rc), cf.rf.last);
    ck_assert_ptr_eq(cf.rf.last->factory, &cf.rf.base); /* the caller's own factory */
    ck_assert_uint_eq(tw_reconnect_attempts(rc), 0);
    ck_assert(tw_reconnect_delay(rc) == 0);
    ck_assert_uint_eq(tw_reconnect_connections(rc), 1);
    ck_assert_int_eq(cf.rf.events[0], EV_MADE);
    wait_for(tw_clock_reactor(c), &server.built, 1);
    /* The caller's protocol talks over the real transport. */
    ck_assert_int_eq(tw_transport_write(cf.rf.last->transport, "abc", 3), 0);
    long long deadline = tu_now_ms() + 2000;
    while (server.received < 3 && tu_now_ms() < deadline)
        tw_reactor_iterate(tw_clock_reactor(c), 0.005);
    ck_assert_uint_eq(server.received, 3);
    tw_reconnect_free(rc);
    wait_for(tw_clock_reactor(c), &cf.rf.destroyed, 1);
    tw_listener_close(l);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_a_dropped_connection_resets_the_backoff_by_itself)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    rec_factory server;
    tu_client_init(&cf, tw_clock_reactor(c));
    rec_init(&server, tw_clock_reactor(c));
    int port = tu_closed_port();
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, port, 60.0, 0);
    tw_reconnect_start(rc);
    fail_times(c, rc, &cf, 4);
    ck_assert(tw_reconnect_delay(rc) == 8.0);
    tw_listener *l = listen_at(tw_clock_reactor(c), &server, port);
    tw_clock_advance(c, 8.0);
    wait_for(tw_clock_reactor(c), &server.built, 1);
    ck_assert_uint_eq(tw_reconnect_connections(rc), 1);
    /* The server drops us: the next retry waits the initial delay again. */
    tw_transport_abort_connection(server.last->transport);
    wait_for(tw_clock_reactor(c), &cf.lost, 1);
    ck_assert_int_eq(cf.rf.destroyed, 1);
    ck_assert_ptr_null(tw_reconnect_protocol(rc));
    ck_assert_uint_eq(tw_reconnect_attempts(rc), 0);
    ck_assert(tw_reconnect_delay(rc) == 1.0);
    tw_clock_advance(c, 1.0);
    wait_for(tw_clock_reactor(c), &server.built, 2);
    wait_for(tw_clock_reactor(c), &cf.rf.built, 2);
    ck_assert_uint_eq(tw_reconnect_connections(rc), 2);
    ck_assert_ptr_nonnull(tw_reconnect_protocol(rc));
    tw_reconnect_free(rc);
    wait_for(tw_clock_reactor(c), &cf.rf.destroyed, 2);
    tw_listener_close(l);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_stop_cancels_the_pending_retry)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, tu_closed_port(), 60.0, 0);
    tw_reconnect_start(rc);
    wait_for(tw_clock_reactor(c), &cf.failed, 1);
    ck_assert(tw_reconnect_delay(rc) == 1.0);
    tw_reconnect_stop(rc, 0);
    ck_assert(!tw_reconnect_running(rc));
    ck_assert(tw_reconnect_delay(rc) == 0);
    tw_clock_advance(c, 3600);
    spin_ms(tw_clock_reactor(c), 100);
    ck_assert_int_eq(cf.failed, 1);
    ck_assert_int_eq(cf.rf.starts, 1);
    ck_assert_int_eq(cf.rf.stops, 1);
    tw_reconnect_free(rc);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_stop_cancels_an_attempt_under_way)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    /* A full accept queue keeps the attempt pending. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", 0);
    bind(lfd, &a.u.sa, a.len);
    listen(lfd, 0);
    a.len = sizeof a.u.storage;
    getsockname(lfd, &a.u.sa, &a.len);
    int filler = tu_connect("127.0.0.1", tw_address_port(&a));
    ck_assert_int_ge(filler, 0);
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, tw_address_port(&a), 60.0, 0);
    tw_reconnect_start(rc);
    spin_ms(tw_clock_reactor(c), 100);
    ck_assert_int_eq(cf.failed, 0);
    tw_reconnect_stop(rc, 0);
    ck_assert_int_eq(cf.failed, 1);
    ck_assert_int_eq(cf.failed_code, TW_ECANCELLED);
    ck_assert_int_eq(cf.rf.built, 0);
    ck_assert(tw_reconnect_delay(rc) == 0);
    ck_assert_uint_eq(tw_reconnect_attempts(rc), 0);
    tw_reconnect_free(rc);
    close(filler);
    close(lfd);
    tw_clock_free(c);
}
END_TEST

/* Connect a service to a fresh server; returns the listener. */
static tw_listener *connected_service(tw_clock *c, tu_client_factory *cf, rec_factory *server,
                                      tw_reconnect **rc)
{
    tu_client_init(cf, tw_clock_reactor(c));
    rec_init(server, tw_clock_reactor(c));
    int port = tu_closed_port();
    tw_listener *l = listen_at(tw_clock_reactor(c), server, port);
    *rc = service(tw_clock_reactor(c), cf, port, 60.0, 0);
    tw_reconnect_start(*rc);
    wait_for(tw_clock_reactor(c), &server->built, 1);
    wait_for(tw_clock_reactor(c), &cf->rf.built, 1);
    spin_ms(tw_clock_reactor(c), 20);
    ck_assert_ptr_nonnull(tw_reconnect_protocol(*rc));
    return l;
}

START_TEST(test_stop_with_disconnect_closes_the_connection_for_good)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    rec_factory server;
    tw_reconnect *rc;
    tw_listener *l = connected_service(c, &cf, &server, &rc);
    tw_reconnect_stop(rc, 1);
    wait_for(tw_clock_reactor(c), &cf.lost, 1);
    ck_assert_int_eq(cf.rf.lost_code, TW_EDONE);
    wait_for(tw_clock_reactor(c), &server.destroyed, 1);
    ck_assert(tw_reconnect_delay(rc) == 0);
    tw_clock_advance(c, 3600);
    spin_ms(tw_clock_reactor(c), 100);
    ck_assert_int_eq(server.built, 1);
    ck_assert_int_eq(cf.rf.stops, 1); /* the last user of the factory is gone */
    tw_reconnect_free(rc);
    tw_listener_close(l);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_stop_without_disconnect_keeps_the_connection_but_does_not_replace_it)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    rec_factory server;
    tw_reconnect *rc;
    tw_listener *l = connected_service(c, &cf, &server, &rc);
    tw_reconnect_stop(rc, 0);
    spin_ms(tw_clock_reactor(c), 50);
    ck_assert_int_eq(cf.lost, 0);
    ck_assert_ptr_nonnull(tw_reconnect_protocol(rc));
    ck_assert_int_eq(cf.rf.stops, 0); /* the connection still uses the factory */
    tw_transport_lose_connection(server.last->transport);
    wait_for(tw_clock_reactor(c), &cf.lost, 1);
    ck_assert(tw_reconnect_delay(rc) == 0);
    tw_clock_advance(c, 3600);
    spin_ms(tw_clock_reactor(c), 100);
    ck_assert_int_eq(server.built, 1);
    ck_assert_int_eq(cf.rf.stops, 1);
    tw_reconnect_free(rc);
    tw_listener_close(l);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_when_connected_fires_at_once_while_connected)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    rec_factory server;
    tw_reconnect *rc;
    tw_listener *l = connected_service(c, &cf, &server, &rc);
    tu_outcome o;
    tu_watch(tw_reconnect_when_connected(rc), &o);
    ck_assert(o.fired && o.ok);
    ck_assert_ptr_eq(o.value, cf.rf.last);
    tw_reconnect_free(rc);
    wait_for(tw_clock_reactor(c), &cf.rf.destroyed, 1);
    tw_listener_close(l);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_when_connected_fails_when_the_service_stops)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, tu_closed_port(), 60.0, 0);
    tw_reconnect_start(rc);
    tu_outcome o, cancelled;
    tu_watch(tw_reconnect_when_connected(rc), &o);
    tw_deferred *d = tw_reconnect_when_connected(rc);
    memset(&cancelled, 0, sizeof cancelled);
    tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &cancelled);
    tw_deferred_cancel(d); /* one waiter gives up on its own */
    tw_deferred_unref(d);
    ck_assert_int_eq(cancelled.code, TW_ECANCELLED);
    wait_for(tw_clock_reactor(c), &cf.failed, 1);
    ck_assert(!o.fired);
    tw_reconnect_stop(rc, 1);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ECANCELLED);
    tw_reconnect_free(rc);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_the_service_gives_up_after_max_retries)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, tu_closed_port(), 60.0, 2);
    tu_outcome o;
    tu_watch(tw_reconnect_when_connected(rc), &o);
    tw_reconnect_start(rc);
    fail_times(c, rc, &cf, 2);
    ck_assert(tw_reconnect_running(rc));
    tw_clock_advance(c, tw_reconnect_delay(rc));
    wait_for(tw_clock_reactor(c), &cf.failed, 3);
    ck_assert(!tw_reconnect_running(rc));
    ck_assert(tw_reconnect_delay(rc) == 0);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -ECONNREFUSED);
    ck_assert_msg(strstr(o.message, "gave up") != NULL && strstr(o.message, "3 failed") != NULL,
                  "%s", o.message);
    ck_assert_int_eq(cf.rf.stops, 1);
    tw_clock_advance(c, 3600);
    spin_ms(tw_clock_reactor(c), 50);
    ck_assert_int_eq(cf.failed, 3);
    tw_reconnect_free(rc);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_the_callers_factory_is_started_once_for_the_whole_service)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    tu_client_init(&cf, tw_clock_reactor(c));
    tw_reconnect *rc = service(tw_clock_reactor(c), &cf, tu_closed_port(), 60.0, 0);
    ck_assert_int_eq(cf.rf.starts, 0);
    tw_reconnect_start(rc);
    ck_assert_int_eq(cf.rf.starts, 1);
    fail_times(c, rc, &cf, 3);
    ck_assert_int_eq(cf.rf.starts, 1);
    ck_assert_int_eq(cf.rf.stops, 0);
    ck_assert_int_eq(tw_reconnect_start(rc), TW_ESTATE);
    tw_reconnect_free(rc);
    ck_assert_int_eq(cf.rf.stops, 1);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_freeing_a_connected_service_closes_its_connection)
{
    tw_clock *c = tw_clock_new();
    tu_client_factory cf;
    rec_factory server;
    tw_reconnect *rc;
    tw_listener *l = connected_service(c, &cf, &server, &rc);
    tw_reconnect_free(rc);
    wait_for(tw_clock_reactor(c), &server.destroyed, 1);
    wait_for(tw_clock_reactor(c), &cf.rf.destroyed, 1);
    ck_assert_int_eq(cf.lost, 1);
    ck_assert_int_eq(cf.rf.stops, 1);
    tw_listener_close(l);
    tw_clock_free(c);
}
END_TEST

/* A protocol that stops its own service, disconnecting, from connection_made. */
static tw_reconnect *stop_me;
static int sm_lost;

static void sm_made(tw_protocol *p)
{
    (void)p;
    tw_reconnect_stop(stop_me, 1);
}

static void sm_data(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    (void)data;
    (void)len;
}

static void sm_lost_fn(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
    sm_lost++;
}

static void sm_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops sm_ops = {.connection_made = sm_made,
                                       .data_received = sm_data,
                                       .connection_lost = sm_lost_fn,
                                       .destroy = sm_destroy};

static tw_protocol *sm_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    tw_protocol *p = calloc(1, sizeof *p);
    p->ops = &sm_ops;
    return p;
}

static const tw_factory_ops sm_factory_ops = {.build_protocol = sm_build};

START_TEST(test_a_stop_from_connection_made_disconnects)
{
    tw_clock *c = tw_clock_new();
    rec_factory server;
    rec_init(&server, tw_clock_reactor(c));
    int port = tu_closed_port();
    tw_listener *l = listen_at(tw_clock_reactor(c), &server, port);
    tw_factory f;
    tw_factory_init(&f, &sm_factory_ops);
    tw_endpoint e;
    client_endpoint(&e, port);
    ck_assert_int_eq(tw_reconnect_new(tw_clock_reactor(c), &e, &f, NULL, &stop_me), 0);
    sm_lost = 0;
    tw_reconnect_start(stop_me);
    wait_for(tw_clock_reactor(c), &sm_lost, 1);
    ck_assert(!tw_reconnect_running(stop_me));
    ck_assert_uint_eq(tw_reconnect_connections(stop_me), 1);
    ck_assert(tw_reconnect_delay(stop_me) == 0);
    wait_for(tw_clock_reactor(c), &server.destroyed, 1);
    tw_reconnect_free(stop_me);
    tw_listener_close(l);
    tw_clock_free(c);
}
END_TEST

START_TEST(test_bad_settings_are_refused)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory cf;
    tu_client_init(&cf, r);
    tw_endpoint e;
    tw_reconnect *rc;
    ck_assert_int_eq(tw_endpoint_parse_server("tcp:80", &e, NULL, 0), 0);
    ck_assert_int_eq(tw_reconnect_new(r, &e, &cf.rf.base, NULL, &rc), -EINVAL);
    client_endpoint(&e, 80);
    tw_reconnect_options o;
    tw_reconnect_options_init(&o);
    o.factor = 0.5;
    ck_assert_int_eq(tw_reconnect_new(r, &e, &cf.rf.base, &o, &rc), -EINVAL);
    tw_reconnect_options_init(&o);
    o.jitter = 1.5;
    ck_assert_int_eq(tw_reconnect_new(r, &e, &cf.rf.base, &o, &rc), -EINVAL);
    tw_reconnect_options_init(&o);
    o.max_delay = 0.5;
    ck_assert_int_eq(tw_reconnect_new(r, &e, &cf.rf.base, &o, &rc), -EINVAL);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_real_time_retries_reach_a_late_server)
{
    /* The same story on the real clock, with short delays. */
    tw_reactor *r = tw_reactor_new();
    tu_client_factory cf;
    rec_factory server;
    tu_client_init(&cf, r);
    rec_init(&server, r);
    int port = tu_closed_port();
    tw_endpoint e;
    client_endpoint(&e, port);
    tw_reconnect_options o;
    tw_reconnect_options_init(&o);
    o.initial_delay = 0.02;
    o.max_delay = 0.1;
    tw_reconnect *rc;
    ck_assert_int_eq(tw_reconnect_new(r, &e, &cf.rf.base, &o, &rc), 0);
    tw_reconnect_start(rc);
    wait_for(r, &cf.failed, 3);
    tw_listener *l = listen_at(r, &server, port);
    wait_for(r, &server.built, 1);
    spin(r, &cf.rf.built, 1000);
    ck_assert_uint_eq(tw_reconnect_connections(rc), 1);
    ck_assert_uint_eq(tw_reconnect_attempts(rc), 0);
    tw_reconnect_free(rc);
    wait_for(r, &cf.rf.destroyed, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

static Suite *reconnect_suite(void)
{
    Suite *s = suite_create("reconnect");
    TCase *b = tcase_create("backoff");
    tcase_set_timeout(b, 30);
    tcase_add_test(b, test_backoff_grows_by_the_factor_up_to_the_maximum);
    tcase_add_test(b, test_a_retry_waits_for_its_whole_delay);
    tcase_add_test(b, test_jitter_spreads_delays_within_its_bounds);
    tcase_add_test(b, test_a_server_started_after_failures_is_reached);
    tcase_add_test(b, test_a_dropped_connection_resets_the_backoff_by_itself);
    tcase_add_test(b, test_the_service_gives_up_after_max_retries);
    tcase_add_test(b, test_real_time_retries_reach_a_late_server);
    suite_add_tcase(s, b);

    TCase *st = tcase_create("stop");
    tcase_set_timeout(st, 30);
    tcase_add_test(st, test_stop_cancels_the_pending_retry);
    tcase_add_test(st, test_stop_cancels_an_attempt_under_way);
    tcase_add_test(st, test_stop_with_disconnect_closes_the_connection_for_good);
    tcase_add_test(st, test_stop_without_disconnect_keeps_the_connection_but_does_not_replace_it);
    tcase_add_test(st, test_when_connected_fires_at_once_while_connected);
    tcase_add_test(st, test_when_connected_fails_when_the_service_stops);
    tcase_add_test(st, test_the_callers_factory_is_started_once_for_the_whole_service);
    tcase_add_test(st, test_freeing_a_connected_service_closes_its_connection);
    tcase_add_test(st, test_a_stop_from_connection_made_disconnects);
    tcase_add_test(st, test_bad_settings_are_refused);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reconnect_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
