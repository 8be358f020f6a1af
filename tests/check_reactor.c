/* SPDX-License-Identifier: MIT */
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
#include <string.h>
#include <unistd.h>
#include <twine.h>
#include <twine/testing.h>
#include <twine/looping.h>

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

/* ------------------------------------------------ a clock the test sets */

static double fake_now;

static double fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

START_TEST(test_a_fake_clock_drives_timers_deterministically)
{
    tw_reactor *r = tw_reactor_new();
    fake_now = 100;
    tw_reactor_set_clock(r, fake_clock, NULL);
    recorder rec = {.r = r};
    tagged a = {&rec, 1}, b = {&rec, 2}, c = {&rec, 3};
    tw_reactor_call_later(r, 3, record, &c, NULL);
    tw_reactor_call_later(r, 1, record, &a, NULL);
    tw_reactor_call_later(r, 2, record, &b, NULL);
    ck_assert_uint_eq(tw_reactor_run_due_calls(r), 0);
    fake_now = 102.5;
    ck_assert_uint_eq(tw_reactor_run_due_calls(r), 2);
    ck_assert_int_eq(rec.n, 2);
    ck_assert_int_eq(rec.order[0], 1);
    ck_assert_int_eq(rec.order[1], 2);
    fake_now = 103;
    ck_assert_uint_eq(tw_reactor_run_due_calls(r), 1);
    ck_assert_int_eq(rec.n, 3);
    ck_assert_int_eq(rec.order[2], 3);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_million_pending_timers_are_scheduled_and_cancelled)
{
    enum { N = 1000000 };
    tw_clock *clock = tw_clock_new();
    tw_reactor *r = tw_clock_reactor(clock);
    tw_call **h = malloc(sizeof *h * N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tw_reactor_call_later(r, (double)(((long long)i * 7919) % 1000), count_call, NULL, &h[i]), 0);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), N);
    /* Cancel in an order unrelated to the heap's. */
    for (int i = 0; i < N; i++) {
        int j = (int)(((long long)i * 104729) % N);
        ck_assert_int_eq(tw_call_cancel(h[j]), 0);
    }
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    calls = 0;
    tw_clock_advance(clock, 2000);
    ck_assert_int_eq(calls, 0);
    for (int i = 0; i < N; i++)
        tw_call_release(h[i]);
    free(h);
    tw_clock_free(clock);
}
END_TEST

static int released;

static void note_release(void *arg)
{
    (void)arg;
    released++;
}

START_TEST(test_call_later_full_releases_its_arg_when_dropped)
{
    tw_reactor *r = tw_reactor_new();
    tw_call *c;
    released = 0;
    calls = 0;
    tw_reactor_call_later_full(r, 10, count_call, NULL, note_release, &c);
    ck_assert_int_eq(tw_call_cancel(c), 0);
    ck_assert_int_eq(released, 1);
    tw_call_release(c);
    tw_reactor_call_later_full(r, 0, count_call, NULL, note_release, NULL);
    tw_reactor_call_later(r, 0.01, stop_reactor, r, NULL);
    tw_reactor_run(r);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(released, 1); /* it ran, so it was not released */
    tw_reactor_call_later_full(r, 10, count_call, NULL, note_release, NULL);
    tw_reactor_free(r);
    ck_assert_int_eq(released, 2);
}
END_TEST

START_TEST(test_stop_releases_pending_timers)
{
    tw_reactor *r = tw_reactor_new();
    tw_call *kept;
    released = 0;
    tw_reactor_call_later(r, 100, count_call, NULL, &kept);
    tw_reactor_call_later_full(r, 100, count_call, NULL, note_release, NULL);
    tw_reactor_call_later(r, 0, stop_reactor, r, NULL);
    tw_reactor_run(r);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    ck_assert(!tw_call_active(kept));
    ck_assert_int_eq(released, 1);
    tw_call_release(kept);
    tw_reactor_free(r);
}
END_TEST

/* ---------------------------------------------------------------- threads */

enum { THREADS = 4, PER_THREAD = 2000 };

typedef struct {
    tw_reactor *r;
    int last_seen[THREADS];
    int total;
    int out_of_order;
} thread_sink;

typedef struct {
    thread_sink *sink;
    int thread, seq;
} thread_msg;

static void receive_msg(void *arg)
{
    thread_msg *m = arg;
    thread_sink *s = m->sink;
    if (m->seq != s->last_seen[m->thread] + 1)
        s->out_of_order++;
    s->last_seen[m->thread] = m->seq;
    if (++s->total == THREADS * PER_THREAD)
        tw_reactor_stop(s->r);
    free(m);
}

typedef struct {
    thread_sink *sink;
    int id;
} producer_arg;

static void *produce(void *arg)
{
    producer_arg *pa = arg;
    for (int i = 1; i <= PER_THREAD; i++) {
        thread_msg *m = malloc(sizeof *m);
        *m = (thread_msg){pa->sink, pa->id, i};
        while (tw_reactor_call_from_thread(pa->sink->r, receive_msg, m) != 0)
            ;
    }
    return NULL;
}

START_TEST(test_call_from_thread_wakes_the_loop_and_keeps_submission_order)
{
    thread_sink sink = {0};
    sink.r = tw_reactor_new();
    pthread_t t[THREADS];
    producer_arg pa[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pa[i] = (producer_arg){&sink, i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, produce, &pa[i]), 0);
    }
    /* No timers, no sockets: only the calls themselves can wake the loop. */
    ck_assert_int_eq(tw_reactor_run(sink.r), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(sink.total, THREADS * PER_THREAD);
    ck_assert_int_eq(sink.out_of_order, 0);
    tw_reactor_free(sink.r);
}
END_TEST

/* ---------------------------------------------------------------- triggers */

typedef struct {
    tw_reactor *r;
    char log[32];
    int n;
    tw_deferred *pending;
} trigger_log;

static tw_deferred *trig_before(void *arg)
{
    trigger_log *t = arg;
    t->log[t->n++] = 'B';
    t->pending = tw_deferred_new(NULL, NULL);
    return tw_deferred_ref(t->pending);
}

static void fire_pending(void *arg)
{
    trigger_log *t = arg;
    t->log[t->n++] = 'F';
    tw_deferred_callback(t->pending, NULL, NULL);
    tw_deferred_unref(t->pending);
    t->pending = NULL;
}

static tw_deferred *trig_before_schedule(void *arg)
{
    trigger_log *t = arg;
    tw_reactor_call_later(t->r, 0.02, fire_pending, t, NULL);
    return NULL;
}

static tw_deferred *trig_during(void *arg)
{
    trigger_log *t = arg;
    t->log[t->n++] = 'D';
    return NULL;
}

static tw_deferred *trig_after(void *arg)
{
    trigger_log *t = arg;
    t->log[t->n++] = 'A';
    return NULL;
}

static tw_deferred *trig_failing(void *arg)
{
    trigger_log *t = arg;
    t->log[t->n++] = 'X';
    return tw_deferred_fail(tw_failure_new(TW_EFAIL, "cleanup broke"));
}

START_TEST(test_shutdown_triggers_run_in_phases_and_wait_for_deferreds)
{
    trigger_log t = {0};
    tw_reactor *r = t.r = tw_reactor_new();
    tw_trigger_id removed;
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_AFTER, trig_after, &t, NULL), 0);
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_DURING, trig_during, &t, NULL), 0);
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_BEFORE, trig_before, &t, NULL), 0);
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_BEFORE, trig_before_schedule, &t, NULL), 0);
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_DURING, trig_during, &t, &removed), 0);
    ck_assert_int_eq(tw_reactor_remove_trigger(r, removed), 0);
    ck_assert_int_eq(tw_reactor_remove_trigger(r, removed), TW_ESTATE);
    tw_reactor_call_later(r, 0, stop_reactor, r, NULL);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    t.log[t.n] = '\0';
    /* The during phase waited until the before-trigger's deferred fired. */
    ck_assert_str_eq(t.log, "BFDA");
    tw_reactor_free(r);
}
END_TEST

static int error_records;

static void count_errors(tw_log_level level, const char *sys, const char *msg, void *arg)
{
    (void)sys;
    (void)arg;
    if (level == TW_LOG_ERROR && strstr(msg, "cleanup broke") != NULL)
        error_records++;
}

START_TEST(test_a_failing_trigger_is_logged_and_shutdown_goes_on)
{
    trigger_log t = {0};
    tw_reactor *r = t.r = tw_reactor_new();
    error_records = 0;
    tw_log_set_handler(count_errors, NULL);
    tw_reactor_add_trigger(r, TW_TRIGGER_BEFORE, trig_failing, &t, NULL);
    tw_reactor_add_trigger(r, TW_TRIGGER_AFTER, trig_after, &t, NULL);
    tw_reactor_call_later(r, 0, stop_reactor, r, NULL);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    t.log[t.n] = '\0';
    ck_assert_str_eq(t.log, "XA");
    ck_assert_int_eq(error_records, 1);
    tw_log_set_handler(NULL, NULL);
    tw_reactor_free(r);
}
END_TEST

/* ---------------------------------------------------------------- looping */

typedef struct {
    int runs;
    int fail_on;         /* fail on this run (1-based), 0 never */
    tw_deferred *hold;   /* when set, runs return a deferred we fire later */
    int hold_runs;
} loop_state;

static tw_deferred *loop_fn(void *arg)
{
    loop_state *s = arg;
    s->runs++;
    if (s->fail_on == s->runs)
        return tw_deferred_fail(tw_failure_new(TW_EFAIL, "run %d failed", s->runs));
    if (s->hold_runs) {
        s->hold = tw_deferred_new(NULL, NULL);
        return tw_deferred_ref(s->hold);
    }
    return NULL;
}

static int stopped_value, stopped_failed;

static void on_loop_done(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    if (tw_result_is_failure(res)) {
        stopped_failed = tw_failure_code(tw_result_failure(res));
        tw_failure_unref(tw_result_take_failure(res));
    } else {
        stopped_value = 1;
    }
}

START_TEST(test_looping_call_runs_on_its_grid_and_counts_skipped_ticks)
{
    tw_clock *clock = tw_clock_new();
    tw_reactor *r = tw_clock_reactor(clock);
    loop_state s = {0};
    tw_looping_call *lc = tw_looping_call_new(r, loop_fn, &s);
    tw_deferred *done;
    stopped_value = 0;
    ck_assert_int_eq(tw_looping_call_start(lc, 1.0, 1, &done), 0);
    ck_assert_int_eq(tw_looping_call_start(lc, 1.0, 1, NULL), TW_ESTATE);
    tw_deferred_add_both(done, on_loop_done, NULL);
    ck_assert_int_eq(s.runs, 1); /* now=1 runs at once */
    tw_clock_advance(clock, 1.0);
    ck_assert_int_eq(s.runs, 2);
    tw_clock_advance(clock, 3.5); /* late: the ticks at 3 and 4 were missed */
    ck_assert_int_eq(s.runs, 3);
    ck_assert_uint_eq(tw_looping_call_skipped(lc), 2);
    tw_clock_advance(clock, 0.5); /* t=5: back on the grid */
    ck_assert_int_eq(s.runs, 4);
    ck_assert_int_eq(stopped_value, 0);
    ck_assert_int_eq(tw_looping_call_stop(lc), 0);
    ck_assert_int_eq(stopped_value, 1);
    tw_clock_advance(clock, 10);
    ck_assert_int_eq(s.runs, 4);
    ck_assert_int_eq(tw_looping_call_stop(lc), TW_ESTATE);
    tw_deferred_unref(done);
    tw_looping_call_free(lc);
    tw_clock_free(clock);
}
END_TEST

START_TEST(test_looping_call_waits_for_a_returned_deferred)
{
    tw_clock *clock = tw_clock_new();
    tw_reactor *r = tw_clock_reactor(clock);
    loop_state s = {.hold_runs = 1};
    tw_looping_call *lc = tw_looping_call_new(r, loop_fn, &s);
    ck_assert_int_eq(tw_looping_call_start(lc, 1.0, 1, NULL), 0);
    tw_clock_advance(clock, 5);
    ck_assert_int_eq(s.runs, 1); /* still waiting on the first run */
    tw_deferred *h = s.hold;
    s.hold = NULL;
    tw_deferred_callback(h, NULL, NULL);
    tw_deferred_unref(h);
    tw_clock_advance(clock, 1);
    ck_assert_int_eq(s.runs, 2);
    tw_looping_call_free(lc); /* stops it; the pending run is let go */
    tw_deferred_callback(s.hold, NULL, NULL);
    tw_deferred_unref(s.hold);
    tw_clock_free(clock);
}
END_TEST

START_TEST(test_looping_call_fails_its_deferred_when_the_function_fails)
{
    tw_clock *clock = tw_clock_new();
    tw_reactor *r = tw_clock_reactor(clock);
    loop_state s = {.fail_on = 3};
    tw_looping_call *lc = tw_looping_call_new(r, loop_fn, &s);
    tw_deferred *done;
    stopped_failed = 0;
    tw_looping_call_start(lc, 0.5, 0, &done);
    tw_deferred_add_both(done, on_loop_done, NULL);
    ck_assert_int_eq(s.runs, 0); /* now=0 waits one interval */
    for (int i = 0; i < 5; i++)
        tw_clock_advance(clock, 0.5);
    ck_assert_int_eq(s.runs, 3);
    ck_assert_int_eq(stopped_failed, TW_EFAIL);
    ck_assert(!tw_looping_call_running(lc));
    tw_deferred_unref(done);
    tw_looping_call_free(lc);
    tw_clock_free(clock);
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
    tcase_add_test(tc, test_a_fake_clock_drives_timers_deterministically);
    tcase_add_test(tc, test_call_later_full_releases_its_arg_when_dropped);
    tcase_add_test(tc, test_stop_releases_pending_timers);
    tcase_add_test(tc, test_call_from_thread_wakes_the_loop_and_keeps_submission_order);
    tcase_add_test(tc, test_shutdown_triggers_run_in_phases_and_wait_for_deferreds);
    tcase_add_test(tc, test_a_failing_trigger_is_logged_and_shutdown_goes_on);
    tcase_add_test(tc, test_looping_call_runs_on_its_grid_and_counts_skipped_ticks);
    tcase_add_test(tc, test_looping_call_waits_for_a_returned_deferred);
    tcase_add_test(tc, test_looping_call_fails_its_deferred_when_the_function_fails);
    suite_add_tcase(s, tc);

    /* A count, not a speed: the long timeout only keeps slow (sanitized,
     * loaded) machines from failing it, while quadratic cost still would. */
    TCase *scale = tcase_create("scale");
    tcase_set_timeout(scale, 120);
    tcase_add_test(scale, test_a_million_pending_timers_are_scheduled_and_cancelled);
    suite_add_tcase(s, scale);
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
