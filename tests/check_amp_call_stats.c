/* SPDX-License-Identifier: MIT */
/*
 * The calls an AMP factory's connections make, counted by command and
 * outcome (tw_amp_factory_call_stats()): answered, an AMP error, an answer
 * that does not decode, the connection lost first, cancelled by the
 * caller, never sent. A twine client calls a twine server over a
 * socketpair; each call is counted once, on the client's factory only.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>
#include <twine/amp.h>

#include "core/fd_internal.h"
#include "ampcall.h"
#include "recorder.h"
#include "testutil.h"

static const tw_amp_command SUM = {
    .name = "Sum",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                      {"b", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"total", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
};

/* What a client believes Sum answers: a Boolean, which the answer is not. */
static const tw_amp_command WRONG_SUM = {
    .name = "Sum",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                      {"b", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"total", TW_AMP_T_BOOLEAN, 0}, {NULL, NULL, 0}},
};

static const tw_amp_command FAIL = {
    .name = "Fail",
    .errors = (const tw_amp_error_spec[]){{"BAD", "bad thing", 0}, {NULL, NULL, 0}},
};

/* Never answered: the server keeps the deferred. */
static const tw_amp_command HANG = {.name = "Hang"};

static tw_reactor *R;
static tw_factory *server, *client;
static tw_amp *client_amp;
static tw_deferred *hanging[4];
static int nhanging;

static tw_deferred *sum_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp, (void)arg;
    int64_t a, b;
    tw_amp_values_get_integer(args, "a", &a);
    tw_amp_values_get_integer(args, "b", &b);
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "total", a + b);
    return tw_amp_succeed(v);
}

static tw_deferred *fail_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp, (void)args, (void)arg;
    return tw_amp_fail("BAD", "it went bad");
}

static tw_deferred *hang_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp, (void)args, (void)arg;
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    hanging[nhanging++] = tw_deferred_ref(d);
    return d;
}

static void client_connected(tw_amp *amp, void *arg)
{
    (void)arg;
    client_amp = amp;
}

static void client_lost(tw_amp *amp, const tw_failure *reason, void *arg)
{
    (void)reason, (void)arg;
    if (client_amp == amp)
        client_amp = NULL;
}

static void setup(void)
{
    R = tw_reactor_new();
    server = tw_amp_factory_new();
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(server);
    ck_assert_int_eq(tw_amp_register(d, &SUM, sum_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &FAIL, fail_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &HANG, hang_responder, NULL), 0);
    client = tw_amp_factory_new();
    tw_amp_factory_set_callbacks(client, client_connected, client_lost, NULL);
    nhanging = 0;
}

static void teardown(void)
{
    tw_reactor_free(R);
    for (int i = 0; i < nhanging; i++)
        tw_deferred_unref(hanging[i]);
    tw_factory_free(client);
    tw_factory_free(server);
}

/* Connect the client to the server over a socketpair. */
static void pair(void)
{
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(R, sv[0], server), 0);
    client_amp = NULL;
    ck_assert_int_eq(tw_transport_adopt(R, sv[1], client), 0);
    ck_assert_ptr_nonnull(client_amp);
}

/* The client's counters for @p name, which must have an entry. */
static void counts_of(tw_factory *f, const char *name, unsigned long long out[TW_AMP_CALL_OUTCOMES])
{
    for (size_t i = 0; i < tw_amp_factory_call_count(f); i++) {
        const char *n;
        ck_assert_int_eq(tw_amp_factory_call_stats(f, i, &n, out), 0);
        if (strcmp(n, name) == 0)
            return;
    }
    ck_abort_msg("no calls counted for %s", name);
}

static tw_amp_values *sum_args(int64_t a, int64_t b)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "a", a);
    tw_amp_values_set_integer(v, "b", b);
    return v;
}

/* A raw call's answer: a box, which the test frees. */
static void raw_answered(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tw_free_fn free_fn;
    void *box = tw_result_take_value(res, &free_fn);
    if (free_fn != NULL)
        free_fn(box);
    *(int *)arg = 1;
}

START_TEST(test_answers_errors_and_bad_answers_count_by_command)
{
    pair();
    tu_amp_outcome o;
    tu_amp_call(R, client_amp, &SUM, sum_args(1, 2), &o, 3000);
    ck_assert(!o.failed);
    tu_amp_outcome_free(&o);
    tu_amp_call(R, client_amp, &SUM, sum_args(3, 4), &o, 3000);
    tu_amp_outcome_free(&o);
    tu_amp_call(R, client_amp, &WRONG_SUM, sum_args(1, 1), &o, 3000);
    ck_assert(o.failed);
    ck_assert_int_eq(o.code, TW_EPROTO);
    tu_amp_outcome_free(&o);
    tu_amp_call(R, client_amp, &FAIL, NULL, &o, 3000);
    ck_assert(o.failed);
    ck_assert_str_eq(o.remote_code, "BAD");
    tu_amp_outcome_free(&o);
    /* A raw call counts under the name it gives. */
    tw_amp_box *args = tw_amp_box_new();
    tw_amp_box_set_str(args, "a", "5");
    tw_amp_box_set_str(args, "b", "6");
    int raw = 0;
    tw_deferred *d = tw_amp_call_remote_box(client_amp, "Sum", args);
    tw_amp_box_free(args);
    tw_deferred_add_callback(d, raw_answered, &raw);
    tw_deferred_unref(d);
    spin(R, &raw, 3000);
    ck_assert_int_eq(raw, 1);
    /* Unregistered on the server: an error too (UNHANDLED). */
    static const tw_amp_command nope = {.name = "Nope"};
    tu_amp_call(R, client_amp, &nope, NULL, &o, 3000);
    ck_assert_str_eq(o.remote_code, "UNHANDLED");
    tu_amp_outcome_free(&o);

    ck_assert_uint_eq(tw_amp_factory_call_count(client), 3);
    unsigned long long c[TW_AMP_CALL_OUTCOMES];
    const char *first;
    ck_assert_int_eq(tw_amp_factory_call_stats(client, 0, &first, c), 0);
    ck_assert_str_eq(first, "Sum"); /* in the order first called */
    ck_assert_uint_eq(c[TW_AMP_CALL_ANSWERED], 3);
    ck_assert_uint_eq(c[TW_AMP_CALL_BAD_ANSWER], 1);
    ck_assert_uint_eq(c[TW_AMP_CALL_ERROR], 0);
    ck_assert_uint_eq(c[TW_AMP_CALL_LOST], 0);
    counts_of(client, "Fail", c);
    ck_assert_uint_eq(c[TW_AMP_CALL_ERROR], 1);
    ck_assert_uint_eq(c[TW_AMP_CALL_ANSWERED], 0);
    counts_of(client, "Nope", c);
    ck_assert_uint_eq(c[TW_AMP_CALL_ERROR], 1);
    /* The server made no call: it answered. */
    ck_assert_uint_eq(tw_amp_factory_call_count(server), 0);
    ck_assert_int_eq(tw_amp_factory_call_stats(client, 3, NULL, c), -EINVAL);
    tw_amp_lose_connection(client_amp);
    spin_ms(R, 20);
}
END_TEST

START_TEST(test_a_lost_connection_a_cancel_and_a_call_never_sent_count_apart)
{
    pair();
    tu_amp_outcome lost = {0}, cancelled = {0}, unsent = {0};
    tw_deferred *d1 = tw_amp_call_remote(client_amp, &HANG, NULL);
    tw_deferred_add_both(d1, tu_amp_on_result, &lost);
    tw_deferred_unref(d1);
    tw_deferred *d2 = tw_amp_call_remote(client_amp, &HANG, NULL);
    tw_deferred_add_both(d2, tu_amp_on_result, &cancelled);
    long long deadline = tu_now_ms() + 3000;
    while (nhanging < 2 && tu_now_ms() < deadline)
        tw_reactor_iterate(R, 0.005);
    ck_assert_int_eq(nhanging, 2);
    tw_deferred_cancel(d2); /* as a timeout would */
    tw_deferred_unref(d2);
    ck_assert(cancelled.done && cancelled.failed);
    /* Arguments that do not encode (Sum's are missing): never sent. */
    tw_amp_values *none = tw_amp_values_new();
    tw_deferred *d3 = tw_amp_call_remote(client_amp, &SUM, none);
    tw_amp_values_free(none);
    tw_deferred_add_both(d3, tu_amp_on_result, &unsent);
    tw_deferred_unref(d3);
    ck_assert(unsent.done && unsent.failed);
    ck_assert_int_eq(unsent.code, -EINVAL);
    unsigned long long c[TW_AMP_CALL_OUTCOMES];
    counts_of(client, "Sum", c);
    ck_assert_uint_eq(c[TW_AMP_CALL_NOT_SENT], 1);
    ck_assert_uint_eq(c[TW_AMP_CALL_ANSWERED], 0);
    ck_assert_uint_eq(tw_amp_factory_call_count(client), 1); /* Hang's wait for their outcome */

    /* The connection goes: the waiting call is lost; the cancelled one
     * counts as cancelled, once, though its answer never came either. */
    tw_amp_lose_connection(client_amp);
    spin(R, &lost.done, 3000);
    ck_assert(lost.failed);
    ck_assert_int_eq(lost.code, TW_ECONNLOST);
    counts_of(client, "Hang", c);
    ck_assert_uint_eq(c[TW_AMP_CALL_LOST], 1);
    ck_assert_uint_eq(c[TW_AMP_CALL_CANCELLED], 1);
    ck_assert_uint_eq(c[TW_AMP_CALL_ANSWERED] + c[TW_AMP_CALL_ERROR] + c[TW_AMP_CALL_NOT_SENT], 0);
    tu_amp_outcome_free(&lost);
    tu_amp_outcome_free(&cancelled);
    tu_amp_outcome_free(&unsent);
}
END_TEST

START_TEST(test_outcome_names_are_stable)
{
    ck_assert_str_eq(tw_amp_call_outcome_name(TW_AMP_CALL_ANSWERED), "answered");
    ck_assert_str_eq(tw_amp_call_outcome_name(TW_AMP_CALL_ERROR), "error");
    ck_assert_str_eq(tw_amp_call_outcome_name(TW_AMP_CALL_BAD_ANSWER), "bad_answer");
    ck_assert_str_eq(tw_amp_call_outcome_name(TW_AMP_CALL_LOST), "connection_lost");
    ck_assert_str_eq(tw_amp_call_outcome_name(TW_AMP_CALL_CANCELLED), "cancelled");
    ck_assert_str_eq(tw_amp_call_outcome_name(TW_AMP_CALL_NOT_SENT), "not_sent");
    ck_assert_str_eq(tw_amp_call_outcome_name(TW_AMP_CALL_OUTCOMES), "unknown");
    ck_assert_uint_eq(tw_amp_factory_call_count(NULL), 0);
    unsigned long long c[TW_AMP_CALL_OUTCOMES];
    ck_assert_int_eq(tw_amp_factory_call_stats(NULL, 0, NULL, c), -EINVAL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("amp_call_stats");
    TCase *tc = tcase_create("calls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_answers_errors_and_bad_answers_count_by_command);
    tcase_add_test(tc, test_a_lost_connection_a_cancel_and_a_call_never_sent_count_apart);
    tcase_add_test(tc, test_outcome_names_are_stable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
