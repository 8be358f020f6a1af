/* SPDX-License-Identifier: MIT */
/*
 * TLS handshakes in the connection counters: a listener's
 * (tw_listener_stats()) for the connections it accepted, the reactor's
 * (tw_reactor_conn_stats()) for those it made. A completed handshake is
 * counted once on each side; a failed one once, by the reason it failed
 * (tw_tls_failure), and the close that follows by the reason TLS named
 * for it (a broken handshake is a protocol error, the handshake timeout a
 * timeout, the peer's close_notify or FIN the peer's close).
 *
 * The certificates come from tests/tls/mkcerts.sh, run once per test
 * program into a fresh directory.
 */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <twine.h>
#include <twine/tls.h>

#include "recorder.h"
#include "testutil.h"
#include "tlscerts.h"

static tw_reactor *r;
static tw_tls_context *sctx;

static void setup(void)
{
    r = tw_reactor_new();
    ck_assert_ptr_nonnull(r);
    char err[TW_TLS_ERRLEN];
    sctx = tw_tls_context_new(TW_TLS_SERVER, err, sizeof err);
    ck_assert_msg(sctx != NULL, "%s", err);
    ck_assert_msg(tw_tls_context_use_certificate(sctx, tu_tls_cert("server.pem"),
                                                 tu_tls_cert("server.key"),
                                                 NULL, err, sizeof err) == 0,
                  "%s", err);
}

static void teardown(void)
{
    tw_tls_context_unref(sctx);
    tw_reactor_free(r);
    r = NULL;
}

/* Listen with TLS (sctx) on 127.0.0.1 for @p rf; @return the port. */
static int listen_tls_with(rec_factory *rf, const tw_listen_options *opts, tw_listener **out)
{
    tw_endpoint e;
    char err[256];
    ck_assert_int_eq(tw_endpoint_parse_server("tcp:0:interface=127.0.0.1", &e, err, sizeof err), 0);
    tu_outcome o = {0};
    tu_watch(tw_listen_tls(r, &e, opts, sctx, &rf->base), &o);
    ck_assert_msg(o.fired && o.ok, "%s", o.message);
    *out = o.value;
    tw_address a;
    ck_assert_int_eq(tw_listener_address(*out, &a), 0);
    return tw_address_port(&a);
}

static int listen_tls(rec_factory *rf, tw_listener **out)
{
    return listen_tls_with(rf, NULL, out);
}

/* Connect with TLS to localhost:@p port, trusting the test CA, and wait
 * for the outcome. */
static void connect_tls(int port, tw_tls_context *cctx, tu_client_factory *cf, tu_outcome *o)
{
    char desc[PATH_MAX + 64];
    snprintf(desc, sizeof desc, "tls:localhost:%d:trustRoots=%s", port, tu_tls_cert("ca.pem"));
    tw_endpoint e;
    char err[512];
    ck_assert_msg(tw_endpoint_parse_client(desc, &e, err, sizeof err) == 0, "%s", err);
    tu_watch(tw_connect_tls(r, &e, cctx, &cf->rf.base), o);
    spin(r, &o->fired, 5000);
    ck_assert(o->fired);
}

static unsigned long long closed_total(const tw_conn_stats *st)
{
    unsigned long long n = 0;
    for (int i = 0; i < TW_CLOSE_REASONS; i++)
        n += st->closed[i];
    return n;
}

static unsigned long long failures_total(const tw_conn_stats *st)
{
    unsigned long long n = 0;
    for (int i = 0; i < TW_TLS_FAILURES; i++)
        n += st->tls_failures[i];
    return n;
}

/* Spin until @p l (or, for NULL, the reactor's own connections) counts
 * @p n closed, or 5 s pass; @p st receives the counters. */
static void wait_closed(tw_listener *l, unsigned long long n, tw_conn_stats *st)
{
    long long deadline = tu_now_ms() + 5000;
    do {
        tw_reactor_iterate(r, 0.005);
        if (l != NULL)
            tw_listener_stats(l, st);
        else
            tw_reactor_conn_stats(r, st);
    } while (closed_total(st) < n && tu_now_ms() < deadline);
    ck_assert_uint_eq(closed_total(st), n);
}

START_TEST(test_a_completed_handshake_counts_once_on_each_side)
{
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls(&sf, &l);
    tu_client_factory cf;
    tu_client_init(&cf, r);
    tu_outcome o = {0};
    connect_tls(port, NULL, &cf, &o);
    ck_assert_msg(o.ok, "%s", o.message);
    tw_transport *t = cf.rf.last->transport;
    ck_assert_int_eq(tw_transport_write(t, "hello", 5), 0);
    while (sf.received < 5)
        tw_reactor_iterate(r, 0.005);

    tw_conn_stats st;
    tw_listener_stats(l, &st);
    ck_assert_uint_eq(st.tls_handshakes, 1);
    ck_assert_uint_eq(failures_total(&st), 0);
    ck_assert_uint_gt(st.bytes_in, 5); /* the ciphertext, handshake included */
    tw_reactor_conn_stats(r, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.tls_handshakes, 1);
    ck_assert_uint_eq(failures_total(&st), 0);

    /* The client closes: close_notify, then FIN; the server counts the
     * peer's close, the client its own. */
    tw_transport_lose_connection(t);
    wait_closed(l, 1, &st);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PEER], 1);
    wait_closed(NULL, 1, &st);
    ck_assert_uint_eq(st.closed[TW_CLOSE_LOCAL], 1);
    ck_assert_uint_eq(st.tls_handshakes, 1);
    tw_listener_close(l);
}
END_TEST

START_TEST(test_a_server_name_that_does_not_match_counts_verify_failed_on_both_sides)
{
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls(&sf, &l);
    char err[TW_TLS_ERRLEN];
    tw_tls_context *cctx = tw_tls_context_new(TW_TLS_CLIENT, err, sizeof err);
    ck_assert_int_eq(tw_tls_context_set_trust_roots(cctx, tu_tls_cert("ca.pem"), err, sizeof err),
                     0);
    ck_assert_int_eq(tw_tls_context_set_hostname(cctx, "wrong.example"), 0);
    tu_client_factory cf;
    tu_client_init(&cf, r);
    tu_outcome o = {0};
    connect_tls(port, cctx, &cf, &o);
    ck_assert(!o.ok);
    ck_assert_int_eq(o.code, TW_ETLS);

    tw_conn_stats st;
    wait_closed(NULL, 1, &st);
    ck_assert_uint_eq(st.tls_handshakes, 0);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_VERIFY], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PROTOCOL_ERROR], 1);
    /* The server hears the client's alert about its certificate. */
    wait_closed(l, 1, &st);
    ck_assert_uint_eq(st.tls_handshakes, 0);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_VERIFY], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_int_eq(sf.built, 1);
    ck_assert_int_eq(sf.nevents > 0 ? sf.events[0] : 0, EV_DESTROY); /* never made */
    tw_listener_close(l);
    tw_tls_context_unref(cctx);
}
END_TEST

START_TEST(test_a_missing_client_certificate_counts_verify_failed_at_the_server)
{
    ck_assert_int_eq(tw_tls_context_require_client_certificate(sctx, 1), 0);
    char err[TW_TLS_ERRLEN];
    ck_assert_int_eq(tw_tls_context_set_trust_roots(sctx, tu_tls_cert("ca.pem"), err, sizeof err),
                     0);
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls(&sf, &l);
    tu_client_factory cf;
    tu_client_init(&cf, r);
    tu_outcome o = {0};
    connect_tls(port, NULL, &cf, &o);
    tw_conn_stats st;
    wait_closed(l, 1, &st);
    ck_assert_uint_eq(st.tls_handshakes, 0);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_VERIFY], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PROTOCOL_ERROR], 1);
    if (o.ok) /* TLS 1.3: the client was done before the server refused it */
        tw_transport_abort_connection(cf.rf.last->transport);
    wait_closed(NULL, 1, &st);
    tw_listener_close(l);
}
END_TEST

START_TEST(test_bytes_that_are_not_tls_count_as_a_protocol_error)
{
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls(&sf, &l);
    int c = tu_connect("127.0.0.1", port);
    const char req[] = "GET / HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(tu_write_all(c, req, sizeof req - 1), 0);
    tw_conn_stats st;
    wait_closed(l, 1, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.tls_handshakes, 0);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_PROTOCOL], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PROTOCOL_ERROR], 1);
    ck_assert_uint_eq(st.bytes_in, sizeof req - 1);
    close(c);
    tw_listener_close(l);
}
END_TEST

START_TEST(test_a_silent_client_counts_as_a_handshake_timeout)
{
    ck_assert_int_eq(tw_tls_context_set_handshake_timeout(sctx, 0.1), 0);
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls(&sf, &l);
    int c = tu_connect("127.0.0.1", port);
    tw_conn_stats st;
    wait_closed(l, 1, &st);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_TIMEOUT], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_TIMEOUT], 1);
    close(c);
    tw_listener_close(l);
}
END_TEST

START_TEST(test_a_peer_that_leaves_during_the_handshake_counts_peer_closed)
{
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls(&sf, &l);
    int c = tu_connect("127.0.0.1", port);
    spin_ms(r, 50); /* accepted, its handshake waiting for a ClientHello */
    close(c);
    tw_conn_stats st;
    wait_closed(l, 1, &st);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_PEER_CLOSED], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PEER], 1);
    tw_listener_close(l);
}
END_TEST

START_TEST(test_a_graceful_stop_during_the_handshake_counts_local)
{
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls(&sf, &l);
    int c = tu_connect("127.0.0.1", port);
    spin_ms(r, 50);
    tw_reactor_stop(r);
    tw_conn_stats st;
    wait_closed(l, 1, &st);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_LOCAL], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_SHUTDOWN], 1);
    close(c);
    tw_listener_close(l);
}
END_TEST

START_TEST(test_an_idle_timeout_during_the_handshake_counts_as_a_handshake_timeout)
{
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.idle_timeout = 0.2;
    rec_factory sf;
    rec_init(&sf, r);
    tw_listener *l;
    int port = listen_tls_with(&sf, &o, &l);
    int c = tu_connect("127.0.0.1", port);
    tw_conn_stats st;
    long long began = tu_now_ms();
    wait_closed(l, 1, &st);
    /* Long before the handshake timeout (10 s): the idle timeout ended it. */
    ck_assert_int_lt(tu_now_ms() - began, 5000);
    ck_assert_uint_eq(st.tls_failures[TW_TLS_FAIL_TIMEOUT], 1);
    ck_assert_uint_eq(failures_total(&st), 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_IDLE], 1);
    ck_assert_int_eq(tu_wait_eof(c, 2000), 1);
    close(c);
    tw_listener_close(l);
}
END_TEST

static Suite *tls_stats_suite(void)
{
    Suite *s = suite_create("tls_stats");
    TCase *tc = tcase_create("handshakes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_a_completed_handshake_counts_once_on_each_side);
    tcase_add_test(tc, test_a_server_name_that_does_not_match_counts_verify_failed_on_both_sides);
    tcase_add_test(tc, test_a_missing_client_certificate_counts_verify_failed_at_the_server);
    tcase_add_test(tc, test_bytes_that_are_not_tls_count_as_a_protocol_error);
    tcase_add_test(tc, test_a_silent_client_counts_as_a_handshake_timeout);
    tcase_add_test(tc, test_a_peer_that_leaves_during_the_handshake_counts_peer_closed);
    tcase_add_test(tc, test_a_graceful_stop_during_the_handshake_counts_local);
    tcase_add_test(tc, test_an_idle_timeout_during_the_handshake_counts_as_a_handshake_timeout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tu_tls_make_certs("tls-stats-certs");
    SRunner *sr = srunner_create(tls_stats_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tu_tls_remove_certs();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
