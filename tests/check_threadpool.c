/* SPDX-License-Identifier: MIT */
/*
 * The reactor's thread pool (twine/threadpool.h): tw_defer_to_thread and
 * tw_call_in_thread, the pool's bound and lazy start, cancellation of
 * queued and running work, the shutdown phases (queued work runs, new work
 * is refused, threads are joined) and tw_reactor_free() with work queued.
 * Jobs that must stay busy wait on a gate the test opens, so nothing here
 * depends on how fast a thread runs; every wait is bounded.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <twine.h>

/* ---- A gate jobs wait on, and what they saw ----------------------------- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    int running, max_running, ran;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

static pthread_t reactor_thread;
static int released;   /* releases run, on the reactor's thread */
static int destroyed;  /* result values destroyed */

static void setup(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = 0;
    gate.running = gate.max_running = gate.ran = 0;
    pthread_mutex_unlock(&gate.lock);
    reactor_thread = pthread_self();
    released = destroyed = 0;
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

static int gate_running(void)
{
    pthread_mutex_lock(&gate.lock);
    int n = gate.running;
    pthread_mutex_unlock(&gate.lock);
    return n;
}

static int gate_ran(void)
{
    pthread_mutex_lock(&gate.lock);
    int n = gate.ran;
    pthread_mutex_unlock(&gate.lock);
    return n;
}

static void destroy_int(void *p)
{
    ck_assert(pthread_equal(pthread_self(), reactor_thread));
    destroyed++;
    free(p);
}

/* A job: waits for the gate when asked, then makes its value or failure. */
typedef struct work {
    int wait;
    int fail;
    int value;
    pthread_t ran_on;
} work;

static void *job(void *arg, tw_free_fn *free_fn, tw_failure **failure)
{
    work *w = arg;
    w->ran_on = pthread_self();
    pthread_mutex_lock(&gate.lock);
    gate.running++;
    if (gate.running > gate.max_running)
        gate.max_running = gate.running;
    while (w->wait && !gate.open)
        pthread_cond_wait(&gate.cond, &gate.lock);
    gate.running--;
    gate.ran++;
    pthread_mutex_unlock(&gate.lock);
    if (w->fail) {
        *failure = tw_failure_new(TW_EFAIL, "job %d failed", w->value);
        return NULL;
    }
    int *v = malloc(sizeof *v);
    *v = w->value;
    *free_fn = destroy_int;
    return v;
}

static void count_release(void *arg)
{
    (void)arg;
    ck_assert(pthread_equal(pthread_self(), reactor_thread));
    released++;
}

/* What a deferred delivered; failures are handled. */
typedef struct probe {
    int calls, failed, code, value, released_before;
} probe;

static void observe(tw_deferred *d, tw_result *res, void *arg)
{
    probe *p = arg;
    (void)d;
    ck_assert(pthread_equal(pthread_self(), reactor_thread));
    p->calls++;
    p->released_before = released;
    p->failed = tw_result_is_failure(res);
    if (p->failed) {
        p->code = tw_failure_code(tw_result_failure(res));
        tw_failure_unref(tw_result_take_failure(res));
    } else {
        p->value = *(int *)tw_result_value(res);
    }
}

static tw_deferred *submit(tw_reactor *r, work *w, probe *p)
{
    tw_deferred *d = tw_defer_to_thread(r, job, w, count_release);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(tw_deferred_add_both(d, observe, p), 0);
    return d;
}

/* Run the loop until *flag >= want; bounded at 10 s. */
static void spin_until(tw_reactor *r, const int *flag, int want)
{
    for (int i = 0; i < 1000 && *flag < want; i++)
        ck_assert_int_eq(tw_reactor_iterate(r, 0.01), 0);
    ck_assert_int_ge(*flag, want);
}

/* Wait (without the loop) until @p n gated jobs are running; bounded. */
static void wait_running(int n)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 10000 && gate_running() < n; i++)
        nanosleep(&ms, NULL);
    ck_assert_int_eq(gate_running(), n);
}

/* ---- Tests -------------------------------------------------------------- */

START_TEST(test_defer_to_thread_fires_with_the_value_made_on_a_pool_thread)
{
    tw_reactor *r = tw_reactor_new();
    work w = {.value = 42};
    probe p = {0};
    tw_deferred *d = submit(r, &w, &p);
    spin_until(r, &p.calls, 1);
    ck_assert_int_eq(p.failed, 0);
    ck_assert_int_eq(p.value, 42);
    ck_assert(!pthread_equal(w.ran_on, reactor_thread));
    ck_assert_int_eq(p.released_before, 1); /* release runs before it fires */
    ck_assert_int_eq(released, 1);
    tw_deferred_unref(d);
    ck_assert_int_eq(destroyed, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_defer_to_thread_failure_errbacks)
{
    tw_reactor *r = tw_reactor_new();
    work w = {.fail = 1, .value = 3};
    probe p = {0};
    tw_deferred *d = submit(r, &w, &p);
    spin_until(r, &p.calls, 1);
    ck_assert_int_eq(p.failed, 1);
    ck_assert_int_eq(p.code, TW_EFAIL);
    ck_assert_int_eq(released, 1);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_pool_starts_lazily_and_never_exceeds_its_size)
{
    tw_reactor *r = tw_reactor_new();
    ck_assert_uint_eq(tw_reactor_thread_pool_size(r), TW_THREAD_POOL_DEFAULT_SIZE);
    ck_assert_int_eq(tw_reactor_set_thread_pool_size(r, 0), -EINVAL);
    ck_assert_int_eq(tw_reactor_set_thread_pool_size(r, 2), 0);
    ck_assert_uint_eq(tw_reactor_thread_pool_threads(r), 0);
    enum { N = 6 };
    work w[N];
    probe p[N];
    tw_deferred *d[N];
    int fired = 0;
    for (int i = 0; i < N; i++) {
        w[i] = (work){.wait = 1, .value = i};
        p[i] = (probe){0};
        d[i] = submit(r, &w[i], &p[i]);
    }
    wait_running(2);
    ck_assert_uint_eq(tw_reactor_thread_pool_threads(r), 2);
    open_gate();
    for (int i = 0; i < N; i++) {
        spin_until(r, &p[i].calls, 1);
        ck_assert_int_eq(p[i].value, i);
        fired++;
    }
    ck_assert_int_eq(fired, N);
    ck_assert_int_eq(gate.max_running, 2);
    for (int i = 0; i < N; i++)
        tw_deferred_unref(d[i]);
    tw_reactor_free(r);
    ck_assert_int_eq(released, N);
    ck_assert_int_eq(destroyed, N);
}
END_TEST

START_TEST(test_cancelling_queued_work_releases_it_without_running_it)
{
    tw_reactor *r = tw_reactor_new();
    tw_reactor_set_thread_pool_size(r, 1);
    work busy = {.wait = 1}, queued = {.value = 9};
    probe pb = {0}, pq = {0};
    tw_deferred *db = submit(r, &busy, &pb);
    wait_running(1);
    tw_deferred *dq = submit(r, &queued, &pq);
    ck_assert_int_eq(tw_deferred_cancel(dq), 0);
    ck_assert_int_eq(pq.calls, 1);
    ck_assert_int_eq(pq.code, TW_ECANCELLED);
    ck_assert_int_eq(released, 1);
    open_gate();
    spin_until(r, &pb.calls, 1);
    ck_assert_int_eq(gate_ran(), 1); /* the cancelled job never ran */
    ck_assert_int_eq(released, 2);
    tw_deferred_unref(db);
    tw_deferred_unref(dq);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_cancelling_running_work_fails_at_once_and_destroys_its_result)
{
    tw_reactor *r = tw_reactor_new();
    work busy = {.wait = 1, .value = 5};
    probe p = {0};
    tw_deferred *d = submit(r, &busy, &p);
    wait_running(1);
    ck_assert_int_eq(tw_deferred_cancel(d), 0);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.code, TW_ECANCELLED);
    ck_assert_int_eq(released, 0);
    open_gate();
    spin_until(r, &destroyed, 1); /* the late result had nobody to go to */
    ck_assert_int_eq(released, 1);
    ck_assert_int_eq(p.calls, 1);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

static int refused_in_after;

static tw_deferred *try_work_after_stop(void *arg)
{
    tw_reactor *r = arg;
    work w = {0};
    tw_deferred *d = tw_defer_to_thread(r, job, &w, count_release);
    ck_assert_ptr_nonnull(d);
    probe p = {0};
    ck_assert_int_eq(tw_deferred_add_both(d, observe, &p), 0);
    ck_assert_int_eq(p.code, TW_ESHUTDOWN);
    tw_deferred_unref(d);
    ck_assert_int_eq(tw_call_in_thread(r, count_release, NULL, NULL), TW_ESHUTDOWN);
    refused_in_after = 1;
    return NULL;
}

START_TEST(test_stop_runs_queued_work_and_joins_before_run_returns)
{
    tw_reactor *r = tw_reactor_new();
    tw_reactor_set_thread_pool_size(r, 1);
    enum { N = 5 };
    work w[N];
    probe p[N];
    tw_deferred *d[N];
    for (int i = 0; i < N; i++) {
        w[i] = (work){.value = i};
        p[i] = (probe){0};
        d[i] = submit(r, &w[i], &p[i]);
    }
    refused_in_after = 0;
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_AFTER, try_work_after_stop, r, NULL), 0);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(p[i].calls, 1);
        ck_assert_int_eq(p[i].value, i);
        tw_deferred_unref(d[i]);
    }
    ck_assert_int_eq(refused_in_after, 1);
    ck_assert_uint_eq(tw_reactor_thread_pool_threads(r), 0);

    /* Once run returned, the pool starts again on demand. */
    work again = {.value = 77};
    probe pa = {0};
    tw_deferred *da = submit(r, &again, &pa);
    spin_until(r, &pa.calls, 1);
    ck_assert_int_eq(pa.value, 77);
    tw_deferred_unref(da);
    tw_reactor_free(r);
}
END_TEST

static void *open_gate_later(void *arg)
{
    (void)arg;
    struct timespec t = {0, 100 * 1000000};
    nanosleep(&t, NULL);
    open_gate();
    return NULL;
}

START_TEST(test_free_with_work_queued_and_running_releases_everything_once)
{
    tw_reactor *r = tw_reactor_new();
    tw_reactor_set_thread_pool_size(r, 1);
    work busy = {.wait = 1, .value = 1}, q1 = {.value = 2}, q2 = {.value = 3};
    probe pb = {0}, p1 = {0}, p2 = {0};
    tw_deferred *db = submit(r, &busy, &pb);
    wait_running(1);
    tw_deferred *d1 = submit(r, &q1, &p1);
    tw_deferred *d2 = submit(r, &q2, &p2);
    pthread_t opener;
    ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
    tw_reactor_free(r); /* waits for the running job, drops the rest */
    pthread_join(opener, NULL);
    ck_assert_int_eq(released, 3);
    ck_assert_int_eq(pb.calls + p1.calls + p2.calls, 0); /* nothing fires */
    ck_assert_int_eq(destroyed, gate_ran()); /* every result made was destroyed */
    ck_assert_int_ge(gate_ran(), 1);
    /* The deferreds are the caller's still; cancelling one is harmless. */
    ck_assert_int_eq(tw_deferred_cancel(d1), 0);
    ck_assert_int_eq(p1.code, TW_ECANCELLED);
    tw_deferred_unref(db);
    tw_deferred_unref(d1);
    tw_deferred_unref(d2);
}
END_TEST

START_TEST(test_free_with_an_idle_pool_joins_its_threads)
{
    tw_reactor *r = tw_reactor_new();
    work w = {.value = 1};
    probe p = {0};
    tw_deferred *d = submit(r, &w, &p);
    spin_until(r, &p.calls, 1);
    ck_assert_uint_eq(tw_reactor_thread_pool_threads(r), 1);
    tw_deferred_unref(d);
    tw_reactor_free(r); /* valgrind/ASan: no thread or job leaks */
}
END_TEST

/* tw_call_in_thread: the job reports back with call_from_thread. */
typedef struct call_ctx {
    tw_reactor *r;
    pthread_t ran_on;
    int back;
} call_ctx;

static void came_back(void *arg)
{
    call_ctx *c = arg;
    c->back++;
}

static void in_thread(void *arg)
{
    call_ctx *c = arg;
    c->ran_on = pthread_self();
    ck_assert_int_eq(tw_reactor_call_from_thread(c->r, came_back, c), 0);
}

START_TEST(test_call_in_thread_runs_on_a_pool_thread)
{
    tw_reactor *r = tw_reactor_new();
    call_ctx c = {.r = r};
    ck_assert_int_eq(tw_call_in_thread(r, in_thread, &c, count_release), 0);
    spin_until(r, &c.back, 1);
    ck_assert(!pthread_equal(c.ran_on, reactor_thread));
    ck_assert_int_eq(released, 0); /* fn ran, so release does not */
    ck_assert_int_eq(tw_call_in_thread(r, NULL, NULL, NULL), -EINVAL);
    tw_reactor_free(r);
}
END_TEST

static int call_ran; /* written on a pool thread, read after the join */

static void mark_ran(void *arg)
{
    (void)arg;
    call_ran++;
}

START_TEST(test_call_in_thread_runs_its_fn_or_its_release_exactly_once)
{
    tw_reactor *r = tw_reactor_new();
    tw_reactor_set_thread_pool_size(r, 1);
    work busy = {.wait = 1};
    probe pb = {0};
    tw_deferred *db = submit(r, &busy, &pb);
    wait_running(1);
    call_ran = 0;
    ck_assert_int_eq(tw_call_in_thread(r, mark_ran, NULL, count_release), 0);
    pthread_t opener;
    ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
    tw_reactor_free(r); /* joins: call_ran is settled */
    pthread_join(opener, NULL);
    /* The busy job's release, plus the call's fn or its release. */
    ck_assert_int_eq(released - 1 + call_ran, 1);
    tw_deferred_unref(db);
}
END_TEST

static Suite *threadpool_suite(void)
{
    Suite *s = suite_create("threadpool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_defer_to_thread_fires_with_the_value_made_on_a_pool_thread);
    tcase_add_test(tc, test_defer_to_thread_failure_errbacks);
    tcase_add_test(tc, test_pool_starts_lazily_and_never_exceeds_its_size);
    tcase_add_test(tc, test_cancelling_queued_work_releases_it_without_running_it);
    tcase_add_test(tc, test_cancelling_running_work_fails_at_once_and_destroys_its_result);
    tcase_add_test(tc, test_stop_runs_queued_work_and_joins_before_run_returns);
    tcase_add_test(tc, test_free_with_work_queued_and_running_releases_everything_once);
    tcase_add_test(tc, test_free_with_an_idle_pool_joins_its_threads);
    tcase_add_test(tc, test_call_in_thread_runs_on_a_pool_thread);
    tcase_add_test(tc, test_call_in_thread_runs_its_fn_or_its_release_exactly_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(threadpool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
