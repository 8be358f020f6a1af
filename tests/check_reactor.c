/*
 * Reactor and timed calls: run/stop/free, call_later ordering and
 * cancellation, signals, and two reactors in two threads.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <twine.h>

#include "testutil.h"

typedef struct {
    tw_reactor *r;
    int order[16];
    int n;
    int stop_after;
} recorder;

typedef struct {
    recorder *rec;
    int id;
} tagged;

static void record(void *arg)
{
    tagged *t = arg;
    t->rec->order[t->rec->n++] = t->id;
    if (t->rec->n == t->rec->stop_after)
        tw_reactor_stop(t->rec->r);
}

static void stop_reactor(void *arg)
{
    tw_reactor_stop(arg);
}

START_TEST(test_new_and_free)
{
    tw_reactor *r = tw_reactor_new();
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(tw_reactor_event_base(r));
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_stop_from_a_timer_ends_run)
{
    tw_reactor *r = tw_reactor_new();
    ck_assert_int_eq(tw_reactor_call_later(r, 0.01, stop_reactor, r, NULL), 0);
    long long t0 = tu_now_ms();
    ck_assert_int_eq(tw_reactor_run(r), 0);
    ck_assert_int_ge(tu_now_ms() - t0, 9);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_stop_before_run_returns_at_once)
{
    tw_reactor *r = tw_reactor_new();
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_call_later_runs_after_its_delay)
{
    tw_reactor *r = tw_reactor_new();
    recorder rec = {.r = r, .stop_after = 1};
    tagged t = {&rec, 7};
    double start = tw_reactor_seconds(r);
    ck_assert_int_eq(tw_reactor_call_later(r, 0.05, record, &t, NULL), 0);
    tw_reactor_run(r);
    ck_assert_int_eq(rec.n, 1);
    ck_assert(tw_reactor_seconds(r) - start >= 0.05);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_calls_due_at_the_same_time_run_in_fifo_order)
{
    tw_reactor *r = tw_reactor_new();
    recorder rec = {.r = r, .stop_after = 8};
    tagged t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (tagged){&rec, i};
        ck_assert_int_eq(tw_reactor_call_later(r, 0, record, &t[i], NULL), 0);
    }
    tw_reactor_run(r);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(rec.order[i], i);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_earlier_deadline_runs_first)
{
    tw_reactor *r = tw_reactor_new();
    recorder rec = {.r = r, .stop_after = 3};
    tagged a = {&rec, 1}, b = {&rec, 2}, c = {&rec, 3};
    tw_reactor_call_later(r, 0.03, record, &c, NULL);
    tw_reactor_call_later(r, 0.01, record, &a, NULL);
    tw_reactor_call_later(r, 0.02, record, &b, NULL);
    tw_reactor_run(r);
    ck_assert_int_eq(rec.order[0], 1);
    ck_assert_int_eq(rec.order[1], 2);
    ck_assert_int_eq(rec.order[2], 3);
    tw_reactor_free(r);
}
END_TEST

static int calls;
static tw_reactor *loop_r;

static void count_call(void *arg)
{
    (void)arg;
    calls++;
}

static void schedule_zero(void *arg)
{
    (void)arg;
    calls++;
    tw_reactor_call_later(loop_r, 0, count_call, NULL, NULL);
}

START_TEST(test_delay_zero_from_a_callback_runs_next_iteration)
{
    tw_reactor *r = loop_r = tw_reactor_new();
    calls = 0;
    tw_reactor_call_later(r, 0, schedule_zero, NULL, NULL);
    /* Wait until the first call ran: exactly one, the nested one waits. */
    long long deadline = tu_now_ms() + 2000;
    while (calls == 0 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(calls, 1);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 1);
    deadline = tu_now_ms() + 2000;
    while (calls == 1 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(calls, 2);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_cancelled_call_never_runs)
{
    tw_reactor *r = tw_reactor_new();
    tw_call *c;
    calls = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 0.01, count_call, NULL, &c), 0);
    ck_assert(tw_call_active(c));
    ck_assert_int_eq(tw_call_cancel(c), 0);
    ck_assert(!tw_call_active(c));
    tw_reactor_call_later(r, 0.03, stop_reactor, r, NULL);
    tw_reactor_run(r);
    ck_assert_int_eq(calls, 0);
    ck_assert_int_eq(tw_call_cancel(c), TW_ESTATE);
    tw_call_release(c);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_handle_after_the_call_ran_reports_an_error)
{
    tw_reactor *r = tw_reactor_new();
    tw_call *c;
    calls = 0;
    tw_reactor_call_later(r, 0, count_call, NULL, &c);
    tw_reactor_call_later(r, 0.01, stop_reactor, r, NULL);
    tw_reactor_run(r);
    ck_assert_int_eq(calls, 1);
    ck_assert(!tw_call_active(c));
    ck_assert_int_eq(tw_call_cancel(c), TW_ESTATE);
    ck_assert_int_eq(tw_call_reset(c, 1), TW_ESTATE);
    ck_assert_int_eq(tw_call_delay(c, 1), TW_ESTATE);
    tw_call_release(c);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_negative_delay_is_refused)
{
    tw_reactor *r = tw_reactor_new();
    ck_assert_int_eq(tw_reactor_call_later(r, -1, count_call, NULL, NULL), -EINVAL);
    ck_assert_int_eq(tw_reactor_call_later(r, NAN, count_call, NULL, NULL), -EINVAL);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_reset_and_delay_move_the_deadline)
{
    tw_reactor *r = tw_reactor_new();
    tw_call *c;
    tw_reactor_call_later(r, 10, count_call, NULL, &c);
    double due = tw_call_time(c);
    ck_assert_int_eq(tw_call_delay(c, 5), 0);
    ck_assert(fabs(tw_call_time(c) - (due + 5)) < 1e-6);
    ck_assert_int_eq(tw_call_reset(c, 0.01), 0);
    ck_assert(tw_call_time(c) < due);
    calls = 0;
    tw_reactor_call_later(r, 0.05, stop_reactor, r, NULL);
    tw_reactor_run(r);
    ck_assert_int_eq(calls, 1);
    tw_call_release(c);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_free_releases_pending_calls)
{
    /* valgrind/ASan check that nothing leaks; the handle stays usable. */
    tw_reactor *r = tw_reactor_new();
    tw_call *kept;
    for (int i = 0; i < 100; i++)
        tw_reactor_call_later(r, 100, count_call, NULL, NULL);
    tw_reactor_call_later(r, 100, count_call, NULL, &kept);
    tw_reactor_free(r);
    ck_assert(!tw_call_active(kept));
    ck_assert_int_eq(tw_call_cancel(kept), TW_ESTATE);
    tw_call_release(kept);
}
END_TEST

static void send_sigterm(void *arg)
{
    (void)arg;
    kill(getpid(), SIGTERM);
}

START_TEST(test_sigterm_stops_a_reactor_that_handles_signals)
{
    tw_reactor *r = tw_reactor_new();
    ck_assert_int_eq(tw_reactor_handle_signals(r), 0);
    tw_reactor_call_later(r, 0.01, send_sigterm, NULL, NULL);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    tw_reactor_free(r);
}
END_TEST

typedef struct {
    tw_reactor *r;
    int ticks;
    int target;
} ticker;

static void tick(void *arg)
{
    ticker *t = arg;
    if (++t->ticks == t->target)
        tw_reactor_stop(t->r);
    else
        tw_reactor_call_later(t->r, 0.001, tick, t, NULL);
}

static void *thread_main(void *arg)
{
    ticker *t = arg;
    t->r = tw_reactor_new();
    tw_reactor_call_later(t->r, 0, tick, t, NULL);
    tw_reactor_run(t->r);
    tw_reactor_free(t->r);
    return NULL;
}

START_TEST(test_two_reactors_in_two_threads_do_not_interfere)
{
    ticker a = {.target = 50}, b = {.target = 80};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, thread_main, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, thread_main, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(a.ticks, 50);
    ck_assert_int_eq(b.ticks, 80);
}
END_TEST

static Suite *reactor_suite(void)
{
    Suite *s = suite_create("reactor");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_new_and_free);
    tcase_add_test(tc, test_stop_from_a_timer_ends_run);
    tcase_add_test(tc, test_stop_before_run_returns_at_once);
    tcase_add_test(tc, test_call_later_runs_after_its_delay);
    tcase_add_test(tc, test_calls_due_at_the_same_time_run_in_fifo_order);
    tcase_add_test(tc, test_earlier_deadline_runs_first);
    tcase_add_test(tc, test_delay_zero_from_a_callback_runs_next_iteration);
    tcase_add_test(tc, test_cancelled_call_never_runs);
    tcase_add_test(tc, test_handle_after_the_call_ran_reports_an_error);
    tcase_add_test(tc, test_negative_delay_is_refused);
    tcase_add_test(tc, test_reset_and_delay_move_the_deadline);
    tcase_add_test(tc, test_free_releases_pending_calls);
    tcase_add_test(tc, test_sigterm_stops_a_reactor_that_handles_signals);
    tcase_add_test(tc, test_two_reactors_in_two_threads_do_not_interfere);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reactor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
