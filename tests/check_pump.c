/* SPDX-License-Identifier: MIT */
/*
 * The in-memory client/server pump that protocol suites use: a real module
 * (echo) talks to a client protocol through it, one byte per step or all
 * at once, and closes and aborts reach the other side with a socket's
 * reasons.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>

#include <twine/testing.h>

#include "../protocols/builtin.h"

typedef struct {
    tw_protocol base;
    char got[256];
    size_t len;
    int lost_code;
    int lost;
} client;

static void c_made(tw_protocol *p)
{
    tw_transport_write(p->transport, "hello, pump", 11);
}

static void c_data(tw_protocol *p, const void *data, size_t len)
{
    client *c = (client *)p;
    if (c->len + len <= sizeof c->got) {
        memcpy(c->got + c->len, data, len);
        c->len += len;
    }
}

static void c_lost(tw_protocol *p, const tw_failure *reason)
{
    client *c = (client *)p;
    c->lost++;
    c->lost_code = tw_failure_code(reason);
}

static const tw_protocol_ops client_ops = {.connection_made = c_made,
                                           .data_received = c_data,
                                           .connection_lost = c_lost};

static tw_protocol *echo_server(tw_factory **f)
{
    const tw_plugin_protocol *echo = tw__builtin_protocol("echo");
    char err[128];
    *f = echo->make_factory(NULL, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(*f);
    tw_protocol *p = (*f)->ops->build_protocol(*f, NULL);
    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(test_a_conversation_runs_one_byte_at_a_time)
{
    tw_factory *f;
    client c = {.base = {.ops = &client_ops}};
    tw_pump pump;
    ck_assert_int_eq(tw_pump_connect(&pump, NULL, &c.base, echo_server(&f)), 0);
    size_t rounds = tw_pump_flush(&pump, 1, 1000);
    ck_assert_uint_eq(c.len, 11);
    ck_assert(memcmp(c.got, "hello, pump", 11) == 0);
    ck_assert_uint_ge(rounds, 11); /* really one byte per step */
    tw_pump_free(&pump);
    tw_factory_free(f);
}
END_TEST

START_TEST(test_a_lose_reaches_the_peer_as_a_clean_close_after_the_data)
{
    tw_factory *f;
    client c = {.base = {.ops = &client_ops}};
    tw_pump pump;
    tw_pump_connect(&pump, NULL, &c.base, echo_server(&f));
    tw_transport_write(pump.server->base.protocol->transport, "bye", 3);
    tw_transport_lose_connection(pump.server->base.protocol->transport);
    tw_pump_flush(&pump, 0, 100);
    ck_assert_int_eq(c.lost, 1);
    ck_assert_int_eq(c.lost_code, TW_EDONE);
    ck_assert_ptr_nonnull(memmem(c.got, c.len, "bye", 3));
    ck_assert_int_eq(pump.server->lost_code, TW_EDONE);
    tw_pump_free(&pump);
    tw_factory_free(f);
}
END_TEST

START_TEST(test_an_abort_reaches_the_peer_as_a_reset_and_drops_the_rest)
{
    tw_factory *f;
    client c = {.base = {.ops = &client_ops}};
    tw_pump pump;
    tw_pump_connect(&pump, NULL, &c.base, echo_server(&f));
    tw_transport_write(pump.server->base.protocol->transport, "never", 5);
    tw_transport_abort_connection(pump.server->base.protocol->transport);
    tw_pump_flush(&pump, 0, 100);
    ck_assert_int_eq(c.lost_code, -ECONNRESET);
    ck_assert_ptr_null(memmem(c.got, c.len, "never", 5));
    ck_assert_int_eq(pump.server->lost_code, TW_EABORTED);
    tw_pump_free(&pump);
    tw_factory_free(f);
}
END_TEST

static Suite *pump_suite(void)
{
    Suite *s = suite_create("pump");
    TCase *tc = tcase_create("in-memory");
    tcase_add_test(tc, test_a_conversation_runs_one_byte_at_a_time);
    tcase_add_test(tc, test_a_lose_reaches_the_peer_as_a_clean_close_after_the_data);
    tcase_add_test(tc, test_an_abort_reaches_the_peer_as_a_reset_and_drops_the_rest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pump_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
