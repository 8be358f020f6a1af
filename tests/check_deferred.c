/* SPDX-License-Identifier: MIT */
/*
 * tw_deferred, specified by example: firing, chains, deferreds returned from
 * callbacks, pause, cancel, timeouts, gather/list, ownership of results and
 * callback arguments, unhandled-failure reports and debug mode. Values are
 * heap integers whose destructor counts, so "destroyed exactly once" is an
 * assertion here, and valgrind/ASan runs check the rest.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/deferred.h>
#include <twine/failure.h>
#include <twine/log.h>
#include <twine/reactor.h>

/* ---- Fixtures ---------------------------------------------------------- */

static int freed; /* value destructor calls */

static int *new_int(int v)
{
    int *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    *p = v;
    return p;
}

static void free_int(void *p)
{
    freed++;
    free(p);
}

static struct {
    int count;
    tw_log_level level;
    char message[2048];
} logged;

static void capture_log(tw_log_level level, const char *subsystem, const char *message, void *arg)
{
    (void)arg;
    if (strcmp(subsystem, "deferred") != 0)
        return;
    logged.count++;
    logged.level = level;
    snprintf(logged.message, sizeof logged.message, "%s", message);
}

static void setup(void)
{
    freed = 0;
    memset(&logged, 0, sizeof logged);
    tw_log_set_handler(capture_log, NULL);
    tw_deferred_set_debug(0);
}

static void teardown(void)
{
    tw_log_set_handler(NULL, NULL);
    tw_deferred_set_debug(0);
}

/* What a callback saw. */
typedef struct probe {
    int calls;
    int failed;
    int value; /* *(int *)value, or -1 for NULL */
    int code;
    char message[256];
} probe;

static void observe(tw_deferred *d, tw_result *res, void *arg)
{
    probe *p = arg;
    (void)d;
    p->calls++;
    p->failed = tw_result_is_failure(res);
    if (p->failed) {
        p->code = tw_failure_code(tw_result_failure(res));
        tw_failure_format(tw_result_failure(res), p->message, sizeof p->message);
    } else {
        int *v = tw_result_value(res);
        p->value = v != NULL ? *v : -1;
    }
}

/* observe(), then handle a failure so nothing is reported. */
static void observe_and_handle(tw_deferred *d, tw_result *res, void *arg)
{
    observe(d, res, arg);
    tw_failure_unref(tw_result_take_failure(res));
}

static void add_one(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    int *v = tw_result_value(res);
    tw_result_set_value(res, new_int(*v + 1), free_int);
}

static void increment_in_place(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    (*(int *)tw_result_value(res))++;
}

static void fail_with_efail(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    tw_result_set_failure(res, tw_failure_new(TW_EFAIL, "boom"));
}

static void recover_with_99(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    tw_result_set_value(res, new_int(99), free_int);
}

static void return_deferred(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    ck_assert_int_eq(tw_result_set_deferred(res, arg), 0);
}

static void count_call(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)res;
    (*(int *)arg)++;
}

static int args_freed;

static void count_arg_free(void *arg)
{
    (void)arg;
    args_freed++;
}

static int canceller_calls;

static void counting_canceller(tw_deferred *d, void *arg)
{
    (void)d;
    (void)arg;
    canceller_calls++;
}

static void canceller_fires_7(tw_deferred *d, void *arg)
{
    (void)arg;
    canceller_calls++;
    ck_assert_int_eq(tw_deferred_callback(d, new_int(7), free_int), 0);
}

/* ---- Creation and firing ----------------------------------------------- */

START_TEST(test_callback_passes_value_to_first_callback)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_add_callback(d, observe, &p), 0);
    ck_assert_int_eq(p.calls, 0);
    ck_assert_int_eq(tw_deferred_callback(d, new_int(5), free_int), 0);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.value, 5);
    ck_assert(tw_deferred_called(d));
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_errback_passes_failure_to_first_errback)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    ck_assert_int_eq(tw_deferred_errback(d, tw_failure_new(TW_EFAIL, "it broke")), 0);
    ck_assert_int_eq(p.calls, 1);
    ck_assert(p.failed);
    ck_assert_int_eq(p.code, TW_EFAIL);
    ck_assert_str_eq(p.message, "it broke");
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

START_TEST(test_errback_with_null_failure_uses_generic_failure)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    ck_assert_int_eq(tw_deferred_errback(d, NULL), 0);
    ck_assert_int_eq(p.code, TW_EFAIL);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_failure_carries_code_message_and_cause)
{
    probe p = {0};
    tw_failure *f = tw_failure_wrap(tw_failure_new(-ECONNREFUSED, "refused"), TW_EFAIL,
                                    "connect to %s", "example.org:80");
    tw_deferred *d = tw_deferred_fail(f);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    ck_assert_int_eq(p.code, TW_EFAIL);
    ck_assert_str_eq(p.message, "connect to example.org:80: refused");
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_callback_twice_returns_already_fired)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_callback(d, new_int(1), free_int), 0);
    ck_assert_int_eq(tw_deferred_callback(d, new_int(2), free_int), TW_EALREADY_FIRED);
    ck_assert_int_eq(freed, 1); /* the rejected value was destroyed at once */
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 2);
}
END_TEST

START_TEST(test_errback_after_callback_returns_already_fired)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_callback(d, NULL, NULL), 0);
    ck_assert_int_eq(tw_deferred_errback(d, tw_failure_new(TW_EFAIL, NULL)), TW_EALREADY_FIRED);
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 1); /* the misuse, not an unhandled failure */
    ck_assert_ptr_nonnull(strstr(logged.message, "fired twice"));
}
END_TEST

START_TEST(test_callback_after_errback_returns_already_fired)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    ck_assert_int_eq(tw_deferred_errback(d, NULL), 0);
    ck_assert_int_eq(tw_deferred_callback(d, new_int(1), free_int), TW_EALREADY_FIRED);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(freed, 1);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_misuse_with_null_returns_einval)
{
    ck_assert_int_eq(tw_deferred_callback(NULL, new_int(1), free_int), -EINVAL);
    ck_assert_int_eq(freed, 1);
    ck_assert_int_eq(tw_deferred_errback(NULL, NULL), -EINVAL);
    ck_assert_int_eq(tw_deferred_add_callback(NULL, observe, NULL), -EINVAL);
    ck_assert_int_eq(tw_deferred_pause(NULL), -EINVAL);
    ck_assert_int_eq(tw_deferred_unpause(NULL), -EINVAL);
    ck_assert_int_eq(tw_deferred_cancel(NULL), -EINVAL);
    tw_deferred_unref(NULL);
    ck_assert_ptr_null(tw_deferred_ref(NULL));
}
END_TEST

START_TEST(test_succeed_creates_fired_deferred)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_succeed(new_int(3), free_int);
    ck_assert(tw_deferred_called(d));
    tw_deferred_add_callback(d, observe, &p);
    ck_assert_int_eq(p.calls, 1); /* ran synchronously inside add */
    ck_assert_int_eq(p.value, 3);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_fail_creates_failed_deferred)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_fail(tw_failure_new(TW_EPROTO, NULL));
    ck_assert(tw_deferred_called(d));
    tw_deferred_add_errback(d, observe_and_handle, &p);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.code, TW_EPROTO);
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

START_TEST(test_callbacks_do_not_run_before_fire)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_both(d, observe, &p);
    ck_assert_int_eq(p.calls, 0);
    ck_assert(!tw_deferred_called(d));
    tw_deferred_unref(d);
    ck_assert_int_eq(p.calls, 0);
}
END_TEST

/* ---- Chains ------------------------------------------------------------ */

START_TEST(test_add_callbacks_runs_callback_on_success_only)
{
    probe cb = {0}, eb = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, observe, &cb);
    tw_deferred_add_callbacks(d, NULL, observe_and_handle, &eb);
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(cb.calls, 1);
    ck_assert_int_eq(eb.calls, 0);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_add_callbacks_runs_errback_on_failure_only)
{
    probe cb = {0}, eb = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, observe, &cb);
    tw_deferred_add_errback(d, observe_and_handle, &eb);
    tw_deferred_errback(d, NULL);
    ck_assert_int_eq(cb.calls, 0);
    ck_assert_int_eq(eb.calls, 1);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_add_both_runs_on_success_and_on_failure)
{
    probe ok = {0}, bad = {0};
    tw_deferred *a = tw_deferred_succeed(NULL, NULL);
    tw_deferred *b = tw_deferred_fail(NULL);
    tw_deferred_add_both(a, observe_and_handle, &ok);
    tw_deferred_add_both(b, observe_and_handle, &bad);
    ck_assert_int_eq(ok.calls, 1);
    ck_assert(!ok.failed);
    ck_assert_int_eq(bad.calls, 1);
    ck_assert(bad.failed);
    tw_deferred_unref(a);
    tw_deferred_unref(b);
}
END_TEST

START_TEST(test_callback_result_passes_to_next_callback)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, add_one, NULL);
    tw_deferred_add_callback(d, add_one, NULL);
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(p.value, 3);
    ck_assert_int_eq(freed, 2); /* the replaced values */
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 3);
}
END_TEST

START_TEST(test_untouched_result_passes_through)
{
    probe p = {0};
    int calls = 0;
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, count_call, &calls);
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_callback(d, new_int(4), free_int);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(p.value, 4);
    ck_assert_int_eq(freed, 0);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_callback_returning_failure_switches_to_errback_path)
{
    probe skipped = {0}, eb = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, fail_with_efail, NULL);
    tw_deferred_add_callback(d, observe, &skipped);
    tw_deferred_add_errback(d, observe_and_handle, &eb);
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(freed, 1); /* the value the failure replaced */
    ck_assert_int_eq(skipped.calls, 0);
    ck_assert_int_eq(eb.calls, 1);
    ck_assert_str_eq(eb.message, "boom");
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_errback_returning_value_switches_to_callback_path)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, recover_with_99, NULL);
    tw_deferred_add_callbacks(d, observe, observe, &p);
    tw_deferred_errback(d, NULL);
    ck_assert(!p.failed);
    ck_assert_int_eq(p.value, 99);
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 0);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_errback_leaving_failure_passes_it_to_next_errback)
{
    probe first = {0}, second = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, observe, &first);
    tw_deferred_add_errback(d, observe_and_handle, &second);
    tw_deferred_errback(d, tw_failure_new(TW_EPROTO, NULL));
    ck_assert_int_eq(first.calls, 1);
    ck_assert_int_eq(second.calls, 1);
    ck_assert_int_eq(second.code, TW_EPROTO);
    tw_deferred_unref(d);
}
END_TEST

static tw_failure *kept_failure;

static void keep_failure(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    kept_failure = tw_result_take_failure(res);
}

START_TEST(test_take_failure_handles_it_and_hands_over_a_reference)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_fail(tw_failure_new(TW_EPROTO, "bad"));
    tw_deferred_add_errback(d, keep_failure, NULL);
    tw_deferred_add_callback(d, observe, &p);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.value, -1); /* continues with a NULL value */
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 0);
    ck_assert_str_eq(tw_failure_message(kept_failure), "bad");
    tw_failure_unref(kept_failure);
}
END_TEST

static void *taken_value;
static tw_free_fn taken_free;

static void take_value(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    taken_value = tw_result_take_value(res, &taken_free);
}

START_TEST(test_take_value_transfers_ownership_to_callback)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_succeed(new_int(8), free_int);
    tw_deferred_add_callback(d, take_value, NULL);
    tw_deferred_add_callback(d, observe, &p);
    ck_assert_int_eq(p.value, -1);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 0); /* the chain no longer owned it */
    ck_assert_int_eq(*(int *)taken_value, 8);
    ck_assert_ptr_eq((void *)taken_free, (void *)free_int);
    taken_free(taken_value);
    ck_assert_int_eq(freed, 1);
}
END_TEST

static void reset_same_value_without_destructor(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    tw_result_set_value(res, tw_result_value(res), NULL);
}

START_TEST(test_set_value_with_held_value_only_changes_destructor)
{
    int *v = new_int(1);
    tw_deferred *d = tw_deferred_succeed(v, free_int);
    tw_deferred_add_callback(d, reset_same_value_without_destructor, NULL);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 0);
    free(v);
}
END_TEST

START_TEST(test_callback_added_from_a_callback_runs_in_turn)
{
    int calls = 0;
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, count_call, &calls);
    tw_deferred_callback(d, new_int(1), free_int);
    /* From a callback of an already-fired deferred: appended, then run. */
    tw_deferred_add_callback(d, add_one, NULL);
    tw_deferred_add_callback(d, observe, &p);
    ck_assert_int_eq(p.value, 2);
    tw_deferred_unref(d);
    ck_assert_int_eq(calls, 1);
}
END_TEST

static void adds_another(tw_deferred *d, tw_result *res, void *arg)
{
    (void)res;
    tw_deferred_add_callback(d, observe, arg); /* runs after us, not inside */
    ck_assert_int_eq(((probe *)arg)->calls, 0);
}

START_TEST(test_callback_added_inside_running_chain_runs_after_current_one)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, adds_another, &p);
    tw_deferred_callback(d, new_int(6), free_int);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.value, 6);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_callback_returning_fired_deferred_takes_its_result)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_succeed(new_int(42), free_int);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_callback(outer, observe, &p);
    tw_deferred_callback(outer, new_int(1), free_int);
    ck_assert_int_eq(freed, 1); /* outer's own value, replaced */
    ck_assert(!tw_deferred_waiting(outer));
    ck_assert_int_eq(p.value, 42);
    tw_deferred_unref(inner);
    ck_assert_int_eq(freed, 1); /* 42 belongs to outer now */
    tw_deferred_unref(outer);
    ck_assert_int_eq(freed, 2);
}
END_TEST

START_TEST(test_callback_returning_pending_deferred_pauses_chain_until_it_fires)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_callback(outer, observe, &p);
    tw_deferred_callback(outer, NULL, NULL);
    ck_assert(tw_deferred_waiting(outer));
    ck_assert_int_eq(p.calls, 0);
    tw_deferred_callback(inner, new_int(10), free_int);
    ck_assert(!tw_deferred_waiting(outer));
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.value, 10);
    tw_deferred_unref(inner);
    tw_deferred_unref(outer);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_inner_failure_resumes_outer_on_errback_path)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_errback(outer, observe_and_handle, &p);
    tw_deferred_callback(outer, NULL, NULL);
    tw_deferred_errback(inner, tw_failure_new(TW_EPROTO, "inner broke"));
    ck_assert_int_eq(p.calls, 1);
    ck_assert_str_eq(p.message, "inner broke");
    tw_deferred_unref(inner);
    tw_deferred_unref(outer);
    ck_assert_int_eq(logged.count, 0); /* inner's failure went to outer */
}
END_TEST

START_TEST(test_inner_result_is_taken_over_by_outer)
{
    probe later = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_callback(outer, NULL, NULL);
    tw_deferred_callback(inner, new_int(10), free_int);
    tw_deferred_add_callback(inner, observe, &later);
    ck_assert_int_eq(later.value, -1);
    tw_deferred_unref(outer);
    ck_assert_int_eq(freed, 1);
    tw_deferred_unref(inner);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_callbacks_inner_had_run_before_outer_resumes)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(inner, add_one, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_callback(outer, observe, &p);
    tw_deferred_callback(outer, NULL, NULL);
    tw_deferred_callback(inner, new_int(1), free_int);
    ck_assert_int_eq(p.value, 2);
    tw_deferred_unref(inner);
    tw_deferred_unref(outer);
}
END_TEST

static void fire_other(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)res;
    ck_assert_int_eq(tw_deferred_callback(arg, NULL, NULL), 0);
}

START_TEST(test_callback_returning_deferred_whose_chain_is_running_gets_its_final_result)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *other = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(other, return_deferred, inner);
    tw_deferred_add_callback(other, observe, &p);
    tw_deferred_add_callback(inner, fire_other, other); /* other waits on inner */
    tw_deferred_add_callback(inner, add_one, NULL);
    tw_deferred_callback(inner, new_int(1), free_int);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.value, 2); /* after inner's add_one, not before */
    tw_deferred_unref(inner);
    tw_deferred_unref(other);
    ck_assert_int_eq(freed, 2);
}
END_TEST

static void return_self(tw_deferred *d, tw_result *res, void *arg)
{
    (void)arg;
    ck_assert_int_eq(tw_result_set_deferred(res, d), -EINVAL);
    ck_assert_int_eq(tw_result_set_deferred(res, NULL), -EINVAL);
}

START_TEST(test_callback_returning_its_own_deferred_returns_einval)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_succeed(new_int(2), free_int);
    tw_deferred_add_callback(d, return_self, NULL);
    tw_deferred_add_callback(d, observe, &p);
    ck_assert_int_eq(p.value, 2); /* result unchanged */
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_callback_returning_paused_fired_deferred_waits_for_unpause)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_succeed(new_int(5), free_int);
    tw_deferred_pause(inner);
    tw_deferred *outer = tw_deferred_succeed(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_callback(outer, observe, &p);
    ck_assert(tw_deferred_waiting(outer));
    ck_assert_int_eq(p.calls, 0);
    tw_deferred_unpause(inner);
    ck_assert_int_eq(p.value, 5);
    tw_deferred_unref(inner);
    tw_deferred_unref(outer);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_waiting_chain_is_kept_alive_by_the_deferred_it_waits_on)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_callback(outer, observe, &p);
    tw_deferred_callback(outer, NULL, NULL);
    tw_deferred_unref(outer); /* fire and forget */
    tw_deferred_callback(inner, new_int(3), free_int);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.value, 3);
    ck_assert_int_eq(freed, 1); /* outer was released once its chain ended */
    tw_deferred_unref(inner);
}
END_TEST

START_TEST(test_releasing_unfired_inner_releases_waiting_outer)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_callbacks_full(outer, observe, observe, &p, count_arg_free);
    args_freed = 0;
    tw_deferred_callback(outer, NULL, NULL);
    tw_deferred_unref(outer);
    ck_assert_int_eq(args_freed, 0);
    tw_deferred_unref(inner); /* nobody can fire either any more */
    ck_assert_int_eq(args_freed, 1);
    ck_assert_int_eq(p.calls, 0);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

/* ---- Deep chains, on a small stack ------------------------------------- */

#define DEEP 100000
#define SMALL_STACK (256 * 1024)

static void run_on_small_stack(void *(*fn)(void *))
{
    pthread_attr_t attr;
    pthread_t th;
    void *ret = NULL;
    ck_assert_int_eq(pthread_attr_init(&attr), 0);
    ck_assert_int_eq(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
    ck_assert_int_eq(pthread_create(&th, &attr, fn, NULL), 0);
    ck_assert_int_eq(pthread_join(th, &ret), 0);
    pthread_attr_destroy(&attr);
    ck_assert_ptr_eq(ret, (void *)1);
}

/* Each deferred's callback returns the next, still pending: a wait 100 000
 * deep that unwinds when the last one fires. */
static void *deep_waiting_chain(void *unused)
{
    (void)unused;
    static tw_deferred *ds[DEEP];
    probe p = {0};
    for (int i = 0; i < DEEP; i++)
        ds[i] = tw_deferred_new(NULL, NULL);
    for (int i = 0; i < DEEP - 1; i++)
        tw_deferred_add_callback(ds[i], return_deferred, ds[i + 1]);
    tw_deferred_add_callback(ds[0], observe, &p);
    for (int i = 0; i < DEEP - 1; i++)
        tw_deferred_callback(ds[i], NULL, NULL);
    int ok = tw_deferred_waiting(ds[0]) && p.calls == 0;
    tw_deferred_callback(ds[DEEP - 1], new_int(77), free_int);
    ok = ok && p.calls == 1 && p.value == 77;
    for (int i = 0; i < DEEP; i++)
        tw_deferred_unref(ds[i]);
    return (void *)(intptr_t)(ok && freed == 1);
}

START_TEST(test_chain_of_100000_waiting_deferreds_completes_on_small_stack)
{
    run_on_small_stack(deep_waiting_chain);
}
END_TEST

static void *many_callbacks(void *unused)
{
    (void)unused;
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    for (int i = 0; i < DEEP; i++)
        tw_deferred_add_callback(d, increment_in_place, NULL);
    probe p = {0};
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_callback(d, new_int(0), free_int);
    tw_deferred_unref(d);
    return (void *)(intptr_t)(p.value == DEEP && freed == 1);
}

START_TEST(test_100000_callbacks_on_one_deferred_complete_on_small_stack)
{
    run_on_small_stack(many_callbacks);
}
END_TEST

/* The creator lets go of each deferred as soon as it fired: only the waits
 * hold the chain together, and firing the bottom one completes and releases
 * all of it. */
static void *deep_chain_held_only_by_waits(void *unused)
{
    (void)unused;
    probe p = {0};
    tw_deferred *cur = tw_deferred_new(NULL, NULL);
    tw_deferred *next = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(cur, return_deferred, next);
    tw_deferred_add_callback(cur, observe, &p);
    for (int i = 0; i < DEEP; i++) {
        /* next's own callback must precede the continuation cur parks in
         * next's queue when it starts waiting. */
        tw_deferred *after = tw_deferred_new(NULL, NULL);
        tw_deferred_add_callback(next, return_deferred, after);
        tw_deferred_callback(cur, NULL, NULL); /* cur now waits on next */
        tw_deferred_unref(cur);
        cur = next;
        next = after;
    }
    tw_deferred_callback(cur, NULL, NULL);
    tw_deferred_unref(cur);
    int ok = p.calls == 0 && freed == 0;
    tw_deferred_callback(next, new_int(77), free_int);
    /* Nobody held the top: it was released, with 77, when its chain ended. */
    ok = ok && p.calls == 1 && p.value == 77 && freed == 1;
    tw_deferred_unref(next);
    return (void *)(intptr_t)(ok && freed == 1);
}

START_TEST(test_chain_of_100000_released_deferreds_completes_and_frees_on_small_stack)
{
    run_on_small_stack(deep_chain_held_only_by_waits);
}
END_TEST

static void *deep_cancel(void *unused)
{
    (void)unused;
    static tw_deferred *ds[DEEP];
    probe p = {0};
    for (int i = 0; i < DEEP; i++)
        ds[i] = tw_deferred_new(NULL, NULL);
    for (int i = 0; i < DEEP - 1; i++)
        tw_deferred_add_callback(ds[i], return_deferred, ds[i + 1]);
    tw_deferred_add_errback(ds[0], observe_and_handle, &p);
    for (int i = 0; i < DEEP - 1; i++)
        tw_deferred_callback(ds[i], NULL, NULL);
    tw_deferred_cancel(ds[0]);
    int ok = p.calls == 1 && p.code == TW_ECANCELLED;
    /* Release from the bottom: each release drops the next waiter too. */
    for (int i = DEEP - 1; i >= 0; i--)
        tw_deferred_unref(ds[i]);
    return (void *)(intptr_t)ok;
}

START_TEST(test_cancel_of_100000_deep_wait_reaches_bottom_on_small_stack)
{
    run_on_small_stack(deep_cancel);
}
END_TEST

/* ---- Pause ------------------------------------------------------------- */

START_TEST(test_pause_holds_callbacks_until_unpause)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, observe, &p);
    ck_assert_int_eq(tw_deferred_pause(d), 0);
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(p.calls, 0);
    ck_assert_int_eq(tw_deferred_unpause(d), 0);
    ck_assert_int_eq(p.calls, 1);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_pause_counts_nested_pauses)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_succeed(NULL, NULL);
    tw_deferred_pause(d);
    tw_deferred_pause(d);
    ck_assert_int_eq(tw_deferred_paused(d), 2);
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_unpause(d);
    ck_assert_int_eq(p.calls, 0);
    tw_deferred_unpause(d);
    ck_assert_int_eq(p.calls, 1);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_unpause_without_pause_returns_estate)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_unpause(d), TW_ESTATE);
    tw_deferred_unref(d);
}
END_TEST

static void pause_self(tw_deferred *d, tw_result *res, void *arg)
{
    (void)res;
    (void)arg;
    tw_deferred_pause(d);
}

START_TEST(test_pause_from_a_callback_stops_chain_after_it)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, pause_self, NULL);
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_callback(d, new_int(2), free_int);
    ck_assert_int_eq(p.calls, 0);
    tw_deferred_unpause(d);
    ck_assert_int_eq(p.value, 2);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_releasing_paused_deferred_destroys_held_value)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_pause(d);
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_callback(d, new_int(1), free_int);
    tw_deferred_unref(d);
    ck_assert_int_eq(p.calls, 0);
    ck_assert_int_eq(freed, 1);
}
END_TEST

/* ---- Cancellation ------------------------------------------------------ */

START_TEST(test_cancel_runs_the_canceller)
{
    probe p = {0};
    canceller_calls = 0;
    tw_deferred *d = tw_deferred_new(counting_canceller, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    ck_assert_int_eq(tw_deferred_cancel(d), 0);
    ck_assert_int_eq(canceller_calls, 1);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_cancel_without_canceller_errbacks_cancelled)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_cancel(d);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_cancel_when_canceller_does_not_fire_errbacks_cancelled)
{
    probe p = {0};
    canceller_calls = 0;
    tw_deferred *d = tw_deferred_new(counting_canceller, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_cancel(d);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_canceller_that_fires_decides_the_result)
{
    probe p = {0};
    canceller_calls = 0;
    tw_deferred *d = tw_deferred_new(canceller_fires_7, NULL);
    tw_deferred_add_both(d, observe_and_handle, &p);
    tw_deferred_cancel(d);
    ck_assert_int_eq(p.calls, 1);
    ck_assert(!p.failed);
    ck_assert_int_eq(p.value, 7);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_callback_after_cancel_is_swallowed_once)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_both(d, observe_and_handle, &p);
    tw_deferred_cancel(d);
    ck_assert_int_eq(tw_deferred_callback(d, new_int(1), free_int), 0);
    ck_assert_int_eq(freed, 1); /* the late value is destroyed */
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(logged.count, 0);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_second_late_callback_after_cancel_returns_already_fired)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &(probe){0});
    tw_deferred_cancel(d);
    ck_assert_int_eq(tw_deferred_errback(d, NULL), 0);
    ck_assert_int_eq(tw_deferred_callback(d, NULL, NULL), TW_EALREADY_FIRED);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_late_callback_after_cancel_with_canceller_returns_already_fired)
{
    /* As in Twisted: a canceller is trusted to have stopped the work. */
    tw_deferred *d = tw_deferred_new(counting_canceller, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &(probe){0});
    tw_deferred_cancel(d);
    ck_assert_int_eq(tw_deferred_callback(d, NULL, NULL), TW_EALREADY_FIRED);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_cancel_after_fire_does_nothing)
{
    probe p = {0};
    canceller_calls = 0;
    tw_deferred *d = tw_deferred_new(counting_canceller, NULL);
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(tw_deferred_cancel(d), 0);
    ck_assert_int_eq(canceller_calls, 0);
    tw_deferred_add_callback(d, observe, &p);
    ck_assert_int_eq(p.value, 1);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_cancel_of_waiting_deferred_cancels_inner)
{
    probe p = {0};
    canceller_calls = 0;
    tw_deferred *inner = tw_deferred_new(counting_canceller, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_errback(outer, observe_and_handle, &p);
    tw_deferred_callback(outer, NULL, NULL);
    tw_deferred_cancel(outer);
    ck_assert_int_eq(canceller_calls, 1);
    ck_assert(tw_deferred_called(inner));
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    tw_deferred_unref(inner);
    tw_deferred_unref(outer);
}
END_TEST

START_TEST(test_cancel_of_unfired_paused_deferred_errbacks_on_unpause)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_pause(d);
    tw_deferred_cancel(d);
    ck_assert(tw_deferred_called(d));
    ck_assert_int_eq(p.calls, 0);
    tw_deferred_unpause(d);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_cancel_of_fired_paused_deferred_keeps_its_result)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_both(d, observe_and_handle, &p);
    tw_deferred_pause(d);
    tw_deferred_callback(d, new_int(4), free_int);
    tw_deferred_cancel(d);
    tw_deferred_unpause(d);
    ck_assert(!p.failed);
    ck_assert_int_eq(p.value, 4);
    tw_deferred_unref(d);
}
END_TEST

START_TEST(test_cancel_of_deferred_waiting_on_released_inner_errbacks_cancelled)
{
    probe p = {0};
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_errback(outer, observe_and_handle, &p);
    tw_deferred_callback(outer, NULL, NULL);
    tw_deferred_unref(inner); /* abandoned: it can never fire */
    ck_assert(tw_deferred_waiting(outer));
    tw_deferred_cancel(outer);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    tw_deferred_unref(outer);
}
END_TEST

START_TEST(test_cancelled_value_held_by_a_paused_chain_is_destroyed_once)
{
    /* outer holds 5 when it is cancelled while waiting; the inner's
     * cancellation replaces nothing of outer's, and 5 was replaced (and
     * destroyed) when the callback returned the inner deferred. */
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_errback(outer, observe_and_handle, &(probe){0});
    tw_deferred_callback(outer, new_int(5), free_int);
    ck_assert_int_eq(freed, 1);
    tw_deferred_cancel(outer);
    ck_assert_int_eq(tw_deferred_callback(inner, new_int(6), free_int), 0); /* swallowed */
    ck_assert_int_eq(freed, 2);
    tw_deferred_unref(inner);
    tw_deferred_unref(outer);
    ck_assert_int_eq(freed, 2);
}
END_TEST

/* ---- Timeouts and defer_later (real reactor) ---------------------------- */

static void stop_on_result(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)res;
    tw_reactor_stop(arg);
}

static int guard_hit;

static void guard_stop(void *arg)
{
    guard_hit = 1;
    tw_reactor_stop(arg);
}

/* Run @p r until something stops it, but never longer than 5 s. */
static void run_bounded(tw_reactor *r)
{
    tw_call *guard = NULL;
    guard_hit = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 5.0, guard_stop, r, &guard), 0);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    tw_call_cancel(guard); /* may have been dropped by the stop already */
    tw_call_release(guard);
    ck_assert_msg(!guard_hit, "the reactor ran into the 5 s guard");
}

START_TEST(test_timeout_fails_deferred_with_timed_out)
{
    probe p = {0};
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_add_timeout(d, r, 0.01), 0);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_add_both(d, stop_on_result, r);
    run_bounded(r);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.code, TW_ETIMEDOUT);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_timeout_timer_is_cancelled_when_deferred_fires_first)
{
    probe p = {0};
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_add_timeout(d, r, 10.0), 0);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 1);
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(p.value, 1);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_timeout_on_fired_deferred_cancels_its_timer_at_once)
{
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_succeed(NULL, NULL);
    ck_assert_int_eq(tw_deferred_add_timeout(d, r, 10.0), 0);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_timeout_keeps_released_deferred_until_it_times_out)
{
    probe p = {0};
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_timeout(d, r, 0.01);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_add_both(d, stop_on_result, r);
    tw_deferred_unref(d);
    run_bounded(r);
    ck_assert_int_eq(p.code, TW_ETIMEDOUT);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_timeout_leaves_other_failures_untouched)
{
    probe p = {0};
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_timeout(d, r, 10.0);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_errback(d, tw_failure_new(TW_EPROTO, NULL));
    ck_assert_int_eq(p.code, TW_EPROTO);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_cancel_before_timeout_stays_cancelled)
{
    probe p = {0};
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_timeout(d, r, 10.0);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_cancel(d);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_timeout_cancels_inner_deferred_the_chain_waits_on)
{
    probe p = {0};
    canceller_calls = 0;
    tw_reactor *r = tw_reactor_new();
    tw_deferred *inner = tw_deferred_new(counting_canceller, NULL);
    tw_deferred *outer = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_add_timeout(outer, r, 0.01);
    tw_deferred_add_errback(outer, observe_and_handle, &p);
    tw_deferred_add_both(outer, stop_on_result, r);
    tw_deferred_callback(outer, NULL, NULL);
    run_bounded(r);
    ck_assert_int_eq(canceller_calls, 1);
    ck_assert_int_eq(p.code, TW_ETIMEDOUT);
    tw_deferred_unref(inner);
    tw_deferred_unref(outer);
    tw_reactor_free(r);
}
END_TEST

static void make_21(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (*(int *)arg)++;
    tw_result_set_value(res, new_int(21), free_int);
}

static void stop_now(void *arg)
{
    tw_reactor_stop(arg);
}

START_TEST(test_timeout_dropped_by_reactor_stop_is_released_when_deferred_fires)
{
    probe p = {0};
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_timeout(d, r, 10.0);
    tw_deferred_add_callback(d, observe, &p);
    tw_reactor_call_later(r, 0, stop_now, r, NULL);
    run_bounded(r); /* stopping drops the pending timeout timer */
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(p.value, 1);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1); /* released, not held by the dead timer */
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_defer_later_dropped_by_reactor_stop_is_released_when_cancelled)
{
    probe p = {0};
    int calls = 0;
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_defer_later(r, 10.0, make_21, &calls);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_reactor_call_later(r, 0, stop_now, r, NULL);
    run_bounded(r);
    tw_deferred_cancel(d);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    ck_assert_int_eq(calls, 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_add_timeout_rejects_bad_arguments)
{
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_add_timeout(d, r, -1.0), -EINVAL);
    ck_assert_int_eq(tw_deferred_add_timeout(d, NULL, 1.0), -EINVAL);
    ck_assert_int_eq(tw_deferred_add_timeout(NULL, r, 1.0), -EINVAL);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_defer_later_fires_with_function_result_after_delay)
{
    probe p = {0};
    int calls = 0;
    tw_reactor *r = tw_reactor_new();
    double t0 = tw_reactor_seconds(r);
    tw_deferred *d = tw_defer_later(r, 0.02, make_21, &calls);
    ck_assert_ptr_nonnull(d);
    tw_deferred_add_callback(d, observe, &p);
    tw_deferred_add_both(d, stop_on_result, r);
    ck_assert_int_eq(calls, 0);
    run_bounded(r);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(p.value, 21);
    ck_assert(tw_reactor_seconds(r) - t0 >= 0.015);
    tw_deferred_unref(d);
    tw_reactor_free(r);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_defer_later_function_may_fail)
{
    probe p = {0};
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_defer_later(r, 0, fail_with_efail, NULL);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_add_both(d, stop_on_result, r);
    run_bounded(r);
    ck_assert_str_eq(p.message, "boom");
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_defer_later_cancel_cancels_timer_and_skips_function)
{
    probe p = {0};
    int calls = 0;
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_defer_later(r, 10.0, make_21, &calls);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 1);
    tw_deferred_add_errback(d, observe_and_handle, &p);
    tw_deferred_cancel(d);
    ck_assert_int_eq(tw_reactor_pending_calls(r), 0);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    ck_assert_int_eq(calls, 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_defer_later_rejects_negative_delay)
{
    tw_reactor *r = tw_reactor_new();
    ck_assert_ptr_null(tw_defer_later(r, -1.0, NULL, NULL));
    ck_assert_ptr_null(tw_defer_later(NULL, 1.0, NULL, NULL));
    ck_assert_int_eq(tw_reactor_pending_calls(r), 0);
    tw_reactor_free(r);
}
END_TEST

/* ---- gather and list --------------------------------------------------- */

static tw_deferred_outcomes *outcomes_seen;
static int outcomes_calls;

static void count_outcomes(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    outcomes_calls++;
    outcomes_seen = tw_result_value(res);
}

START_TEST(test_gather_fires_with_all_results_in_input_order)
{
    tw_deferred *in[3] = {tw_deferred_new(NULL, NULL), tw_deferred_new(NULL, NULL),
                          tw_deferred_new(NULL, NULL)};
    tw_deferred *all = tw_deferred_gather(in, 3);
    ck_assert_ptr_nonnull(all);
    outcomes_calls = 0;
    tw_deferred_add_callback(all, count_outcomes, NULL);
    tw_deferred_callback(in[2], new_int(30), free_int);
    tw_deferred_callback(in[0], new_int(10), free_int);
    ck_assert_int_eq(outcomes_calls, 0);
    tw_deferred_callback(in[1], new_int(20), free_int);
    ck_assert_int_eq(outcomes_calls, 1);
    ck_assert_uint_eq(outcomes_seen->count, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(outcomes_seen->items[i].ok);
        ck_assert_int_eq(*(int *)outcomes_seen->items[i].value, 10 * (i + 1));
    }
    for (int i = 0; i < 3; i++)
        tw_deferred_unref(in[i]);
    ck_assert_int_eq(freed, 0);
    tw_deferred_unref(all);
    ck_assert_int_eq(freed, 3);
}
END_TEST

START_TEST(test_gather_fails_with_first_failure_and_its_index)
{
    probe p = {0};
    tw_failure *seen = NULL;
    tw_deferred *in[3] = {tw_deferred_new(NULL, NULL), tw_deferred_new(NULL, NULL),
                          tw_deferred_new(NULL, NULL)};
    tw_deferred *all = tw_deferred_gather(in, 3);
    tw_deferred_add_errback(all, observe, &p);
    tw_deferred_add_errback(all, keep_failure, NULL);
    tw_deferred_callback(in[0], new_int(1), free_int);
    tw_deferred_errback(in[1], tw_failure_new(TW_EPROTO, "middle broke"));
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.code, TW_EPROTO);
    seen = kept_failure;
    size_t index = 99;
    ck_assert_int_eq(tw_deferred_gather_index(seen, &index), 0);
    ck_assert_uint_eq(index, 1);
    ck_assert_str_eq(tw_failure_message(tw_failure_cause(seen)), "middle broke");
    ck_assert_str_eq(p.message, "gather: input 1 failed: middle broke");
    ck_assert_int_eq(freed, 1);                        /* the value gathered so far is released */
    tw_deferred_callback(in[2], new_int(3), free_int); /* late: left to in[2] */
    for (int i = 0; i < 3; i++)
        tw_deferred_unref(in[i]);
    tw_deferred_unref(all);
    tw_failure_unref(seen);
    ck_assert_int_eq(freed, 2);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

START_TEST(test_gather_consumes_failures_after_the_first)
{
    tw_deferred *in[2] = {tw_deferred_new(NULL, NULL), tw_deferred_new(NULL, NULL)};
    tw_deferred *all = tw_deferred_gather(in, 2);
    tw_deferred_add_errback(all, observe_and_handle, &(probe){0});
    tw_deferred_errback(in[0], NULL);
    tw_deferred_errback(in[1], NULL);
    tw_deferred_unref(in[0]);
    tw_deferred_unref(in[1]);
    tw_deferred_unref(all);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

START_TEST(test_gather_index_rejects_other_failures)
{
    size_t index;
    tw_failure *f = tw_failure_new(TW_EFAIL, "gather: input 3 failed");
    ck_assert_int_eq(tw_deferred_gather_index(f, &index), -EINVAL); /* no cause */
    tw_failure *g = tw_failure_wrap(tw_failure_new(TW_EFAIL, NULL), TW_EFAIL, "input 3 failed");
    ck_assert_int_eq(tw_deferred_gather_index(g, &index), -EINVAL);
    ck_assert_int_eq(tw_deferred_gather_index(NULL, &index), -EINVAL);
    tw_failure_unref(f);
    tw_failure_unref(g);
}
END_TEST

START_TEST(test_gather_of_fired_inputs_fires_synchronously)
{
    tw_deferred *in[2] = {tw_deferred_succeed(new_int(1), free_int),
                          tw_deferred_succeed(new_int(2), free_int)};
    tw_deferred *all = tw_deferred_gather(in, 2);
    ck_assert(tw_deferred_called(all));
    outcomes_calls = 0;
    tw_deferred_add_callback(all, count_outcomes, NULL);
    ck_assert_int_eq(*(int *)outcomes_seen->items[1].value, 2);
    tw_deferred_unref(in[0]);
    tw_deferred_unref(in[1]);
    tw_deferred_unref(all);
    ck_assert_int_eq(freed, 2);
}
END_TEST

START_TEST(test_gather_of_nothing_fires_at_once)
{
    tw_deferred *all = tw_deferred_gather(NULL, 0);
    ck_assert(tw_deferred_called(all));
    outcomes_calls = 0;
    tw_deferred_add_callback(all, count_outcomes, NULL);
    ck_assert_int_eq(outcomes_calls, 1);
    ck_assert_uint_eq(outcomes_seen->count, 0);
    tw_deferred_unref(all);
}
END_TEST

START_TEST(test_list_of_nothing_fires_at_once)
{
    tw_deferred *all = tw_deferred_list(NULL, 0);
    outcomes_calls = 0;
    tw_deferred_add_callback(all, count_outcomes, NULL);
    ck_assert_int_eq(outcomes_calls, 1);
    ck_assert_uint_eq(outcomes_seen->count, 0);
    tw_deferred_unref(all);
}
END_TEST

START_TEST(test_list_reports_every_outcome_as_ok_value_pairs)
{
    tw_deferred *in[3] = {tw_deferred_new(NULL, NULL), tw_deferred_new(NULL, NULL),
                          tw_deferred_new(NULL, NULL)};
    tw_deferred *all = tw_deferred_list(in, 3);
    outcomes_calls = 0;
    tw_deferred_add_callback(all, count_outcomes, NULL);
    tw_deferred_callback(in[0], new_int(1), free_int);
    tw_deferred_errback(in[1], tw_failure_new(TW_EPROTO, "no"));
    ck_assert_int_eq(outcomes_calls, 0);
    tw_deferred_callback(in[2], NULL, NULL);
    ck_assert_int_eq(outcomes_calls, 1);
    ck_assert(outcomes_seen->items[0].ok);
    ck_assert_int_eq(*(int *)outcomes_seen->items[0].value, 1);
    ck_assert(!outcomes_seen->items[1].ok);
    ck_assert_int_eq(tw_failure_code(outcomes_seen->items[1].failure), TW_EPROTO);
    ck_assert(outcomes_seen->items[2].ok);
    ck_assert_ptr_null(outcomes_seen->items[2].value);
    for (int i = 0; i < 3; i++)
        tw_deferred_unref(in[i]);
    tw_deferred_unref(all);
    ck_assert_int_eq(freed, 1);
    ck_assert_int_eq(logged.count, 0); /* the failure is the list's, handled */
}
END_TEST

START_TEST(test_gather_cancel_cancels_pending_inputs)
{
    probe p = {0}, first = {0}, last = {0};
    tw_deferred *in[3] = {tw_deferred_new(NULL, NULL), tw_deferred_succeed(new_int(1), free_int),
                          tw_deferred_new(NULL, NULL)};
    tw_deferred_add_errback(in[0], observe, &first);
    tw_deferred_add_errback(in[2], observe, &last);
    tw_deferred *all = tw_deferred_gather(in, 3);
    tw_deferred_add_errback(all, observe_and_handle, &p);
    tw_deferred_cancel(all);
    ck_assert_int_eq(first.code, TW_ECANCELLED);
    ck_assert_int_eq(last.code, TW_ECANCELLED);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    ck_assert_int_eq(freed, 1); /* the value collected from in[1] */
    for (int i = 0; i < 3; i++)
        tw_deferred_unref(in[i]);
    tw_deferred_unref(all);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

START_TEST(test_list_cancel_cancels_pending_inputs_and_reports_them)
{
    tw_deferred *in[2] = {tw_deferred_succeed(new_int(1), free_int), tw_deferred_new(NULL, NULL)};
    tw_deferred *all = tw_deferred_list(in, 2);
    outcomes_calls = 0;
    tw_deferred_add_callback(all, count_outcomes, NULL);
    tw_deferred_cancel(all);
    ck_assert_int_eq(outcomes_calls, 1);
    ck_assert(outcomes_seen->items[0].ok);
    ck_assert_int_eq(tw_failure_code(outcomes_seen->items[1].failure), TW_ECANCELLED);
    tw_deferred_unref(in[0]);
    tw_deferred_unref(in[1]);
    tw_deferred_unref(all);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_gather_cancel_with_paused_input_fails_cancelled)
{
    probe p = {0};
    tw_deferred *in[1] = {tw_deferred_new(NULL, NULL)};
    tw_deferred_pause(in[0]);
    tw_deferred *all = tw_deferred_gather(in, 1);
    tw_deferred_add_errback(all, observe_and_handle, &p);
    tw_deferred_cancel(all);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    tw_deferred_unpause(in[0]); /* its late cancellation is consumed */
    tw_deferred_unref(in[0]);
    tw_deferred_unref(all);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

START_TEST(test_gather_released_before_inputs_fire_frees_everything)
{
    tw_deferred *in[2] = {tw_deferred_new(NULL, NULL), tw_deferred_succeed(new_int(1), free_int)};
    tw_deferred *all = tw_deferred_gather(in, 2);
    tw_deferred_unref(all); /* the gather holds it until in[0] fires */
    tw_deferred_unref(in[1]);
    ck_assert_int_eq(freed, 0);
    tw_deferred_unref(in[0]); /* in[0] can never fire: everything goes */
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_gather_keeps_released_result_until_it_can_report_failure)
{
    tw_deferred *in[1] = {tw_deferred_new(NULL, NULL)};
    tw_deferred *all = tw_deferred_gather(in, 1);
    tw_deferred_unref(all);
    tw_deferred_errback(in[0], tw_failure_new(TW_EPROTO, "lost"));
    ck_assert_int_eq(logged.count, 1);
    ck_assert_ptr_nonnull(strstr(logged.message, "gather: input 0 failed: lost"));
    tw_deferred_unref(in[0]);
}
END_TEST

START_TEST(test_gather_with_null_input_returns_null)
{
    tw_deferred *in[2] = {tw_deferred_new(NULL, NULL), NULL};
    ck_assert_ptr_null(tw_deferred_gather(in, 2));
    ck_assert_ptr_null(tw_deferred_list(NULL, 1));
    tw_deferred_unref(in[0]);
}
END_TEST

static void keep_first_item(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tw_deferred_outcomes *o = tw_result_value(res);
    *(void **)arg = o->items[0].value;
    o->items[0].free_fn = NULL;
}

START_TEST(test_outcome_item_can_be_kept_by_clearing_its_destructor)
{
    void *kept = NULL;
    tw_deferred *in[1] = {tw_deferred_succeed(new_int(1), free_int)};
    tw_deferred *all = tw_deferred_gather(in, 1);
    tw_deferred_add_callback(all, keep_first_item, &kept);
    tw_deferred_unref(all);
    tw_deferred_unref(in[0]);
    ck_assert_int_eq(freed, 0);
    free_int(kept);
}
END_TEST

/* ---- Ownership --------------------------------------------------------- */

START_TEST(test_value_destroyed_once_after_normal_completion)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callback(d, observe, &(probe){0});
    tw_deferred_callback(d, new_int(1), free_int);
    ck_assert_int_eq(freed, 0);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_value_destroyed_once_when_deferred_is_abandoned_with_it)
{
    tw_deferred *d = tw_deferred_succeed(new_int(1), free_int);
    tw_deferred_unref(d);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_values_destroyed_once_when_gather_is_cancelled)
{
    tw_deferred *in[3] = {tw_deferred_succeed(new_int(1), free_int),
                          tw_deferred_succeed(new_int(2), free_int), tw_deferred_new(NULL, NULL)};
    tw_deferred *all = tw_deferred_gather(in, 3);
    tw_deferred_add_errback(all, observe_and_handle, &(probe){0});
    tw_deferred_cancel(all);
    ck_assert_int_eq(freed, 2);
    ck_assert_int_eq(tw_deferred_callback(in[2], new_int(3), free_int), 0); /* swallowed */
    for (int i = 0; i < 3; i++)
        tw_deferred_unref(in[i]);
    tw_deferred_unref(all);
    ck_assert_int_eq(freed, 3);
}
END_TEST

START_TEST(test_arg_free_runs_once_after_its_pair_ran)
{
    int calls = 0;
    args_freed = 0;
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callbacks_full(d, count_call, NULL, &calls, count_arg_free);
    tw_deferred_callback(d, NULL, NULL);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(args_freed, 1);
    tw_deferred_unref(d);
    ck_assert_int_eq(args_freed, 1);
}
END_TEST

START_TEST(test_arg_free_runs_once_when_pair_never_runs)
{
    int calls = 0;
    args_freed = 0;
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_add_callbacks_full(d, count_call, NULL, &calls, count_arg_free);
    tw_deferred_unref(d);
    ck_assert_int_eq(calls, 0);
    ck_assert_int_eq(args_freed, 1);
}
END_TEST

START_TEST(test_ref_keeps_deferred_alive_after_creator_releases_it)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred *mine = tw_deferred_ref(d);
    tw_deferred_unref(d);
    tw_deferred_add_callback(mine, observe, &p);
    tw_deferred_callback(mine, new_int(2), free_int);
    ck_assert_int_eq(p.value, 2);
    tw_deferred_unref(mine);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_releasing_unfired_deferred_reports_nothing)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

/* ---- Unhandled failures ------------------------------------------------ */

START_TEST(test_unhandled_failure_is_logged_once_when_released)
{
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_errback(d, tw_failure_new(TW_EPROTO, "nobody listened"));
    ck_assert_int_eq(logged.count, 0); /* not before the release */
    tw_deferred *extra = tw_deferred_ref(d);
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 0);
    tw_deferred_unref(extra);
    ck_assert_int_eq(logged.count, 1);
    ck_assert_int_eq(logged.level, TW_LOG_ERROR);
    ck_assert_ptr_nonnull(strstr(logged.message, "nobody listened"));
}
END_TEST

START_TEST(test_unhandled_failure_report_includes_cause_chain)
{
    tw_deferred *d = tw_deferred_fail(tw_failure_wrap(
        tw_failure_wrap(tw_failure_new(-ECONNREFUSED, "refused"), TW_EFAIL, "connect"), TW_EFAIL,
        "fetch page"));
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 1);
    ck_assert_ptr_nonnull(strstr(logged.message, "fetch page: connect: refused"));
}
END_TEST

START_TEST(test_handled_failure_is_not_logged)
{
    tw_deferred *d = tw_deferred_fail(tw_failure_new(TW_EPROTO, NULL));
    tw_deferred_add_errback(d, recover_with_99, NULL);
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 0);
}
END_TEST

START_TEST(test_failure_left_by_last_errback_is_logged)
{
    probe p = {0};
    tw_deferred *d = tw_deferred_fail(tw_failure_new(TW_EPROTO, "still failing"));
    tw_deferred_add_errback(d, observe, &p); /* looks, does not handle */
    tw_deferred_unref(d);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(logged.count, 1);
}
END_TEST

START_TEST(test_failure_taken_over_by_outer_chain_is_logged_by_outer_only)
{
    tw_deferred *inner = tw_deferred_new(NULL, NULL);
    tw_deferred *outer = tw_deferred_succeed(NULL, NULL);
    tw_deferred_add_callback(outer, return_deferred, inner);
    tw_deferred_errback(inner, tw_failure_new(TW_EPROTO, "once"));
    tw_deferred_unref(inner);
    ck_assert_int_eq(logged.count, 0);
    tw_deferred_unref(outer);
    ck_assert_int_eq(logged.count, 1);
}
END_TEST

/* ---- Debug mode -------------------------------------------------------- */

START_TEST(test_debug_mode_reports_creation_and_fire_sites)
{
    tw_deferred_set_debug(1);
    ck_assert_int_eq(tw_deferred_get_debug(), 1);
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    int created = __LINE__ - 1;
    tw_deferred_errback(d, tw_failure_new(TW_EPROTO, "traced"));
    int fired = __LINE__ - 1;
    tw_deferred_unref(d);
    char want[256];
    snprintf(want, sizeof want, "created at %s:%d, fired at %s:%d", __FILE__, created, __FILE__,
             fired);
    ck_assert_int_eq(logged.count, 1);
    ck_assert_msg(strstr(logged.message, want) != NULL, "%s", logged.message);
    ck_assert_ptr_nonnull(strstr(logged.message, "traced"));
}
END_TEST

START_TEST(test_debug_mode_off_reports_without_sites)
{
    tw_deferred *d = tw_deferred_fail(tw_failure_new(TW_EPROTO, "untraced"));
    tw_deferred_unref(d);
    ck_assert_int_eq(logged.count, 1);
    ck_assert_ptr_null(strstr(logged.message, __FILE__));
    ck_assert_ptr_nonnull(strstr(logged.message, "TWINE_DEFERRED_DEBUG"));
}
END_TEST

START_TEST(test_debug_environment_variable_turns_debug_mode_on)
{
    setenv("TWINE_DEFERRED_DEBUG", "1", 1);
    tw_deferred_set_debug(-1);
    ck_assert_int_eq(tw_deferred_get_debug(), 1);
    setenv("TWINE_DEFERRED_DEBUG", "0", 1);
    tw_deferred_set_debug(-1);
    ck_assert_int_eq(tw_deferred_get_debug(), 0);
    unsetenv("TWINE_DEFERRED_DEBUG");
    tw_deferred_set_debug(-1);
    ck_assert_int_eq(tw_deferred_get_debug(), 0);
}
END_TEST

START_TEST(test_debug_mode_names_both_sites_of_a_double_fire)
{
    tw_deferred_set_debug(1);
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    tw_deferred_callback(d, NULL, NULL);
    int first = __LINE__ - 1;
    tw_deferred_callback(d, NULL, NULL);
    int second = __LINE__ - 1;
    char want[256];
    snprintf(want, sizeof want, "first at %s:%d, again at %s:%d", __FILE__, first, __FILE__,
             second);
    ck_assert_msg(strstr(logged.message, want) != NULL, "%s", logged.message);
    tw_deferred_unref(d);
}
END_TEST

/* ---- Runner ------------------------------------------------------------ */

static void add(Suite *s, const char *name, const TTest *const tests[], size_t n)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    for (size_t i = 0; i < n; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
}

#define ADD(s, name, ...)                                                                          \
    do {                                                                                           \
        const TTest *const t_[] = {__VA_ARGS__};                                                   \
        add((s), (name), t_, sizeof t_ / sizeof t_[0]);                                            \
    } while (0)

static Suite *deferred_suite(void)
{
    Suite *s = suite_create("deferred");
    ADD(s, "firing", test_callback_passes_value_to_first_callback,
        test_errback_passes_failure_to_first_errback,
        test_errback_with_null_failure_uses_generic_failure,
        test_failure_carries_code_message_and_cause, test_callback_twice_returns_already_fired,
        test_errback_after_callback_returns_already_fired,
        test_callback_after_errback_returns_already_fired, test_misuse_with_null_returns_einval,
        test_succeed_creates_fired_deferred, test_fail_creates_failed_deferred,
        test_callbacks_do_not_run_before_fire);
    ADD(s, "chains", test_add_callbacks_runs_callback_on_success_only,
        test_add_callbacks_runs_errback_on_failure_only,
        test_add_both_runs_on_success_and_on_failure, test_callback_result_passes_to_next_callback,
        test_untouched_result_passes_through,
        test_callback_returning_failure_switches_to_errback_path,
        test_errback_returning_value_switches_to_callback_path,
        test_errback_leaving_failure_passes_it_to_next_errback,
        test_take_failure_handles_it_and_hands_over_a_reference,
        test_take_value_transfers_ownership_to_callback,
        test_set_value_with_held_value_only_changes_destructor,
        test_callback_added_from_a_callback_runs_in_turn,
        test_callback_added_inside_running_chain_runs_after_current_one,
        test_callback_returning_fired_deferred_takes_its_result,
        test_callback_returning_pending_deferred_pauses_chain_until_it_fires,
        test_inner_failure_resumes_outer_on_errback_path, test_inner_result_is_taken_over_by_outer,
        test_callbacks_inner_had_run_before_outer_resumes,
        test_callback_returning_deferred_whose_chain_is_running_gets_its_final_result,
        test_callback_returning_its_own_deferred_returns_einval,
        test_callback_returning_paused_fired_deferred_waits_for_unpause,
        test_waiting_chain_is_kept_alive_by_the_deferred_it_waits_on,
        test_releasing_unfired_inner_releases_waiting_outer);
    ADD(s, "deep", test_chain_of_100000_waiting_deferreds_completes_on_small_stack,
        test_100000_callbacks_on_one_deferred_complete_on_small_stack,
        test_chain_of_100000_released_deferreds_completes_and_frees_on_small_stack,
        test_cancel_of_100000_deep_wait_reaches_bottom_on_small_stack);
    ADD(s, "pause", test_pause_holds_callbacks_until_unpause, test_pause_counts_nested_pauses,
        test_unpause_without_pause_returns_estate, test_pause_from_a_callback_stops_chain_after_it,
        test_releasing_paused_deferred_destroys_held_value);
    ADD(s, "cancel", test_cancel_runs_the_canceller,
        test_cancel_without_canceller_errbacks_cancelled,
        test_cancel_when_canceller_does_not_fire_errbacks_cancelled,
        test_canceller_that_fires_decides_the_result, test_callback_after_cancel_is_swallowed_once,
        test_second_late_callback_after_cancel_returns_already_fired,
        test_late_callback_after_cancel_with_canceller_returns_already_fired,
        test_cancel_after_fire_does_nothing, test_cancel_of_waiting_deferred_cancels_inner,
        test_cancel_of_unfired_paused_deferred_errbacks_on_unpause,
        test_cancel_of_fired_paused_deferred_keeps_its_result,
        test_cancel_of_deferred_waiting_on_released_inner_errbacks_cancelled,
        test_cancelled_value_held_by_a_paused_chain_is_destroyed_once);
    ADD(s, "time", test_timeout_fails_deferred_with_timed_out,
        test_timeout_timer_is_cancelled_when_deferred_fires_first,
        test_timeout_on_fired_deferred_cancels_its_timer_at_once,
        test_timeout_keeps_released_deferred_until_it_times_out,
        test_timeout_leaves_other_failures_untouched, test_cancel_before_timeout_stays_cancelled,
        test_timeout_cancels_inner_deferred_the_chain_waits_on,
        test_timeout_dropped_by_reactor_stop_is_released_when_deferred_fires,
        test_defer_later_dropped_by_reactor_stop_is_released_when_cancelled,
        test_add_timeout_rejects_bad_arguments,
        test_defer_later_fires_with_function_result_after_delay, test_defer_later_function_may_fail,
        test_defer_later_cancel_cancels_timer_and_skips_function,
        test_defer_later_rejects_negative_delay);
    ADD(s, "combinators", test_gather_fires_with_all_results_in_input_order,
        test_gather_fails_with_first_failure_and_its_index,
        test_gather_consumes_failures_after_the_first, test_gather_index_rejects_other_failures,
        test_gather_of_fired_inputs_fires_synchronously, test_gather_of_nothing_fires_at_once,
        test_list_of_nothing_fires_at_once, test_list_reports_every_outcome_as_ok_value_pairs,
        test_gather_cancel_cancels_pending_inputs,
        test_list_cancel_cancels_pending_inputs_and_reports_them,
        test_gather_cancel_with_paused_input_fails_cancelled,
        test_gather_released_before_inputs_fire_frees_everything,
        test_gather_keeps_released_result_until_it_can_report_failure,
        test_gather_with_null_input_returns_null,
        test_outcome_item_can_be_kept_by_clearing_its_destructor);
    ADD(s, "ownership", test_value_destroyed_once_after_normal_completion,
        test_value_destroyed_once_when_deferred_is_abandoned_with_it,
        test_values_destroyed_once_when_gather_is_cancelled,
        test_arg_free_runs_once_after_its_pair_ran, test_arg_free_runs_once_when_pair_never_runs,
        test_ref_keeps_deferred_alive_after_creator_releases_it,
        test_releasing_unfired_deferred_reports_nothing);
    ADD(s, "unhandled", test_unhandled_failure_is_logged_once_when_released,
        test_unhandled_failure_report_includes_cause_chain, test_handled_failure_is_not_logged,
        test_failure_left_by_last_errback_is_logged,
        test_failure_taken_over_by_outer_chain_is_logged_by_outer_only);
    ADD(s, "debug", test_debug_mode_reports_creation_and_fire_sites,
        test_debug_mode_off_reports_without_sites,
        test_debug_environment_variable_turns_debug_mode_on,
        test_debug_mode_names_both_sites_of_a_double_fire);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(deferred_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? 1 : 0;
}
