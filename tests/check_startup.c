/* SPDX-License-Identifier: MIT */
/*
 * Startup triggers and call_when_running, with Twisted's semantics
 * (addSystemEventTrigger(phase, "startup", f), callWhenRunning, running):
 * under tw_reactor_run(), where startup comes before the first dispatch, and
 * on an event_base a host drives, where the loop's first pass begins it.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>

/* The order things happened in: one letter each. */
static char trace[64];
static tw_reactor *reactor;

static void note(char c)
{
    size_t n = strlen(trace);
    ck_assert_uint_lt(n, sizeof trace - 1);
    trace[n] = c;
}

static void setup(void)
{
    memset(trace, 0, sizeof trace);
    reactor = tw_reactor_new();
    ck_assert_ptr_nonnull(reactor);
}

static void teardown(void)
{
    tw_reactor_free(reactor);
    reactor = NULL;
}

/* A trigger that notes its letter and whether the reactor was running. */
static tw_deferred *noting_trigger(void *arg)
{
    note(*(const char *)arg);
    note(tw_reactor_running(reactor) ? '+' : '-');
    return NULL;
}

static void noting_call(void *arg)
{
    note(*(const char *)arg);
}

static void stop_call(void *arg)
{
    (void)arg;
    note('S');
    tw_reactor_stop(reactor);
}

START_TEST(test_startup_phases_run_in_order_before_any_timed_call)
{
    ck_assert_int_eq(tw_reactor_call_later(reactor, 0, noting_call, "t", NULL), 0);
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_AFTER, noting_trigger, "a",
                                                    NULL), 0);
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_DURING, noting_trigger,
                                                    "d", NULL), 0);
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_BEFORE, noting_trigger,
                                                    "b", NULL), 0);
    ck_assert_int_eq(tw_reactor_call_later(reactor, 0.01, stop_call, NULL, NULL), 0);
    ck_assert_int_eq(tw_reactor_running(reactor), 0);
    ck_assert_int_eq(tw_reactor_run(reactor), 0);
    /* "running" begins with the "during" phase; the timed call comes after. */
    ck_assert_str_eq(trace, "b-d+a+tS");
    ck_assert_int_eq(tw_reactor_running(reactor), 0);
}
END_TEST

static void fire_later(void *arg)
{
    note('f');
    tw_deferred_callback(arg, NULL, NULL);
    tw_deferred_unref(arg);
}

static tw_deferred *slow_trigger(void *arg)
{
    (void)arg;
    note('b');
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_reactor_call_later(reactor, 0.01, fire_later, tw_deferred_ref(d), NULL),
                     0);
    return d; /* our reference passes to the reactor */
}

START_TEST(test_startup_phase_waits_for_the_deferreds_its_triggers_return)
{
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_BEFORE, slow_trigger, NULL,
                                                    NULL), 0);
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, stop_call, NULL), 0);
    ck_assert_int_eq(tw_reactor_run(reactor), 0);
    ck_assert_str_eq(trace, "bfS");
}
END_TEST

static void running_call(void *arg)
{
    (void)arg;
    note('r');
    /* While running, call_when_running calls at once. */
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, noting_call, "n"), 0);
    note('.');
    tw_reactor_stop(reactor);
}

START_TEST(test_call_when_running_waits_for_startup_then_calls_at_once)
{
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, running_call, NULL), 0);
    ck_assert_str_eq(trace, "");
    ck_assert_int_eq(tw_reactor_run(reactor), 0);
    ck_assert_str_eq(trace, "rn.");
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, NULL, NULL), -EINVAL);
}
END_TEST

static int logged_failures;

static void capture(tw_log_level level, const char *subsystem, const char *message, void *arg)
{
    (void)arg;
    if (level == TW_LOG_ERROR && strcmp(subsystem, "reactor") == 0 &&
        strstr(message, "startup trigger failed") != NULL)
        logged_failures++;
}

static tw_deferred *failing_trigger(void *arg)
{
    (void)arg;
    return tw_deferred_fail(tw_failure_new(TW_EFAIL, "cannot start"));
}

START_TEST(test_a_failed_startup_trigger_is_logged_and_startup_goes_on)
{
    logged_failures = 0;
    tw_log_set_handler(capture, NULL);
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_BEFORE, failing_trigger,
                                                    NULL, NULL), 0);
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, stop_call, NULL), 0);
    ck_assert_int_eq(tw_reactor_run(reactor), 0);
    tw_log_set_handler(NULL, NULL);
    ck_assert_int_eq(logged_failures, 1);
    ck_assert_str_eq(trace, "S");
}
END_TEST

START_TEST(test_a_removed_startup_trigger_does_not_run)
{
    tw_trigger_id id;
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_DURING, noting_trigger,
                                                    "x", &id), 0);
    ck_assert_int_eq(tw_reactor_remove_trigger(reactor, id), 0);
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, 7, noting_trigger, "x", NULL),
                     -EINVAL);
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, stop_call, NULL), 0);
    ck_assert_int_eq(tw_reactor_run(reactor), 0);
    ck_assert_str_eq(trace, "S");
}
END_TEST

static tw_deferred *pending; /* a startup deferred the test fires itself */

static tw_deferred *stuck_trigger(void *arg)
{
    (void)arg;
    note('b');
    pending = tw_deferred_new(NULL, NULL);
    return tw_deferred_ref(pending);
}

START_TEST(test_stop_during_startup_abandons_it_and_the_next_run_starts_up_again)
{
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_BEFORE, stuck_trigger, NULL,
                                                    NULL), 0);
    ck_assert_int_eq(tw_reactor_add_startup_trigger(reactor, TW_TRIGGER_DURING, noting_trigger,
                                                    "d", NULL), 0);
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, noting_call, "w"), 0);
    ck_assert_int_eq(tw_reactor_call_later(reactor, 0.01, stop_call, NULL, NULL), 0);
    ck_assert_int_eq(tw_reactor_run(reactor), 0);
    ck_assert_str_eq(trace, "bS"); /* never running */
    /* The abandoned startup's deferred fires late: it changes nothing. */
    tw_deferred_callback(pending, NULL, NULL);
    tw_deferred_unref(pending);
    ck_assert_int_eq(tw_reactor_running(reactor), 0);

    /* The triggers that did not run are there for the next run. */
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, stop_call, NULL), 0);
    ck_assert_int_eq(tw_reactor_run(reactor), 0);
    ck_assert_str_eq(trace, "bSd+wS");
}
END_TEST

START_TEST(test_a_host_driven_loop_starts_up_on_its_first_pass)
{
    tw_reactor_free(reactor); /* the fixture's; this test makes its own */
    struct event_base *base = event_base_new();
    tw_reactor *hosted = tw_reactor_new_with_base(base);
    reactor = hosted; /* for the triggers' running check */
    ck_assert_int_eq(tw_reactor_add_startup_trigger(hosted, TW_TRIGGER_BEFORE, noting_trigger, "b",
                                                    NULL), 0);
    ck_assert_int_eq(tw_reactor_call_when_running(hosted, noting_call, "w"), 0);
    ck_assert_str_eq(trace, ""); /* nothing before the host's loop runs */
    ck_assert_int_eq(tw_reactor_running(hosted), 0);
    ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 0);
    ck_assert_str_eq(trace, "b-w");
    ck_assert_int_ne(tw_reactor_running(hosted), 0);
    /* tw_reactor_stop() ends "running" in its "during" phase. */
    tw_reactor_stop(hosted);
    ck_assert_int_eq(tw_reactor_running(hosted), 0);
    tw_reactor_free(hosted);
    event_base_free(base);
    reactor = tw_reactor_new(); /* for teardown */
}
END_TEST

START_TEST(test_iterate_starts_up_before_it_waits)
{
    ck_assert_int_eq(tw_reactor_call_when_running(reactor, noting_call, "w"), 0);
    ck_assert_int_eq(tw_reactor_iterate(reactor, 0), 0);
    ck_assert_str_eq(trace, "w");
    ck_assert_int_ne(tw_reactor_running(reactor), 0);
}
END_TEST

static Suite *startup_suite(void)
{
    Suite *s = suite_create("startup");
    TCase *tc = tcase_create("startup");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_startup_phases_run_in_order_before_any_timed_call);
    tcase_add_test(tc, test_startup_phase_waits_for_the_deferreds_its_triggers_return);
    tcase_add_test(tc, test_call_when_running_waits_for_startup_then_calls_at_once);
    tcase_add_test(tc, test_a_failed_startup_trigger_is_logged_and_startup_goes_on);
    tcase_add_test(tc, test_a_removed_startup_trigger_does_not_run);
    tcase_add_test(tc, test_stop_during_startup_abandons_it_and_the_next_run_starts_up_again);
    tcase_add_test(tc, test_a_host_driven_loop_starts_up_on_its_first_pass);
    tcase_add_test(tc, test_iterate_starts_up_before_it_waits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(startup_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
